//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

const driverName = "sriov.dra.dev"

// simHost is a simulated host on tmpfs that a test can change while the
// driver runs, by swapping in a rewritten tree.
type simHost struct {
	dir  string
	spec simhost.Spec
}

func newSimHost(t testing.TB, spec simhost.Spec) *simHost {
	t.Helper()
	base := "/dev/shm"
	if _, err := os.Stat(base); err != nil {
		base = ""
	}
	parent, err := os.MkdirTemp(base, "sriov-dra-host-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	h := &simHost{dir: filepath.Join(parent, "host"), spec: spec}
	// Real char devices: the runtime creates container device nodes from them.
	require.NoError(t, simhost.Write(h.dir, spec, simhost.WriteOptions{CharDevices: true}))
	return h
}

func (h *simHost) sysfs() string { return filepath.Join(h.dir, "sys") }

// replace rewrites the host as spec describes and swaps it in with two
// renames; a rescan in between sees no host and must keep what it published.
func (h *simHost) replace(t testing.TB, spec simhost.Spec) {
	t.Helper()
	next := h.dir + ".next"
	require.NoError(t, simhost.Write(next, spec, simhost.WriteOptions{CharDevices: true}))
	old := h.dir + ".old"
	require.NoError(t, os.Rename(h.dir, old))
	require.NoError(t, os.Rename(next, h.dir))
	require.NoError(t, os.RemoveAll(old))
	h.spec = spec
}

// driverProcess is one `sriov-dra run`.
type driverProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error
}

type driverOpts struct {
	node       string
	host       *simHost
	rescan     time.Duration
	config     string
	registrar  string // default: the kubelet's registration dir
	pluginDir  string
	extraFlags []string
	// noWait returns at once instead of waiting until the host's devices
	// are published (for tests that time that themselves).
	noWait bool
	// legacy serves these classic resources through the device-plugin API.
	legacy []string
	// noDRA runs only the legacy shim: no DRA plugin, no kubeconfig.
	noDRA bool
}

// devicePluginDir is the kubelet's device-plugins directory: fixed in the
// kubelet, whatever its --root-dir.
func devicePluginDir() string { return "/var/lib/kubelet/device-plugins" }

// driverArgs fills o's defaults and returns the command line of `sriov-dra run` for it.
func driverArgs(o driverOpts) (driverOpts, []string) {
	if o.node == "" {
		o.node = cluster.NodeName
	}
	if o.rescan == 0 {
		o.rescan = time.Second
	}
	if o.registrar == "" {
		o.registrar = filepath.Join(cluster.KubeletRootDir(), "plugins_registry")
	}
	if o.pluginDir == "" {
		o.pluginDir = filepath.Join(cluster.KubeletRootDir(), "plugins", driverName)
	}
	args := []string{"run", "--node-name", o.node,
		"--device-info-dir", devInfoDir(),
		"--simulated", "--sysfs-root", o.host.sysfs(), "--cdi-root", cluster.CDIDir,
		"--plugin-dir", o.pluginDir, "--registrar-dir", o.registrar,
		"--pod-resources-socket", filepath.Join(cluster.KubeletRootDir(), "pod-resources", "kubelet.sock"),
		"--rescan-interval", o.rescan.String(), "-v", "2"}
	if o.noDRA {
		args = append(args, "--dra=false")
		o.noWait = true
	} else {
		args = append(args, "--kubeconfig", cluster.Kubeconfig)
	}
	if o.config != "" {
		args = append(args, "--config", o.config)
	}
	if len(o.legacy) > 0 {
		args = append(args, "--legacy-resources", strings.Join(o.legacy, ","), "--device-plugin-dir", devicePluginDir())
	}
	args = append(args, o.extraFlags...)
	return o, args
}

func startDriver(t testing.TB, o driverOpts) *driverProcess {
	t.Helper()
	o, args := driverArgs(o)
	registered := kubeletRegistrations()
	log := filepath.Join(cluster.LogDir, fmt.Sprintf("sriov-dra-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	f, err := os.Create(log)
	require.NoError(t, err)
	bin, err := filepath.Abs(filepath.Join(*binDir, "sriov-dra"))
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	d := &driverProcess{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); f.Close(); close(d.done) }()
	// Stopped even when a wait below fails the test: a driver left running
	// holds the node's instance lock and refuses every later one.
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("driver log %s (last 3000 bytes):\n%s", log, tail(string(b), 3000))
		}
	})
	if !o.noDRA && o.node == cluster.NodeName && o.registrar == filepath.Join(cluster.KubeletRootDir(), "plugins_registry") {
		// Pods created before the kubelet has connected to this instance
		// fail their first prepare and wait out the kubelet's back-off.
		require.Eventually(t, func() bool { return kubeletRegistrations() > registered }, 30*time.Second, 50*time.Millisecond,
			"the kubelet did not connect to the driver; its log: %s", log)
	}
	if !o.noWait {
		waitDevices(context.Background(), t, o.node, 60*time.Second, sameDevices(deviceNames(t, o.host)))
	}
	return d
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop ends the driver with SIGTERM, as the kubelet's DaemonSet would.
func (d *driverProcess) stop(t testing.TB) {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("driver did not stop within 15s of SIGTERM")
	}
}

// nodeSlices lists the driver's slices for a node.
func nodeSlices(ctx context.Context, t testing.TB, node string) []resourceapi.ResourceSlice {
	t.Helper()
	list, err := cluster.Client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: "spec.driver=" + driverName + ",spec.nodeName=" + node,
	})
	require.NoError(t, err)
	return list.Items
}

// publishedDevices maps each device name to how often it is published in
// the pool's current generation.
func publishedDevices(slices []resourceapi.ResourceSlice) map[string]int {
	gen := int64(0)
	for _, s := range slices {
		gen = max(gen, s.Spec.Pool.Generation)
	}
	out := map[string]int{}
	for _, s := range slices {
		if s.Spec.Pool.Generation != gen {
			continue
		}
		for _, d := range s.Spec.Devices {
			out[d.Name]++
		}
	}
	return out
}

// waitDevices waits until the node's published devices satisfy ok.
func waitDevices(ctx context.Context, t testing.TB, node string, timeout time.Duration, ok func(map[string]int) bool) map[string]int {
	t.Helper()
	var got map[string]int
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got = publishedDevices(nodeSlices(ctx, t, node))
		return ok(got), nil
	})
	require.NoError(t, err, "published devices: %d (%v)", len(got), sortedKeys(got, 10))
	return got
}

func sortedKeys(m map[string]int, limit int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > limit {
		keys = append(keys[:limit], "...")
	}
	return keys
}

// never checks, in the test's own goroutine, that cond stays false for the
// whole window (assert.Never polls from another goroutine, which may still
// be calling the API when the test ends).
func never(t *testing.T, cond func() bool, window, tick time.Duration, msg string) {
	t.Helper()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		if cond() {
			t.Errorf("within %s: %s", window, msg)
			return
		}
		time.Sleep(tick)
	}
}

// waitPoolComplete waits until every slice of the node's pool exists in one
// generation: the slice controller has finished writing.
func waitPoolComplete(ctx context.Context, t testing.TB, node string) {
	t.Helper()
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		slices := nodeSlices(ctx, t, node)
		if len(slices) == 0 {
			return false, nil
		}
		for _, s := range slices {
			if s.Spec.Pool.ResourceSliceCount != int64(len(slices)) || s.Spec.Pool.Generation != slices[0].Spec.Pool.Generation {
				return false, nil
			}
		}
		return true, nil
	}), "the pool's slices did not settle")
}

// sameDevices reports whether published is exactly want, each once.
func sameDevices(want []string) func(map[string]int) bool {
	return func(got map[string]int) bool {
		if len(got) != len(want) {
			return false
		}
		for _, n := range want {
			if got[n] != 1 {
				return false
			}
		}
		return true
	}
}

// deviceNames is the devices a simulated host must offer, worked out from
// its spec (see expectedDevices), never by asking sriov-dra.
func deviceNames(t testing.TB, h *simHost) []string {
	t.Helper()
	return expectedDevices(t, h.spec)
}

// createDeviceClass creates a DeviceClass for the test, replacing one left
// by an earlier run, and deletes it when the test ends.
func createDeviceClass(ctx context.Context, t testing.TB, dc *resourceapi.DeviceClass) {
	t.Helper()
	classes := cluster.Client.ResourceV1().DeviceClasses()
	_ = classes.Delete(ctx, dc.Name, metav1.DeleteOptions{})
	_, err := classes.Create(ctx, dc, metav1.CreateOptions{})
	require.NoError(t, err, "create device class %s", dc.Name)
	t.Cleanup(func() { _ = classes.Delete(context.Background(), dc.Name, metav1.DeleteOptions{}) })
}

// applyDeviceClasses creates the DeviceClasses in the example files.
func applyDeviceClasses(ctx context.Context, t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var dc resourceapi.DeviceClass
		require.NoError(t, utilyaml.Unmarshal(b, &dc), f)
		createDeviceClass(ctx, t, &dc)
	}
}

func devInfoDir() string { return filepath.Join(cluster.Dir, "devinfo") }

// kubeletRegistrations counts the kubelet's connections to our driver.
func kubeletRegistrations() int {
	b, _ := os.ReadFile(filepath.Join(cluster.LogDir, "kubelet.log"))
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"Connection changed"`) && strings.Contains(line, `driverName="`+driverName+`"`) && strings.Contains(line, "connected=true") {
			n++
		}
	}
	return n
}
