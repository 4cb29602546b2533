//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// alreadyConnected counts the kubelet's refusals of a device-plugin
// endpoint it already holds (devicemanager's "device plugin already
// connected"): each one strands the endpoint until the kubelet restarts.
func alreadyConnected() int {
	b, _ := os.ReadFile(filepath.Join(cluster.LogDir, "kubelet.log"))
	return strings.Count(string(b), "device plugin already connected")
}

// TestSecondInstanceRefused: a second `sriov-dra run` started exactly like
// a running one exits non-zero, naming the lock and the first one's PID,
// and has touched none of the first one's sockets: the first keeps
// serving DRA and the legacy shim, and its /healthz stays good.
func TestSecondInstanceRefused(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	health := filepath.Join(t.TempDir(), "health.sock")
	// noWait: the shim's devices are left out of the slices; allocatable says when it serves.
	o := driverOpts{host: h, config: writeConfig(t, legacyConfig), legacy: []string{"intel.com/legacy_dpdk"}, noWait: true,
		extraFlags: []string{"--health-socket", health}}
	first := startDriver(t, o)
	waitAllocatable(ctx, t, "intel.com/legacy_dpdk", 2)
	o, args := driverArgs(o)
	sockets := []string{
		filepath.Join(o.pluginDir, "dra.sock"),
		filepath.Join(o.registrar, driverName+"-reg.sock"),
		filepath.Join(devicePluginDir(), driverName+"-intel.com_legacy_dpdk.sock"),
		health,
	}
	before := map[string]string{}
	for _, s := range sockets {
		before[s] = inode(t, s)
	}
	refusals := alreadyConnected()

	runCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(runCtx, filepath.Join(*binDir, "sriov-dra"), args...).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the second instance must exit non-zero by itself: %v\n%s", err, out)
	t.Logf("the second instance exited with %d after %s: %s", exit.ExitCode(), time.Since(start).Round(time.Millisecond), tail(string(out), 600))
	assert.Contains(t, string(out), "another sriov-dra instance runs on this node: it holds the instance lock "+filepath.Join(o.pluginDir, "instance.lock"))
	assert.Contains(t, string(out), fmt.Sprintf("PID %d, without --pod-uid", first.cmd.Process.Pid))

	select {
	case <-first.done:
		t.Fatalf("the first instance exited: %v", first.err)
	default:
	}
	for _, s := range sockets {
		ino, err := inodeOf(s)
		assert.NoError(t, err, "the first instance's socket %s", s)
		assert.Equal(t, before[s], ino, "the first instance's socket %s is the same file", s)
	}
	code, msg := probe(t, health, "healthz")
	assert.Zero(t, code, msg)

	// Both paths still serve pods.
	classWithConfig(ctx, t, "e2e-second-dra", `device.driver == "sriov.dra.dev" && device.attributes["k8s.cni.cncf.io"].?resourceName.orValue("") == "intel.com/dra_net"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "second")
	dra := runUntilDone(ctx, t, ns, podWithClaims(ns, "dra", "env | grep PCIDEVICE", "dra"), simpleClaim(ns, "dra", "e2e-second-dra", 1))
	assert.Regexp(t, `PCIDEVICE_E2E_SECOND_DRA=0000:3b:11\.[0-3]`, dra)
	legacy := envLines(runUntilDone(ctx, t, ns, legacyPod(ns, "legacy", map[string]int64{"intel.com/legacy_dpdk": 1})))
	require.NotEmpty(t, legacy)
	assert.Regexp(t, `^PCIDEVICE_INTEL_COM_LEGACY_DPDK=0000:3b:02\.[67]$`, legacy[0])
	assert.Equal(t, refusals, alreadyConnected(), "the kubelet refused no endpoint")
}

// withLegacyResource serves a classic resource from the DaemonSet through
// the shim, as the chart does with legacyResources: the flags and the
// device-plugins directory.
func withLegacyResource(t *testing.T, obj *unstructured.Unstructured, resource string) {
	t.Helper()
	var ds appsv1.DaemonSet
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &ds))
	spec := &ds.Spec.Template.Spec
	c := &spec.Containers[0]
	c.Args = append(c.Args, "--legacy-resources="+resource, "--device-plugin-dir="+devicePluginDir())
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "device-plugins", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: devicePluginDir(), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "device-plugins", MountPath: devicePluginDir()})
	out, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ds)
	require.NoError(t, err)
	obj.Object = out
}

// TestDaemonSetRollingUpdateLegacy: the shipped DaemonSet serving a
// classic resource through the shim is rolled to another tag while pods
// asking for that resource are created one after another: the new pod's
// shim registers beside the old one's and the old one's goes when its pod
// stops, so every pod is admitted and gets a device (no
// UnexpectedAdmissionError), and the kubelet never refuses an endpoint.
func TestDaemonSetRollingUpdateLegacy(t *testing.T) {
	ctx := t.Context()
	image := archiveImageName(t, *imageArchive)
	require.NoError(t, cluster.ImportImage(ctx, *imageArchive))
	h := newSimHost(t, profiles(t, "e810"))
	// ens1f1's four VFs, served by the shim.
	const resource = "intel.com/legacy_net"
	config := `{"resourceList":[{"resourceName":"legacy_net","selectors":{"pfNames":["ens1f1"]}}]}`
	applyManifests(ctx, t, "../deployments/manifests/sriov-dra.yaml", func(obj *unstructured.Unstructured) metav1.CreateOptions {
		switch obj.GetKind() {
		case "ConfigMap":
			require.NoError(t, unstructured.SetNestedField(obj.Object, config, "data", "config.json"))
		case "DaemonSet":
			onHarness(t, obj, image, h)
			withLegacyResource(t, obj, resource)
		}
		return metav1.CreateOptions{}
	})
	waitDriverReady(t, "sriov-dra", 120*time.Second)
	waitAllocatable(ctx, t, resource, 4)
	refusals := alreadyConnected()

	next := image[:strings.LastIndex(image, ":")] + ":rolled-legacy"
	require.NoError(t, cluster.TagImage(ctx, image, next))
	old := driverPods(t, "sriov-dra")
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"driver","image":%q}]}}}}`, next)
	_, err := cluster.Client.AppsV1().DaemonSets("sriov-dra").Patch(ctx, "sriov-dra", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	// Rolled: the old pod is gone, not only terminating (its endpoints go
	// when it stops), and the new one is Ready.
	rolled := func() bool {
		all, err := cluster.Client.CoreV1().Pods("sriov-dra").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=sriov-dra"})
		require.NoError(t, err)
		for _, p := range all.Items {
			if _, wasOld := old[p.Name]; wasOld {
				return false
			}
		}
		pods := driverPods(t, "sriov-dra")
		for _, ready := range pods {
			if !ready {
				return false
			}
		}
		return len(pods) == 1
	}

	ns := framework.Namespace(ctx, t, cluster.Client, "roll-legacy")
	var failed []string
	// check records a finished pod's outcome and deletes it: a pod the
	// kubelet did not admit (UnexpectedAdmissionError) fails, as does one
	// that ran without its device.
	check := func(p *corev1.Pod) {
		logs, _ := framework.ContainerLog(cluster, ns, p.Name, "main")
		if p.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, "PCIDEVICE_INTEL_COM_LEGACY_NET=0000:3b:11.") {
			failed = append(failed, p.Name)
			t.Logf("pod %s: %s\nlog: %s", p.Name, framework.DescribePod(ctx, cluster.Client, ns, p.Name), logs)
		}
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}))
	}
	// Up to three pods at a time (of the resource's four devices, so none
	// waits for one), a new one as soon as one is done, until the rollout is
	// over and two more were created, served by the new pod alone.
	const inFlight = 3
	running := map[string]bool{}
	created, during, after := 0, 0, 0
	deadline := time.Now().Add(120 * time.Second)
	for after < 2 || len(running) > 0 {
		if time.Now().After(deadline) {
			describeDriverPods(t, "sriov-dra")
			t.Fatalf("the rollout did not finish, or pods did not: %v, pods %v", driverPods(t, "sriov-dra"), running)
		}
		for name := range running {
			p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				check(p)
				delete(running, name)
			}
		}
		if after < 2 && len(running) < inFlight {
			if rolled() {
				after++
			} else {
				during++
			}
			name := fmt.Sprintf("legacy-roll-%d", created)
			pod := framework.BusyboxPod(ns, name, "env | grep ^PCIDEVICE_")
			pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{resource: *apiresource.NewQuantity(1, apiresource.DecimalSI)}
			_, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			require.NoError(t, err)
			created++
			running[name] = true
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("rolling update: %d legacy pods created while the old pod was there, %d after; %d failed", during, after, len(failed))
	require.Positive(t, during, "some pods were created while both driver pods ran")
	assert.Empty(t, failed, "pods not admitted or without a device")
	assert.Equal(t, refusals, alreadyConnected(), "the kubelet refused no endpoint")
	waitAllocatable(ctx, t, resource, 4)
}
