//go:build e2e

package e2e

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// archiveImageName reads the image name `make image` recorded in the archive.
func archiveImageName(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err, "the node image archive: run make image")
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		require.False(t, errors.Is(err, io.EOF), "no index.json in %s", archive)
		require.NoError(t, err)
		if h.Name != "index.json" {
			continue
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		require.NoError(t, json.NewDecoder(tr).Decode(&index))
		require.Len(t, index.Manifests, 1)
		name := index.Manifests[0].Annotations["io.containerd.image.name"]
		require.NotEmpty(t, name)
		return name
	}
}

// harnessSettings is what an install on the harness needs beyond the
// shipped defaults: the apiserver on loopback (no kube-proxy here: the
// in-cluster config dials it through the host network), the simulated host
// mounted where it is, and the harness's CDI and device-info directories.
// The later of two flags wins, so the args go after the shipped ones.
type harnessSettings struct {
	args   []string
	env    []corev1.EnvVar
	volume corev1.Volume
	mount  corev1.VolumeMount
}

func onHarnessSettings(h *simHost) harnessSettings {
	port := strings.TrimPrefix(cluster.APIServerURL(), "https://127.0.0.1:")
	return harnessSettings{
		args: []string{"--simulated", "--sysfs-root=" + h.sysfs(), "--rescan-interval=2s"},
		env: []corev1.EnvVar{
			{Name: "KUBERNETES_SERVICE_HOST", Value: "127.0.0.1"},
			{Name: "KUBERNETES_SERVICE_PORT", Value: port},
		},
		volume: corev1.Volume{Name: "simhost", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: h.dir}}},
		mount:  corev1.VolumeMount{Name: "simhost", MountPath: h.dir},
	}
}

// onHarness points a DaemonSet of the shipped manifests at the harness: the
// locally imported image, the kubelet's directories (mounted where the host
// has them) and the settings above.
func onHarness(t *testing.T, obj *unstructured.Unstructured, image string, h *simHost) {
	t.Helper()
	var ds appsv1.DaemonSet
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &ds))
	spec := &ds.Spec.Template.Spec
	c := &spec.Containers[0]
	c.Image, c.ImagePullPolicy = image, corev1.PullNever
	kroot := cluster.KubeletRootDir()
	hostPaths := map[string]string{
		"plugins":       filepath.Join(kroot, "plugins"),
		"registry":      filepath.Join(kroot, "plugins_registry"),
		"pod-resources": filepath.Join(kroot, "pod-resources"),
		"cdi":           cluster.CDIDir,
		"devinfo":       devInfoDir(),
	}
	for i, v := range spec.Volumes {
		if p, ok := hostPaths[v.Name]; ok {
			spec.Volumes[i].HostPath.Path = p
		}
	}
	for i, m := range c.VolumeMounts {
		if p, ok := hostPaths[m.Name]; ok {
			c.VolumeMounts[i].MountPath = p
		}
	}
	hs := onHarnessSettings(h)
	spec.Volumes = append(spec.Volumes, hs.volume)
	c.VolumeMounts = append(c.VolumeMounts, hs.mount)
	c.Env = append(c.Env, hs.env...)
	c.Args = append(c.Args, hs.args...)
	c.Args = append(c.Args,
		"--plugin-dir="+filepath.Join(hostPaths["plugins"], driverName),
		"--registrar-dir="+hostPaths["registry"],
		"--cdi-root="+cluster.CDIDir,
		"--device-info-dir="+devInfoDir(),
		"--pod-resources-socket="+filepath.Join(hostPaths["pod-resources"], "kubelet.sock"),
	)
	out, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ds)
	require.NoError(t, err)
	obj.Object = out
}

// driverPods lists the driver pods in ns: name → ready.
func driverPods(t *testing.T, ns string) map[string]bool {
	t.Helper()
	pods, err := cluster.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=sriov-dra"})
	require.NoError(t, err)
	out := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		out[p.Name] = ready
	}
	return out
}

// waitDriverReady waits for one Ready driver pod in ns, and shows the pods
// and their logs when there is none.
func waitDriverReady(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	ready := func() bool {
		for _, ready := range driverPods(t, ns) {
			return ready
		}
		return false
	}
	deadline := time.Now().Add(timeout)
	for !ready() {
		if time.Now().After(deadline) {
			describeDriverPods(t, ns)
			t.Fatalf("no driver pod Ready in %s after %s: %v", ns, timeout, driverPods(t, ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rolledOver reports whether a rolling update in ns is over: one driver
// pod, Ready, and none of the old ones left.
func rolledOver(t *testing.T, ns string, old map[string]bool) bool {
	t.Helper()
	pods := driverPods(t, ns)
	for name, ready := range pods {
		if _, wasOld := old[name]; wasOld || !ready {
			return false
		}
	}
	return len(pods) == 1
}

// describeDriverPods logs the driver pods' state and the end of their logs.
func describeDriverPods(t *testing.T, ns string) {
	t.Helper()
	for name := range driverPods(t, ns) {
		logs, _ := framework.ContainerLog(cluster, ns, name, "driver")
		t.Logf("%s\nlog:\n%s", framework.DescribePod(t.Context(), cluster.Client, ns, name), tail(logs, 3000))
	}
}

// failedPrepares counts the kubelet's FailedPrepareDynamicResources events in ns.
func failedPrepares(t *testing.T, ns string) int {
	t.Helper()
	events, err := cluster.Client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, e := range events.Items {
		if e.Reason == "FailedPrepareDynamicResources" {
			n += int(e.Count)
			t.Logf("failed prepare: %s: %s", e.InvolvedObject.Name, e.Message)
		}
	}
	return n
}

// TestDaemonSetFromImage installs the shipped manifests for real: the image
// from `make image` imported into containerd, the DaemonSet run by the real
// kubelet. Its pod becomes Ready through the exec readiness probe, registers,
// publishes, serves a pod's claim and reports it in /metrics; then a rolling
// update to another tag of the image runs while claim pods come and go, with
// no failed prepare.
func TestDaemonSetFromImage(t *testing.T) {
	ctx := t.Context()
	image := archiveImageName(t, *imageArchive)
	require.NoError(t, cluster.ImportImage(ctx, *imageArchive))
	h := newSimHost(t, profiles(t, "e810"))
	registered := kubeletRegistrations()
	applyManifests(ctx, t, "../deployments/manifests/sriov-dra.yaml", func(obj *unstructured.Unstructured) metav1.CreateOptions {
		if obj.GetKind() == "DaemonSet" {
			onHarness(t, obj, image, h)
		}
		return metav1.CreateOptions{}
	})
	start := time.Now()
	waitDriverReady(t, "sriov-dra", 120*time.Second)
	t.Logf("driver pod Ready %s after the manifests were applied", time.Since(start).Round(time.Millisecond))
	require.Greater(t, kubeletRegistrations(), registered, "the kubelet registered the pod's plugin")
	devices := waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(deviceNames(t, h)))

	classWithConfig(ctx, t, "e2e-daemonset", fmt.Sprintf(`device.driver == %q`, driverName), "")
	ns := framework.Namespace(ctx, t, cluster.Client, "daemonset")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "ds-first", "env | grep ^PCIDEVICE_ || true", "ds-first"), simpleClaim(ns, "ds-first", "e2e-daemonset", 1))
	m := scrape(t, "127.0.0.1:9733")
	require.Equal(t, float64(len(devices)), sum(m, "sriov_dra_devices_published"), "/metrics of the pod: the slices' device count")
	require.Equal(t, 1.0, m["sriov_dra_prepare_duration_seconds_count"], "the pod's prepare in the histogram")

	// Rolling update: the same build under another tag.
	next := image[:strings.LastIndex(image, ":")] + ":rolled"
	require.NoError(t, cluster.TagImage(ctx, image, next))
	old := driverPods(t, "sriov-dra")
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"driver","image":%q}]}}}}`, next)
	_, err := cluster.Client.AppsV1().DaemonSets("sriov-dra").Patch(ctx, "sriov-dra", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	rolled := func() bool { return rolledOver(t, "sriov-dra", old) }
	pods := 0
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; i < 3 || (!rolled() && time.Now().Before(deadline)); i++ {
		name := "ds-roll-" + strconv.Itoa(i)
		runUntilDone(ctx, t, ns, podWithClaims(ns, name, "true", name), simpleClaim(ns, name, "e2e-daemonset", 1))
		pods++
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	}
	if !rolled() {
		describeDriverPods(t, "sriov-dra")
		t.Fatalf("the rollout did not finish: %v", driverPods(t, "sriov-dra"))
	}
	failed := failedPrepares(t, ns)
	t.Logf("rolling update: %d claim pods created and deleted during it, %d failed prepares", pods, failed)
	require.Zero(t, failed)
}
