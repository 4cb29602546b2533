//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// legacyConfig: a vfio-pci pool (ens1f0's VFs 6 and 7), a pool of kernel-
// driver RDMA VFs (the ConnectX-6 Dx's four) with isRdma, needVhostNet and
// additionalInfo, and a pool left to DRA (ens1f1's four VFs).
const legacyConfig = `{"resourceList":[
 {"resourceName":"legacy_dpdk","selectors":{"drivers":["vfio-pci"],"pfNames":["ens1f0"],"needVhostNet":true}},
 {"resourceName":"legacy_rdma","resourcePrefix":"mellanox.com","selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},
  "additionalInfo":{"*":{"token":"3e49019f"}}},
 {"resourceName":"dra_net","selectors":{"pfNames":["ens1f1"]}}]}`

var (
	legacyDPDK = []string{"0000:3b:02.6", "0000:3b:02.7"}
	legacyRDMA = []string{"0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4", "0000:5e:00.5"}
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// allocatable is the node's allocatable count of an extended resource.
func allocatable(ctx context.Context, t *testing.T, name string) int64 {
	t.Helper()
	node, err := cluster.Client.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	require.NoError(t, err)
	q := node.Status.Allocatable[corev1.ResourceName(name)]
	return q.Value()
}

func waitAllocatable(ctx context.Context, t *testing.T, name string, want int64) {
	t.Helper()
	require.Eventually(t, func() bool { return allocatable(ctx, t, name) == want }, 60*time.Second, 200*time.Millisecond,
		"allocatable %s: %d, want %d", name, allocatable(ctx, t, name), want)
}

// legacyPod asks for extended resources and prints its environment and
// which device nodes it sees.
func legacyPod(ns, name string, limits map[string]int64) *corev1.Pod {
	script := `env | grep PCIDEVICE; for n in /dev/vfio/* /dev/vhost-net /dev/net/tun /dev/infiniband/*; do test -c $n && echo "node $n"; done`
	pod := framework.BusyboxPod(ns, name, script)
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{}
	for r, n := range limits {
		pod.Spec.Containers[0].Resources.Limits[corev1.ResourceName(r)] = *resource.NewQuantity(n, resource.DecimalSI)
	}
	return pod
}

func deviceIDsOf(envLine string) []string {
	_, v, _ := strings.Cut(envLine, "=")
	ids := strings.Split(v, ",")
	slices.Sort(ids)
	return ids
}

// TestLegacyShimServesClassicResources: the shim's resources appear in the
// node's allocatable and not in any ResourceSlice; a pod asking for them
// runs with the classic environment and device nodes, the kubelet's
// PodResources API lists them, and the DRA path gives the same devices the
// same bytes.
func TestLegacyShimServesClassicResources(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	cfg := writeConfig(t, legacyConfig)
	d := startDriver(t, driverOpts{host: h, config: cfg, noWait: true, legacy: []string{"intel.com/legacy_dpdk", "mellanox.com/legacy_rdma"}})
	waitAllocatable(ctx, t, "intel.com/legacy_dpdk", 2)
	waitAllocatable(ctx, t, "mellanox.com/legacy_rdma", 4)
	var want []string
	for _, n := range deviceNames(t, h) {
		if !slices.Contains(legacyDPDK, deviceIDOf(n)) && !slices.Contains(legacyRDMA, deviceIDOf(n)) {
			want = append(want, n)
		}
	}
	waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(want))

	// DRA still serves the rest of the node.
	classWithConfig(ctx, t, "e2e-dra-net", `device.driver == "sriov.dra.dev" && device.attributes["k8s.cni.cncf.io"].?resourceName.orValue("") == "intel.com/dra_net"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "legacy")
	draLogs := runUntilDone(ctx, t, ns, podWithClaims(ns, "dra", "env | grep PCIDEVICE", "dra"), simpleClaim(ns, "dra", "e2e-dra-net", 1))
	assert.Regexp(t, `PCIDEVICE_E2E_DRA_NET=0000:3b:11\.[0-3]`, draLogs)

	logs := runUntilDone(ctx, t, ns, legacyPod(ns, "classic", map[string]int64{"intel.com/legacy_dpdk": 2, "mellanox.com/legacy_rdma": 1}))
	env := envLines(logs)
	require.Len(t, env, 4, logs)
	assert.Equal(t, legacyDPDK, deviceIDsOf(env[0]), "PCIDEVICE_INTEL_COM_LEGACY_DPDK lists both vfio VFs")
	assert.Contains(t, env[1], `"vfio":{"dev-mount":"/dev/vfio/`)
	assert.Contains(t, env[1], `"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}`)
	assert.Contains(t, env[3], `"extra":{"token":"3e49019f"}`)
	assert.Regexp(t, `"rdma":\{"issm":"/dev/infiniband/issm\d+","rdma_cm":"/dev/infiniband/rdma_cm"`, env[3])
	for _, n := range []string{"/dev/vfio/vfio", "/dev/vhost-net", "/dev/net/tun", "/dev/infiniband/rdma_cm"} {
		assert.Contains(t, logs, "node "+n+"\n")
	}
	rdmaID := deviceIDsOf(env[2])
	require.Len(t, rdmaID, 1)

	// The kubelet's PodResources API shows the pod's devices by resource,
	// as classic Multus reads them.
	got := podResources(t, ns, "classic")
	assert.Equal(t, legacyDPDK, got["intel.com/legacy_dpdk"])
	assert.Equal(t, rdmaID, got["mellanox.com/legacy_rdma"])

	// The same devices through DRA: claims for exactly those devices, with
	// the pools' names, get byte-identical variables.
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "classic", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}))
	d.stop(t)
	startDriver(t, driverOpts{host: h, config: cfg})
	classWithConfig(ctx, t, "e2e-same-dpdk", fmt.Sprintf(`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pciAddress in ["%s"]`, strings.Join(legacyDPDK, `", "`)),
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/legacy_dpdk"}`)
	classWithConfig(ctx, t, "e2e-same-rdma", fmt.Sprintf(`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pciAddress == %q`, rdmaID[0]),
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"mellanox.com/legacy_rdma"}`)
	sameLogs := runUntilDone(ctx, t, ns, podWithClaims(ns, "same", `env | grep PCIDEVICE`, "same-dpdk", "same-rdma"),
		simpleClaim(ns, "same-dpdk", "e2e-same-dpdk", 2), simpleClaim(ns, "same-rdma", "e2e-same-rdma", 1))
	draEnv := envLines(sameLogs)
	require.Len(t, draEnv, 4, sameLogs)
	// The DRA claim lists its two devices in allocation order; the shim in
	// the kubelet's order: compare the ID sets, and the _INFO JSON byte for byte.
	assert.Equal(t, deviceIDsOf(env[0]), deviceIDsOf(draEnv[0]))
	for _, i := range []int{1, 2, 3} {
		assert.Equal(t, env[i], draEnv[i], "the same bytes on both paths")
	}
}

// podResources asks the kubelet's PodResources API which devices a pod
// holds, by resource name.
func podResources(t *testing.T, ns, pod string) map[string][]string {
	t.Helper()
	sock := filepath.Join(cluster.KubeletRootDir(), "pod-resources", "kubelet.sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(t.Context(), &podresourcesapi.ListPodResourcesRequest{})
	require.NoError(t, err)
	out := map[string][]string{}
	for _, p := range resp.PodResources {
		if p.Namespace != ns || p.Name != pod {
			continue
		}
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				// One entry per NUMA node: gather them.
				out[d.ResourceName] = append(out[d.ResourceName], d.DeviceIds...)
				slices.Sort(out[d.ResourceName])
			}
		}
	}
	return out
}

// TestLegacyShimSurvivesRestarts: after a kubelet restart the resources are
// registered again within 2 s of the kubelet's socket appearing; after a
// kill -9 of the driver too; running pods keep their devices, and no device
// they hold is handed out again.
func TestLegacyShimSurvivesRestarts(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	cfg := writeConfig(t, legacyConfig)
	o := driverOpts{host: h, config: cfg, noWait: true, legacy: []string{"intel.com/legacy_dpdk"}}
	d := startDriver(t, o)
	waitAllocatable(ctx, t, "intel.com/legacy_dpdk", 2)
	ns := framework.Namespace(ctx, t, cluster.Client, "legacy-restart")
	first := envLines(runUntilDone(ctx, t, ns, legacyPod(ns, "first", map[string]int64{"intel.com/legacy_dpdk": 1})))
	require.NotEmpty(t, first)

	// When the kubelet logged each registration of the resource (klog's
	// header: I1130 13:25:39.184310).
	registrations := func() []time.Time {
		b, _ := os.ReadFile(filepath.Join(cluster.LogDir, "kubelet.log"))
		var out []time.Time
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Got registration request from device plugin") && strings.Contains(line, `"intel.com/legacy_dpdk"`) && len(line) > 21 {
				at, err := time.ParseInLocation("0102 15:04:05.000000", line[1:21], time.Local)
				require.NoError(t, err, line)
				out = append(out, at.AddDate(time.Now().Year(), 0, 0))
			}
		}
		return out
	}
	kubeletSock := filepath.Join(devicePluginDir(), "kubelet.sock")
	before := inode(t, kubeletSock)
	seen := len(registrations())
	require.NoError(t, cluster.RestartKubelet(ctx))
	var appeared time.Time // the new socket's change time: when the kubelet made it
	require.Eventually(t, func() bool {
		st, err := os.Stat(kubeletSock)
		if ino, _ := inodeOf(kubeletSock); err != nil || ino == before {
			return false
		}
		ctim := st.Sys().(*syscall.Stat_t).Ctim
		appeared = time.Unix(ctim.Sec, ctim.Nsec)
		return true
	}, 60*time.Second, 10*time.Millisecond, "the restarted kubelet's socket")
	require.Eventually(t, func() bool { return len(registrations()) > seen }, 10*time.Second, 10*time.Millisecond,
		"re-registered after the kubelet restart")
	took := registrations()[seen].Sub(appeared)
	t.Logf("re-registered %s after the kubelet's socket appeared", took.Round(time.Millisecond))
	assert.Less(t, took, 2*time.Second)
	waitAllocatable(ctx, t, "intel.com/legacy_dpdk", 2)
	second := envLines(runUntilDone(ctx, t, ns, legacyPod(ns, "second", map[string]int64{"intel.com/legacy_dpdk": 1})))
	require.NotEmpty(t, second)
	assert.NotEqual(t, deviceIDsOf(first[0]), deviceIDsOf(second[0]), "a held device is not handed out again")
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "second", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}))

	d.kill()
	startDriver(t, o)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(devicePluginDir(), "sriov.dra.dev-intel.com_legacy_dpdk.sock"))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	third := envLines(runUntilDone(ctx, t, ns, legacyPod(ns, "third", map[string]int64{"intel.com/legacy_dpdk": 1})))
	require.NotEmpty(t, third)
	assert.NotEqual(t, deviceIDsOf(first[0]), deviceIDsOf(third[0]), "after kill -9, the running pod's device is still not handed out")
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "first", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, corev1.PodRunning, p.Status.Phase)
	assert.Zero(t, p.Status.ContainerStatuses[0].RestartCount, "the running pod was not disturbed")
}

// inodeOf identifies a file: a recreated socket may reuse the inode
// number, not its change time.
func inodeOf(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	sys := st.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d/%d.%d", sys.Ino, sys.Ctim.Sec, sys.Ctim.Nsec), nil
}

func inode(t *testing.T, path string) string {
	t.Helper()
	ino, err := inodeOf(path)
	require.NoError(t, err)
	return ino
}

// TestLegacyShimWithoutDRA: --dra=false --legacy-resources=all, no
// kubeconfig: a drop-in classic plugin, with no DeviceClass and no slice.
func TestLegacyShimWithoutDRA(t *testing.T) {
	ctx := t.Context()
	require.NoError(t, cluster.Client.ResourceV1().ResourceSlices().DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{FieldSelector: "spec.nodeName=" + cluster.NodeName}))
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	cfg := writeConfig(t, legacyConfig)
	startDriver(t, driverOpts{host: h, config: cfg, noDRA: true, legacy: []string{"all"}})
	waitAllocatable(ctx, t, "intel.com/legacy_dpdk", 2)
	waitAllocatable(ctx, t, "mellanox.com/legacy_rdma", 4)
	waitAllocatable(ctx, t, "intel.com/dra_net", 4)
	ns := framework.Namespace(ctx, t, cluster.Client, "nodra")
	logs := runUntilDone(ctx, t, ns, legacyPod(ns, "nodra", map[string]int64{"intel.com/dra_net": 2}))
	env := envLines(logs)
	require.Len(t, env, 2, logs)
	assert.Regexp(t, `^PCIDEVICE_INTEL_COM_DRA_NET=0000:3b:11\.[0-3],0000:3b:11\.[0-3]$`, env[0])
	classes, err := cluster.Client.ResourceV1().DeviceClasses().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, classes.Items, "no DeviceClass needed")
	assert.Empty(t, nodeSlices(ctx, t, cluster.NodeName), "no ResourceSlice published")
}

// TestLegacyShimConfigReload: a pool removed from the config stops being
// served (allocatable 0); adding it back serves it again.
func TestLegacyShimConfigReload(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	cfg := writeConfig(t, legacyConfig)
	startDriver(t, driverOpts{host: h, config: cfg, noWait: true, legacy: []string{"all"}})
	waitAllocatable(ctx, t, "mellanox.com/legacy_rdma", 4)
	without := strings.Replace(legacyConfig, `{"resourceName":"legacy_rdma","resourcePrefix":"mellanox.com","selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},
  "additionalInfo":{"*":{"token":"3e49019f"}}},`, "", 1)
	require.NotEqual(t, legacyConfig, without)
	require.NoError(t, os.WriteFile(cfg, []byte(without), 0o644))
	waitAllocatable(ctx, t, "mellanox.com/legacy_rdma", 0)
	assert.Equal(t, int64(2), allocatable(ctx, t, "intel.com/legacy_dpdk"), "the other pools stay")
	require.NoError(t, os.WriteFile(cfg, []byte(legacyConfig), 0o644))
	waitAllocatable(ctx, t, "mellanox.com/legacy_rdma", 4)
}
