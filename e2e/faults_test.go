//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// TestManyClaimPodsAtOnce: 200 pods with a one-VF claim each, created at
// once on a 256-VF host, all run, with no failed prepare, no timed-out
// kubelet call, and every claim's network status set.
func TestManyClaimPodsAtOnce(t *testing.T) {
	ctx := t.Context()
	const pods = 200
	h := newSimHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 256}}})
	d := startDriver(t, driverOpts{host: h, rescan: time.Minute})
	classWithConfig(ctx, t, "e2e-many", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "many")
	t.Cleanup(func() { deleteAllPods(t, ns) })
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i := range pods {
		wg.Go(func() {
			name := fmt.Sprintf("many-%d", i)
			if _, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, name, "e2e-many", 1), metav1.CreateOptions{}); err != nil {
				errs <- err
				return
			}
			pod := podWithClaims(ns, name, "exec sleep 3600", name)
			pod.Spec.TerminationGracePeriodSeconds = ptr.To(int64(0))
			if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var running int
	require.NoError(t, wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == pods, nil
	}), "%d of %d pods running", running, pods)
	t.Logf("%d claim pods Running %s after they were created", pods, time.Since(start).Round(100*time.Millisecond))

	log, err := os.ReadFile(d.log)
	require.NoError(t, err)
	assert.NotContains(t, string(log), "Prepare failed")
	kubelet, err := os.ReadFile(filepath.Join(cluster.LogDir, "kubelet.log"))
	require.NoError(t, err)
	assert.NotRegexp(t, `NodePrepareResources.*DeadlineExceeded`, string(kubelet))
	durations := prepareDurations(t, string(log))
	t.Logf("driver prepare calls: %d, p50 %s, p99 %s", len(durations), percentile(durations, 0.5), percentile(durations, 0.99))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.ResourceV1().ResourceClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range list.Items {
			if len(c.Status.Devices) != 1 || c.Status.Devices[0].NetworkData == nil || c.Status.Devices[0].NetworkData.InterfaceName == "" {
				return false, nil
			}
		}
		return len(list.Items) == pods, nil
	}), "every claim gets its network status")
}

// deleteAllPods deletes a namespace's pods and waits until they are gone,
// so that the next test starts on a node without them.
func deleteAllPods(t *testing.T, ns string) {
	ctx := context.Background()
	pods := cluster.Client.CoreV1().Pods(ns)
	require.NoError(t, pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, metav1.ListOptions{}))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, nil
	}), "pods of %s not gone", ns)
}

var prepareDoneRE = regexp.MustCompile(`"Prepare done" .*duration="([^"]+)"`)

func prepareDurations(t *testing.T, log string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, m := range prepareDoneRE.FindAllStringSubmatch(log, -1) {
		d, err := time.ParseDuration(m[1])
		require.NoError(t, err)
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))].Round(10 * time.Microsecond)
}

// TestVanishedVFUnprepares: a VF bound to vfio-pci for a claim disappears
// (its PF's VFs are removed); deleting the pod still completes, and the
// claim's entry and files are gone.
func TestVanishedVFUnprepares(t *testing.T) {
	ctx := t.Context()
	spec := profiles(t, "e810")
	h := newSimHost(t, spec)
	d := startDriver(t, driverOpts{host: h})
	classWithConfig(ctx, t, "e2e-vanish",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f0" && device.attributes["sriov.dra.dev"].driver == "iavf"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/vanish","driver":"vfio-pci"}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "vanish")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "vanish", "true", "vanish"), simpleClaim(ns, "vanish", "e2e-vanish", 1))
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "vanish", metav1.GetOptions{})
	require.NoError(t, err)
	entry := readCheckpoint(t).Claims[string(c.UID)]
	require.NotEmpty(t, entry.CDISpec)
	require.Len(t, entry.InfoFiles, 1)

	spec.PFs[0].NumVFs, spec.PFs[0].VFs = 0, nil
	h.replace(t, spec)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(d.log)
		return strings.Contains(string(b), "is gone from the host; its pod runs without it")
	}, 10*time.Second, 100*time.Millisecond, "a warning for the vanished device")
	deletePodAndWaitUnprepared(ctx, t, ns, "vanish", string(c.UID))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "vanish", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}), "the pod finished terminating")
	for _, f := range append([]string{entry.CDISpec}, entry.InfoFiles...) {
		_, err := os.Stat(f)
		assert.True(t, os.IsNotExist(err), "%s removed", f)
	}
}

// TestKubeletRestartKeepsDevicesPublished: the kubelet deletes the node's
// slices when it starts; the driver restores them at once, and a claim pod
// created right after the restart is scheduled without a FailedScheduling.
func TestKubeletRestartKeepsDevicesPublished(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	want := deviceNames(t, h)
	startDriver(t, driverOpts{host: h, rescan: time.Minute})
	classWithConfig(ctx, t, "e2e-restart", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	waitPoolComplete(ctx, t, cluster.NodeName)

	w, err := cluster.Client.ResourceV1().ResourceSlices().Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + cluster.NodeName})
	require.NoError(t, err)
	defer w.Stop()
	type event struct {
		at   time.Time
		kind watch.EventType
	}
	events := make(chan event, 1000)
	go func() {
		for ev := range w.ResultChan() {
			events <- event{time.Now(), ev.Type}
		}
	}()
	require.NoError(t, cluster.RestartKubelet(ctx))
	// The kubelet deletes the node's slices when its DRA manager starts,
	// which may be after the node reports Ready: wait for it, then for the
	// driver to put them back.
	var deleted, back time.Time
	timeout := time.After(60 * time.Second)
	for back.IsZero() {
		select {
		case ev := <-events:
			switch {
			case ev.kind == watch.Deleted && deleted.IsZero():
				deleted = ev.at
			case ev.kind == watch.Added && !deleted.IsZero() && sameDevices(want)(publishedDevices(nodeSlices(ctx, t, cluster.NodeName))):
				back = ev.at
			}
		case <-timeout:
			t.Fatalf("slices deleted by the kubelet: %v; back: %v", !deleted.IsZero(), !back.IsZero())
		}
	}
	t.Logf("slices back %s after the kubelet deleted them", back.Sub(deleted).Round(time.Millisecond))
	assert.Less(t, back.Sub(deleted), time.Second)

	ns := framework.Namespace(ctx, t, cluster.Client, "restart")
	_, err = cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, "after", "e2e-restart", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, podWithClaims(ns, "after", "exec sleep 3600", "after"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "after", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	}), framework.DescribePod(ctx, cluster.Client, ns, "after"))
	evs, err := cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=after"})
	require.NoError(t, err)
	for _, e := range evs.Items {
		assert.NotEqual(t, "FailedScheduling", e.Reason, e.Message)
	}
}

// TestStartWithoutAPIServer: a driver started while the API server cannot
// be reached registers with the kubelet, warns within 10 s, and publishes as
// soon as the API server is back.
func TestStartWithoutAPIServer(t *testing.T) {
	ctx := t.Context()
	gate, err := cluster.NewGate(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(gate.Close)
	h := newSimHost(t, profiles(t, "e810"))
	// No slices of the node to begin with, as after the kubelet starts.
	require.NoError(t, cluster.Client.ResourceV1().ResourceSlices().DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{FieldSelector: "spec.nodeName=" + cluster.NodeName}))
	start := time.Now()
	d := startDriver(t, driverOpts{host: h, noWait: true, extraFlags: []string{"--kubeconfig", gate.Kubeconfig}})
	var warned time.Duration
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(d.log)
		if strings.Contains(string(b), "Publishing ResourceSlices failed; retrying") {
			warned = time.Since(start)
			return true
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "a warning within 10 s of start")
	t.Logf("warned %s after start", warned.Round(time.Millisecond))
	time.Sleep(30*time.Second - time.Since(start)) // the outage lasts 30 s
	assert.Empty(t, nodeSlices(ctx, t, cluster.NodeName), "nothing published while the API server is down")
	gate.Open()
	opened := time.Now()
	waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(deviceNames(t, h)))
	t.Logf("devices published %s after the API server came back", time.Since(opened).Round(time.Millisecond))

	classWithConfig(ctx, t, "e2e-gate", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "gate")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "gate", "env | grep PCIDEVICE", "gate"), simpleClaim(ns, "gate", "e2e-gate", 1))
}

// TestCheckpointCorruptedWhileRunning: a checkpoint garbled under a running
// driver stops prepares (with an event) but never removes a running pod's
// CDI spec; after a driver restart the state is rebuilt from the files, and
// the running pod's container restarts with its devices.
func TestCheckpointCorruptedWhileRunning(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	addr, sock := freeLoopbackAddr(t), filepath.Join(t.TempDir(), "health.sock")
	d := startDriver(t, driverOpts{host: h, extraFlags: []string{"--metrics-addr", addr, "--health-socket", sock}})
	classWithConfig(ctx, t, "e2e-corrupt", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/corrupt"}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "corrupt")
	// The container exits after a while and is restarted, each time with
	// its CDI devices resolved anew.
	running := podWithClaims(ns, "running", `env | grep PCIDEVICE_INTEL_COM_CORRUPT=; sleep 5; exit 1`, "running")
	running.Spec.RestartPolicy = corev1.RestartPolicyAlways
	_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, "running", "e2e-corrupt", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, running, metav1.CreateOptions{})
	require.NoError(t, err)
	c := allocatedClaim(ctx, t, ns, "running")
	spec := filepath.Join(cluster.CDIDir, "sriov.dra.dev-net_"+string(c.UID)+".json")
	require.Eventually(t, func() bool { _, err := os.Stat(spec); return err == nil }, 60*time.Second, 100*time.Millisecond)

	require.NoError(t, os.WriteFile(checkpointPath(), []byte(`{"version":"v1","checks`), 0o600))
	// Noticed at the next rescan (1 s here), before any prepare needs it:
	// the liveness check fails, so that the kubelet would restart the daemon.
	require.Eventually(t, func() bool { code, _ := probe(t, sock, "healthz"); return code != 0 }, 15*time.Second, 100*time.Millisecond,
		"/healthz still passes with an unreadable checkpoint")
	assert.Equal(t, 0.0, scrape(t, addr)["sriov_dra_checkpoint_readable"])
	_, err = cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, "later", "e2e-corrupt", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, podWithClaims(ns, "later", "exec sleep 3600", "later"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cluster.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,reason=CheckpointUnreadable"})
		return err == nil && len(evs.Items) > 0, nil
	}), "a CheckpointUnreadable event on the Node")
	_, err = os.Stat(spec)
	require.NoError(t, err, "the running pod's CDI spec is never removed")
	// Each of the kubelet's failed calls is counted, though no claim was tried.
	require.Eventually(t, func() bool { return scrape(t, addr)[`sriov_dra_prepare_errors_total{reason="checkpoint"}`] >= 1 }, 60*time.Second, 200*time.Millisecond,
		"the failed NodePrepareResources calls are not counted")

	d.kill()
	startDriver(t, driverOpts{host: h})
	aside, err := filepath.Glob(checkpointPath() + ".corrupt-*")
	require.NoError(t, err)
	require.Len(t, aside, 1, "the garbled checkpoint is kept aside")
	t.Cleanup(func() { _ = os.Remove(aside[0]) })
	_, err = os.Stat(spec)
	require.NoError(t, err, "the running pod's CDI spec survives the restart")
	assert.Contains(t, readCheckpoint(t).Claims, string(c.UID), "the running claim is rebuilt from its files")

	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "later", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	}), "the pod that could not be prepared runs after the restart: %s", framework.DescribePod(ctx, cluster.Client, ns, "later"))
	before := restarts(ctx, t, ns, "running")
	require.NoError(t, wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "running", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, nil
		}
		st := p.Status.ContainerStatuses[0]
		return st.RestartCount > before && st.State.Running != nil, nil
	}), "the running pod's container restarted with its CDI devices: %s", framework.DescribePod(ctx, cluster.Client, ns, "running"))

	// The adopted claim owns its device-info file: unprepared, it is gone.
	infoFiles := func() []string {
		got, _ := filepath.Glob(filepath.Join(devInfoDir(), "intel.com-corrupt-*-device.json"))
		return got
	}
	require.Len(t, infoFiles(), 2, "one device-info file per prepared claim")
	later := allocatedClaim(ctx, t, ns, "later")
	deletePodAndWaitUnprepared(ctx, t, ns, "running", string(c.UID))
	deletePodAndWaitUnprepared(ctx, t, ns, "later", string(later.UID))
	assert.Empty(t, infoFiles(), "device-info files left after the adopted claim was unprepared")
}

func restarts(ctx context.Context, t *testing.T, ns, pod string) int32 {
	t.Helper()
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	require.NoError(t, err)
	if len(p.Status.ContainerStatuses) == 0 {
		return 0
	}
	return p.Status.ContainerStatuses[0].RestartCount
}

func allocatedClaim(ctx context.Context, t *testing.T, ns, name string) *resourceapi.ResourceClaim {
	t.Helper()
	var c *resourceapi.ResourceClaim
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		c, err = cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && c.Status.Allocation != nil, nil
	}))
	return c
}
