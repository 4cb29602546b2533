//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// helmCmd runs the helm built by `make tools` against the harness, with its
// caches and config in the test's own directories.
func helmCmd(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, filepath.Join(*binDir, "helm"), append(args, "--kubeconfig", cluster.Kubeconfig)...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// decodeObjects decodes the objects of a multi-document YAML manifest.
func decodeObjects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// TestHelmRelease installs the chart with helm onto the harness, from the
// locally built image, with a classic config and a DeviceClass (carrying
// opaque config) from values; a pod's claim on that class gets a VF with the
// classic environment; then `helm uninstall` leaves nothing behind: every
// object of the release, the driver's sockets, and (once the kubelet has
// seen the driver go) its ResourceSlices.
func TestHelmRelease(t *testing.T) {
	ctx := t.Context()
	image := archiveImageName(t, *imageArchive)
	require.NoError(t, cluster.ImportImage(ctx, *imageArchive))
	h := newSimHost(t, profiles(t, "e810"))
	const release, ns, class = "sriov-dra-e2e", "sriov-dra-helm", "e2e-helm-vf"
	hs := onHarnessSettings(h)
	values := map[string]any{
		"image": map[string]any{
			"repository": image[:strings.LastIndex(image, ":")],
			"tag":        image[strings.LastIndex(image, ":")+1:],
			"pullPolicy": "Never",
		},
		// The string form: a classic config.json pasted as it is.
		"classicConfig": map[string]any{"json": `{"resourceList": [{"resourceName": "helm_vf", "resourcePrefix": "example.com", "selectors": {"drivers": ["iavf"]}}]}`},
		"deviceClasses": []map[string]any{{
			"name":       class,
			"expression": `device.attributes[device.driver].driver == "iavf"`,
			"config":     map[string]any{"additionalInfo": map[string]string{"installedBy": "helm"}},
		}},
		"hostPaths": map[string]any{
			"kubeletDir":    cluster.KubeletRootDir(),
			"cdiDir":        cluster.CDIDir,
			"deviceInfoDir": devInfoDir(),
		},
		"logging":           map[string]any{"verbosity": 2},
		"extraArgs":         hs.args,
		"extraEnv":          hs.env,
		"extraVolumes":      []any{hs.volume},
		"extraVolumeMounts": []any{hs.mount},
	}
	registered := kubeletRegistrations()
	start := time.Now()
	uninstalled := installRelease(ctx, t, release, ns, values)
	t.Logf("helm install --wait returned after %s", time.Since(start).Round(time.Millisecond))
	pods := driverPods(t, ns)
	require.Len(t, pods, 1)
	for name, ready := range pods {
		require.True(t, ready, "driver pod %s Ready when helm install --wait returns", name)
	}
	require.Eventually(t, func() bool { return kubeletRegistrations() > registered }, 30*time.Second, 100*time.Millisecond,
		"the kubelet registered the release's plugin")
	devices := waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(deviceNames(t, h)))
	manifest := helmCmd(ctx, t, "get", "manifest", release, "--namespace", ns)
	// The classic config from values: its pool holds the iavf VFs, six of
	// ens1f0 and four of ens1f1. A VF still held by an earlier test's claim
	// (prepared without a config, so in no pool) joins once the release's
	// driver has unprepared that claim, gone from the API.
	require.Eventually(t, func() bool {
		return devicesWithAttribute(ctx, t, "k8s.cni.cncf.io/resourceName", "example.com/helm_vf") == 10
	}, 60*time.Second, 200*time.Millisecond, "the classic pool from values holds the ten iavf VFs: %d",
		devicesWithAttribute(ctx, t, "k8s.cni.cncf.io/resourceName", "example.com/helm_vf"))

	// The class from values, with its opaque config, serves a pod's claim.
	wl := framework.Namespace(ctx, t, cluster.Client, "helm")
	logs := runUntilDone(ctx, t, wl, podWithClaims(wl, "helm-vf", "env | grep ^PCIDEVICE_", "helm-vf"), simpleClaim(wl, "helm-vf", class, 1))
	// e810 profile: ens1f0's VFs 0-5 (3b:02.0-5) and ens1f1's 0-3
	// (3b:11.0-3) run iavf; VFs 6 and 7 of ens1f0 are vfio-pci. The
	// variable is named after the class, which sets no resourceName.
	assert.Regexp(t, `(?m)^PCIDEVICE_E2E_HELM_VF=0000:3b:(02\.[0-5]|11\.[0-3])$`, logs)
	assert.Regexp(t, `(?m)^PCIDEVICE_E2E_HELM_VF_INFO=.*"extra":\{"installedBy":"helm"\}`, logs)
	m := scrape(t, "127.0.0.1:9733")
	require.Equal(t, float64(len(devices)), sum(m, "sriov_dra_devices_published"), "/metrics of the release's pod: the slices' device count")
	require.NoError(t, cluster.Client.CoreV1().Pods(wl).Delete(ctx, "helm-vf", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().Pods(wl).Get(ctx, "helm-vf", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}), "the workload pod is gone (its claim unprepared) before the uninstall")

	start = time.Now()
	// Foreground: helm returns once the driver pod is gone too.
	helmCmd(ctx, t, "uninstall", release, "--namespace", ns, "--cascade", "foreground", "--wait", "--timeout", "2m")
	*uninstalled = true
	t.Logf("helm uninstall --wait returned after %s", time.Since(start).Round(time.Millisecond))
	assertGone(ctx, t, decodeObjects(t, manifest))
	// Its sockets: the registration socket and the DRA socket.
	for _, pattern := range []string{
		filepath.Join(cluster.KubeletRootDir(), "plugins_registry", driverName+"*"),
		filepath.Join(cluster.KubeletRootDir(), "plugins", driverName, "*.sock"),
	} {
		left, err := filepath.Glob(pattern)
		require.NoError(t, err)
		assert.Empty(t, left, "left on the host after helm uninstall")
	}
	// The kubelet wipes a driver's slices 30 s after its last plugin
	// instance went away (a restart in between keeps them).
	start = time.Now()
	waitDevices(ctx, t, cluster.NodeName, 90*time.Second, func(got map[string]int) bool { return len(got) == 0 })
	t.Logf("slices gone %s after helm uninstall", time.Since(start).Round(time.Millisecond))
}

// installRelease installs the chart with values and waits for it; the
// test's cleanup uninstalls it unless the test sets *uninstalled.
func installRelease(ctx context.Context, t *testing.T, release, ns string, values map[string]any) (uninstalled *bool) {
	t.Helper()
	valuesFile := filepath.Join(t.TempDir(), "values.json")
	b, err := json.Marshal(values)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(valuesFile, b, 0o600))
	helmCmd(ctx, t, "install", release, "../deployments/helm/sriov-dra", "--namespace", ns, "--create-namespace",
		"--values", valuesFile, "--wait", "--timeout", "2m")
	uninstalled = new(bool)
	t.Cleanup(func() {
		if !*uninstalled {
			// Foreground: the driver pod is gone when the next test starts.
			helmCmd(context.Background(), t, "uninstall", release, "--namespace", ns, "--cascade", "foreground", "--wait", "--timeout", "2m")
		}
		_ = cluster.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return uninstalled
}

// TestHelmReleaseWithNRI installs the chart with nri.enabled: the driver in
// its pod reaches containerd's NRI socket and the pods' network namespaces
// through the chart's mounts, and moves a VF's netdev into a pod.
func TestHelmReleaseWithNRI(t *testing.T) {
	ctx := t.Context()
	image := archiveImageName(t, *imageArchive)
	require.NoError(t, cluster.ImportImage(ctx, *imageArchive))
	nriNetdevs(t)
	h := newSimHost(t, nriSpec())
	classWithConfig(ctx, t, "e2e-helm-nri", fmt.Sprintf(`device.driver == %q && device.attributes[%q].pfName == %q`, driverName, driverName, nriPF), "")
	hs := onHarnessSettings(h)
	installRelease(ctx, t, "sriov-dra-nri", "sriov-dra-nri", map[string]any{
		"image": map[string]any{
			"repository": image[:strings.LastIndex(image, ":")],
			"tag":        image[strings.LastIndex(image, ":")+1:],
			"pullPolicy": "Never",
		},
		"classicConfig": map[string]any{"content": nil},
		"deviceClasses": []any{},
		"metrics":       map[string]any{"enabled": false},
		"nri":           map[string]any{"enabled": true, "socketDir": filepath.Dir(cluster.NRISocket()), "netnsDir": cluster.NetNSDir()},
		"hostPaths": map[string]any{
			"kubeletDir":    cluster.KubeletRootDir(),
			"cdiDir":        cluster.CDIDir,
			"deviceInfoDir": devInfoDir(),
		},
		"extraArgs":         hs.args,
		"extraEnv":          hs.env,
		"extraVolumes":      []any{hs.volume},
		"extraVolumeMounts": []any{hs.mount},
	})
	waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(deviceNames(t, h)))
	wl := framework.Namespace(ctx, t, cluster.Client, "helm-nri")
	claim := netClaim(wl, "net", "e2e-helm-nri", 1, `"interfaceName":"net1","addresses":["10.78.0.5/24"]`)
	logs := runUntilDone(ctx, t, wl, podWithClaims(wl, "net", showLinks, "net"), claim)
	vf := nriVF(t, claimDevices(ctx, t, wl, "net")[0])
	assert.Regexp(t, fmt.Sprintf(`\d+: net1[:@].*link/ether %s`, nriVFMAC(vf)), logs)
	assert.Regexp(t, `net1\s+inet 10\.78\.0\.5/24`, logs)
	deletePodAndWaitUnprepared(ctx, t, wl, "net", claimUID(ctx, t, wl, "net"))
	assert.Equal(t, nriVFMAC(vf), hostMAC(t, fmt.Sprintf("%sv%d", nriPF, vf)), "the netdev is back on the host")
}

// assertGone checks that each object is not found in the apiserver.
func assertGone(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	clientFor := objectClients(t)
	kinds := map[string]int{}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		client := clientFor(obj)
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := client.Get(ctx, obj.GetName(), metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		assert.NoError(t, err, "%s %s/%s still there after helm uninstall", gvk.Kind, obj.GetNamespace(), obj.GetName())
		kinds[gvk.Kind]++
	}
	t.Logf("release objects gone: %v", kinds)
	require.Contains(t, kinds, "DaemonSet")
	require.Contains(t, kinds, "DeviceClass")
}

// devicesWithAttribute counts the node's published devices of our driver
// whose attribute name has the string value.
func devicesWithAttribute(ctx context.Context, t *testing.T, name, value string) int {
	t.Helper()
	n := 0
	for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
		for _, d := range s.Spec.Devices {
			if a, ok := d.Attributes[resourceapi.QualifiedName(name)]; ok && a.StringValue != nil && *a.StringValue == value {
				n++
			}
		}
	}
	return n
}
