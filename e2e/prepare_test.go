//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	metadatav1beta1 "k8s.io/dynamic-resource-allocation/api/metadata/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// classWithConfig creates a DeviceClass with a CEL selector and a NetConfig.
func classWithConfig(ctx context.Context, t *testing.T, name, cel, netConfig string) {
	t.Helper()
	dc := &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourceapi.DeviceClassSpec{
			Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: cel}}},
		},
	}
	if netConfig != "" {
		dc.Spec.Config = []resourceapi.DeviceClassConfiguration{{DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: driverName, Parameters: runtime.RawExtension{Raw: []byte(netConfig)}},
		}}}
	}
	createDeviceClass(ctx, t, dc)
}

// podWithClaims runs script in a pod that uses the given claims.
func podWithClaims(ns, name, script string, claims ...string) *corev1.Pod {
	pod := framework.BusyboxPod(ns, name, script)
	for i, c := range claims {
		ref := fmt.Sprintf("c%d", i)
		pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, corev1.PodResourceClaim{Name: ref, ResourceClaimName: ptr.To(c)})
		pod.Spec.Containers[0].Resources.Claims = append(pod.Spec.Containers[0].Resources.Claims, corev1.ResourceClaim{Name: ref})
	}
	return pod
}

// runUntilDone creates claims and a pod whose script ends by printing DONE
// and then sleeps, so the claims stay allocated while the test looks at
// them; it returns the pod's log up to then.
func runUntilDone(ctx context.Context, t *testing.T, ns string, pod *corev1.Pod, claims ...*resourceapi.ResourceClaim) string {
	t.Helper()
	for _, c := range claims {
		_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, c, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	pod.Spec.Containers[0].Command[2] += "; echo DONE; exec sleep 3600"
	start := time.Now()
	_, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	logs := waitLog(ctx, t, ns, pod.Name, "DONE\n")
	t.Logf("pod %s ran its script %s after creation", pod.Name, time.Since(start).Round(time.Millisecond))
	return logs
}

// waitLog waits until the pod's main container logged marker.
func waitLog(ctx context.Context, t *testing.T, ns, pod, marker string) string {
	t.Helper()
	var logs string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		logs, _ = framework.ContainerLog(cluster, ns, pod, "main")
		return strings.Contains(logs, marker), nil
	})
	require.NoError(t, err, "%s\nlog:\n%s", framework.DescribePod(ctx, cluster.Client, ns, pod), logs)
	return logs
}

func claimDevices(ctx context.Context, t *testing.T, ns, name string) []string {
	t.Helper()
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, c.Status.Allocation)
	var out []string
	for _, r := range c.Status.Allocation.Devices.Results {
		out = append(out, r.Device)
	}
	return out
}

func checkpointPath() string {
	return filepath.Join(cluster.KubeletRootDir(), "plugins", driverName, "checkpoint.json")
}

func readCheckpoint(t *testing.T) checkpoint.Data {
	t.Helper()
	d, _, err := checkpoint.Load(checkpointPath(), "unknown")
	require.NoError(t, err)
	return d
}

// deletePodAndWaitUnprepared deletes a pod and waits until the driver
// has unprepared its claims (no checkpoint entry left for them).
func deletePodAndWaitUnprepared(ctx context.Context, t *testing.T, ns, pod string, claimUIDs ...string) {
	t.Helper()
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{}))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		cp := readCheckpoint(t)
		for _, uid := range claimUIDs {
			if _, ok := cp.Claims[uid]; ok {
				return false, nil
			}
		}
		return true, nil
	}), "claims were not unprepared after the pod was deleted")
}

func iommuGroup(t *testing.T, h *simHost, device string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(h.sysfs(), "bus/pci/devices", deviceIDOf(device), "iommu_group"))
	require.NoError(t, err)
	return filepath.Base(target)
}

func envLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "PCIDEVICE_") {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// TestPrepareVFIOWithVhostNet: a vfio-pci VF with needVhostNet gets the
// classic environment byte for byte and its device nodes.
func TestPrepareVFIOWithVhostNet(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h})
	classWithConfig(ctx, t, "e2e-dpdk",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "vfio-pci"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/intel_sriov_dpdk","needVhostNet":true}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "vfio")
	claim := simpleClaim(ns, "dpdk", "e2e-dpdk", 1)
	script := `env; for n in /dev/vfio/vfio /dev/vfio/$GROUP /dev/net/tun /dev/vhost-net; do test -c $n && echo "node $n"; done`
	// The group is only known after allocation: the script reads it from the env.
	script = `GROUP=$(echo "$PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK_INFO" | sed 's/.*"dev-mount":"\/dev\/vfio\/\([0-9]*\)".*/\1/'); ` + script
	pod := podWithClaims(ns, "dpdk", script, "dpdk")
	pod.Spec.Containers[0].Command = []string{"sh", "-c", strings.Replace(script, "sed ", "busybox sed ", 1)}
	logs := runUntilDone(ctx, t, ns, pod, claim)
	devs := claimDevices(ctx, t, ns, "dpdk")
	require.Len(t, devs, 1)
	id, group := deviceIDOf(devs[0]), iommuGroup(t, h, devs[0])
	assert.Equal(t, []string{
		"PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK=" + id,
		`PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK_INFO={"` + id + `":{"generic":{"deviceID":"` + id + `"},"vfio":{"dev-mount":"/dev/vfio/` + group + `","mount":"/dev/vfio/vfio"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}}}`,
	}, envLines(logs))
	for _, n := range []string{"/dev/vfio/vfio", "/dev/vfio/" + group, "/dev/net/tun", "/dev/vhost-net"} {
		assert.Contains(t, logs, "node "+n+"\n", "char device %s in the container", n)
	}
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "dpdk", metav1.GetOptions{})
	require.NoError(t, err)
	infoFile := filepath.Join(devInfoDir(), "intel.com-intel_sriov_dpdk-"+id+"-device.json")
	b, err := os.ReadFile(infoFile)
	require.NoError(t, err, "device-info file while the pod exists")
	var info map[string]any
	require.NoError(t, json.Unmarshal(b, &info))
	assert.Equal(t, "pci", info["type"])
	spec := filepath.Join(cluster.CDIDir, "sriov.dra.dev-net_"+string(c.UID)+".json")
	_, err = os.Stat(spec)
	require.NoError(t, err)

	deletePodAndWaitUnprepared(ctx, t, ns, "dpdk", string(c.UID))
	for _, f := range []string{spec, infoFile} {
		_, err := os.Stat(f)
		assert.True(t, os.IsNotExist(err), "%s removed on unprepare", f)
	}
}

// TestPrepareRDMAAndRebind: an RDMA VF sees its char devices; a netdev VF
// bound to vfio-pci for the claim is back on its driver afterwards.
func TestPrepareRDMAAndRebind(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	startDriver(t, driverOpts{host: h})
	ns := framework.Namespace(ctx, t, cluster.Client, "rdma")

	classWithConfig(ctx, t, "e2e-rdma",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].functionType == "vf" && device.attributes["sriov.dra.dev"].rdma`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"mellanox.com/rdma","rdma":true}`)
	logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "rdma", `env | grep PCIDEVICE; ls /dev/infiniband`, "rdma"), simpleClaim(ns, "rdma", "e2e-rdma", 1))
	assert.Regexp(t, `"rdma":\{"issm":"/dev/infiniband/issm\d+","rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_\d+","umad":"/dev/infiniband/umad\d+","uverbs":"/dev/infiniband/uverbs\d+"\}`, logs)
	for _, n := range []string{"rdma_cm", "uverbs", "umad", "issm"} {
		assert.Contains(t, logs, n)
	}
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "rdma", metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, c.Status.Devices, 1, "network status set")
	assert.NotEmpty(t, c.Status.Devices[0].NetworkData.InterfaceName)
	assert.NotEmpty(t, c.Status.Devices[0].NetworkData.HardwareAddress)

	classWithConfig(ctx, t, "e2e-rebind",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf" && device.attributes["sriov.dra.dev"].pfName == "ens1f1"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/rebound","driver":"vfio-pci"}`)
	rebind := simpleClaim(ns, "rebind", "e2e-rebind", 1)
	logs = runUntilDone(ctx, t, ns, podWithClaims(ns, "rebind", `env | grep PCIDEVICE; ls /dev/vfio`, "rebind"), rebind)
	dev := claimDevices(ctx, t, ns, "rebind")[0]
	assert.Contains(t, logs, `"vfio":{"dev-mount":"/dev/vfio/`+iommuGroup(t, h, dev)+`"`)
	driverOf := func() string {
		target, _ := os.Readlink(filepath.Join(h.sysfs(), "bus/pci/devices", deviceIDOf(dev), "driver"))
		return filepath.Base(target)
	}
	assert.Equal(t, "vfio-pci", driverOf(), "bound to vfio-pci while the pod runs")
	rc, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "rebind", metav1.GetOptions{})
	require.NoError(t, err)
	deletePodAndWaitUnprepared(ctx, t, ns, "rebind", string(rc.UID))
	assert.Equal(t, "iavf", driverOf(), "original driver restored")
}

// TestPrepareTwoClaimsMerged: two claims of one class in one container
// give one variable listing both devices.
func TestPrepareTwoClaimsMerged(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h})
	classWithConfig(ctx, t, "e2e-netdev",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "merge")
	logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "two", `env | grep PCIDEVICE`, "a", "b"),
		simpleClaim(ns, "a", "e2e-netdev", 1), simpleClaim(ns, "b", "e2e-netdev", 1))
	ids := []string{deviceIDOf(claimDevices(ctx, t, ns, "a")[0]), deviceIDOf(claimDevices(ctx, t, ns, "b")[0])}
	var value string
	for _, l := range envLines(logs) {
		if v, ok := strings.CutPrefix(l, "PCIDEVICE_E2E_NETDEV="); ok {
			value = v
		}
	}
	got := strings.Split(value, ",")
	sort.Strings(got)
	sort.Strings(ids)
	assert.Equal(t, ids, got, "one variable with both devices; log:\n%s", logs)
}

// TestPrepareClaimsInSeparateContainers: claims of one class used by two
// containers of a pod stay apart: each container sees only its device.
func TestPrepareClaimsInSeparateContainers(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h})
	classWithConfig(ctx, t, "e2e-netdev",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "split")
	pod := podWithClaims(ns, "split", `env | grep PCIDEVICE`, "a")
	second := pod.Spec.Containers[0]
	second.Name = "second"
	second.Resources.Claims = []corev1.ResourceClaim{{Name: "c1"}}
	second.Command = []string{"sh", "-c", "env | grep PCIDEVICE; echo DONE; exec sleep 3600"}
	pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, corev1.PodResourceClaim{Name: "c1", ResourceClaimName: ptr.To("b")})
	pod.Spec.Containers = append(pod.Spec.Containers, second)
	logs := runUntilDone(ctx, t, ns, pod, simpleClaim(ns, "a", "e2e-netdev", 1), simpleClaim(ns, "b", "e2e-netdev", 1))
	var secondLogs string
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		secondLogs, _ = framework.ContainerLog(cluster, ns, "split", "second")
		return strings.Contains(secondLogs, "DONE"), nil
	}))
	for ctr, l := range map[string]struct{ log, claim string }{"main": {logs, "a"}, "second": {secondLogs, "b"}} {
		want := "PCIDEVICE_E2E_NETDEV=" + deviceIDOf(claimDevices(ctx, t, ns, l.claim)[0])
		assert.Contains(t, envLines(l.log), want, "container %s sees only its own claim's device; log:\n%s", ctr, l.log)
	}
}

// TestPrepareClassicPoolOptions: with --config, a device of a classic pool
// gets the pool's isRdma mounts, needVhostNet and additionalInfo, with no
// opaque config at all.
func TestPrepareClassicPoolOptions(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "cx6dx"))
	cfg := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"resourceList":[{"resourceName":"rdma_pool","resourcePrefix":"mellanox.com",
		"selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},"additionalInfo":{"*":{"token":"3e49019f"}}}]}`), 0o644))
	startDriver(t, driverOpts{host: h, config: cfg})
	classWithConfig(ctx, t, "e2e-pool",
		`device.driver == "sriov.dra.dev" && device.attributes["k8s.cni.cncf.io"].resourceName == "mellanox.com/rdma_pool"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"mellanox.com/rdma_pool"}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "pool")
	script := `env | grep PCIDEVICE; for n in /dev/vhost-net /dev/net/tun /dev/infiniband/rdma_cm /dev/infiniband/uverbs* /dev/infiniband/umad* /dev/infiniband/issm*; do test -c $n && echo "node $n"; done`
	logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "pool", script, "pool"), simpleClaim(ns, "pool", "e2e-pool", 1))
	id := deviceIDOf(claimDevices(ctx, t, ns, "pool")[0])
	lines := envLines(logs)
	require.Len(t, lines, 2, logs)
	assert.Equal(t, "PCIDEVICE_MELLANOX_COM_RDMA_POOL="+id, lines[0])
	assert.Regexp(t, `^PCIDEVICE_MELLANOX_COM_RDMA_POOL_INFO=\{"`+regexp.QuoteMeta(id)+`":\{"extra":\{"token":"3e49019f"\},"generic":\{"deviceID":"`+regexp.QuoteMeta(id)+`"\},`+
		`"rdma":\{"issm":"/dev/infiniband/issm\d+","rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_\d+","umad":"/dev/infiniband/umad\d+","uverbs":"/dev/infiniband/uverbs\d+"\},`+
		`"vhost":\{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"\}\}\}$`, lines[1])
	for _, n := range []string{"/dev/vhost-net", "/dev/net/tun", "/dev/infiniband/rdma_cm"} {
		assert.Contains(t, logs, "node "+n+"\n")
	}
	assert.Regexp(t, `node /dev/infiniband/uverbs\d+\n`, logs)
}

// TestDeviceMetadataInPod: a container reads its device's attributes from
// the metadata file (KEP-5304) the driver has the helper write: the PCI
// address, the classic device ID, the netdev and the resource name.
func TestDeviceMetadataInPod(t *testing.T) {
	ctx := t.Context()
	// One PF, one iavf VF: the claim can only get 0000:3b:02.0, ens1f0v0.
	h := newSimHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 1}}})
	startDriver(t, driverOpts{host: h})
	ns := framework.Namespace(ctx, t, cluster.Client, "metadata")
	classWithConfig(ctx, t, "e2e-metadata", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].functionType == "vf"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/meta_net"}`)
	logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "meta", `cat /var/run/kubernetes.io/dra-device-attributes/resourceclaims/meta/dev/*; echo`, "meta"),
		simpleClaim(ns, "meta", "e2e-metadata", 1))
	var m metadatav1beta1.DeviceMetadata
	require.NoError(t, json.NewDecoder(strings.NewReader(logs)).Decode(&m), logs)
	assert.Equal(t, "metadata.resource.k8s.io/v1beta1", m.APIVersion, "the newest version first in the stream")
	require.Len(t, m.Requests, 1)
	require.Len(t, m.Requests[0].Devices, 1)
	d := m.Requests[0].Devices[0]
	assert.Equal(t, "pci-0000-3b-02-0", d.Name)
	for name, want := range map[string]string{
		"pciAddress":               "0000:3b:02.0",
		"k8s.cni.cncf.io/deviceID": "0000:3b:02.0",
		"ifName":                   "ens1f0v0",
		"resourceName":             "intel.com/meta_net",
		"driver":                   "iavf",
	} {
		a, ok := d.Attributes[resourceapi.QualifiedName(name)]
		if assert.True(t, ok, "attribute %s in the metadata file", name) && assert.NotNil(t, a.StringValue, name) {
			assert.Equal(t, want, *a.StringValue, name)
		}
	}
}
