//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

func profiles(t testing.TB, names ...string) simhost.Spec {
	t.Helper()
	spec, err := simhost.Combine(names...)
	require.NoError(t, err)
	return spec
}

// TestDriverPublishesLargeHost: 2,048 VFs plus PFs, SFs and accelerators,
// registered with the real kubelet and accepted by the real apiserver.
func TestDriverPublishesLargeHost(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "large", "e810", "cx6dx", "bf2", "infiniband", "vdpa", "fpga", "uio", "mgmt"))
	want := deviceNames(t, h)
	require.Greater(t, len(want), 2048)
	start := time.Now()
	startDriver(t, driverOpts{host: h, rescan: 30 * time.Second, noWait: true})
	waitDevices(ctx, t, cluster.NodeName, 60*time.Second, sameDevices(want))
	t.Logf("%d devices in %d slices visible %s after the driver started", len(want), len(nodeSlices(ctx, t, cluster.NodeName)), time.Since(start).Round(time.Millisecond))
	for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
		assert.LessOrEqual(t, len(s.Spec.Devices), resourceapi.ResourceSliceMaxDevices)
		require.Len(t, s.OwnerReferences, 1)
		assert.Equal(t, "Node", s.OwnerReferences[0].Kind)
	}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		b, _ := os.ReadFile(filepath.Join(cluster.LogDir, "kubelet.log"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"Connection changed"`) && strings.Contains(line, `driverName="`+driverName+`"`) && strings.Contains(line, "connected=true") {
				return true, nil
			}
		}
		return false, nil
	}), "the kubelet did not log registering %s", driverName)
	_, err := os.Stat(filepath.Join(cluster.KubeletRootDir(), "plugins", driverName, "dra.sock"))
	assert.NoError(t, err, "DRA socket in the kubelet's plugin dir")
}

func claimPod(ns, name string, claim string) *corev1.Pod {
	pod := framework.BusyboxPod(ns, name, "sleep 3600")
	pod.Spec.NodeName = ""
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "dev", ResourceClaimName: ptr.To(claim)}}
	pod.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "dev"}}
	return pod
}

func simpleClaim(ns, name, class string, count int64) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "dev", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: class, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: count},
		}}}},
	}
}

// allocatedDevices waits for a claim's allocation and returns the devices.
func allocatedDevices(ctx context.Context, t *testing.T, ns, claim, pod string) []string {
	t.Helper()
	var got *resourceapi.ResourceClaim
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		got, err = cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		return err == nil && got.Status.Allocation != nil, nil
	})
	require.NoError(t, err, "claim %s not allocated: %s", claim, framework.DescribePod(ctx, cluster.Client, ns, pod))
	var out []string
	for _, r := range got.Status.Allocation.Devices.Results {
		require.Equal(t, driverName, r.Driver)
		require.Equal(t, cluster.NodeName, r.Pool)
		out = append(out, r.Device)
	}
	return out
}

func runClaim(ctx context.Context, t *testing.T, ns string, claim *resourceapi.ResourceClaim) []string {
	t.Helper()
	_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := claimPod(ns, claim.Name, claim.Name)
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	return allocatedDevices(ctx, t, ns, claim.Name, pod.Name)
}

func names(prefix string, suffixes ...string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = prefix + s
	}
	return out
}

// TestSchedulerAllocatesExampleClasses applies every example DeviceClass and
// has the real scheduler allocate a claim of each, asserting the device.
func TestSchedulerAllocatesExampleClasses(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx", "bf2", "infiniband", "fpga"))
	startDriver(t, driverOpts{host: h})
	classes, err := filepath.Glob("../deployments/examples/deviceclasses/*.yaml")
	require.NoError(t, err)
	applyDeviceClasses(ctx, t, classes...)
	ns := framework.Namespace(ctx, t, cluster.Client, "classes")

	tests := []struct {
		class string
		want  []string
	}{
		{"sriov-vfs-ens1f0", names("pci-0000-3b-02-", "0", "1", "2", "3", "4", "5", "6", "7")},
		{"sriov-vfio-intel", names("pci-0000-3b-02-", "6", "7")},
		{"sriov-rdma-vfs", append(names("pci-0000-5e-00-", "2", "3", "4", "5"), names("pci-0000-af-00-", "2", "3")...)},
		{"sriov-ens1f0-vf2-7", names("pci-0000-3b-02-", "2", "3", "4", "5", "6", "7")},
		{"sriov-subfunctions", names("aux-mlx5-core-sf-", "2", "3", "4")},
		{"sriov-accelerators", []string{"pci-0000-d8-00-0"}},
	}
	for _, tc := range tests {
		t.Run(tc.class, func(t *testing.T) {
			got := runClaim(ctx, t, ns, simpleClaim(ns, tc.class, tc.class, 1))
			require.Len(t, got, 1)
			assert.Contains(t, tc.want, got[0])
		})
	}
	t.Run("two RDMA VFs in one claim", func(t *testing.T) {
		got := runClaim(ctx, t, ns, simpleClaim(ns, "rdma-pair", "sriov-rdma-vfs", 2))
		require.Len(t, got, 2)
		assert.Subset(t, append(names("pci-0000-5e-00-", "2", "3", "4", "5"), names("pci-0000-af-00-", "2", "3")...), got)
		assert.NotEqual(t, got[0], got[1])
	})
	t.Run("VF aligned with accelerator on pcieRoot", func(t *testing.T) {
		claim := &resourceapi.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "aligned", Namespace: ns},
			Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
				Requests: []resourceapi.DeviceRequest{
					{Name: "nic", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "sriov-vfs-ens1f0"}},
					{Name: "accel", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "sriov-accelerators"}},
				},
				Constraints: []resourceapi.DeviceConstraint{{Requests: []string{"nic", "accel"},
					MatchAttribute: ptr.To(resourceapi.FullyQualifiedName("resource.kubernetes.io/pcieRoot"))}},
			}},
		}
		// The accelerator is held by the earlier claim; free it first.
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "sriov-accelerators", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}))
		require.NoError(t, cluster.Client.ResourceV1().ResourceClaims(ns).Delete(ctx, "sriov-accelerators", metav1.DeleteOptions{}))
		got := runClaim(ctx, t, ns, claim)
		require.Len(t, got, 2)
		assert.Contains(t, got, "pci-0000-d8-00-0")
	})
	t.Run("unsatisfiable claim leaves the pod pending", func(t *testing.T) {
		claim := simpleClaim(ns, "too-many", "sriov-vfio-intel", 3) // only two exist
		_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
		require.NoError(t, err)
		pod := claimPod(ns, "too-many", "too-many")
		_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		var msg string
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					msg = c.Message
					return true, nil
				}
			}
			return false, nil
		}))
		t.Logf("scheduler: %s", msg)
		assert.Contains(t, msg, "cannot allocate all claims")
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, corev1.PodPending, p.Status.Phase)
		assert.Empty(t, p.Spec.NodeName)
	})
}

// auditWrites counts ResourceSlice writes made by sriov-dra so far.
func auditWrites(t *testing.T) int {
	t.Helper()
	f, err := os.Open(cluster.AuditLog())
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			Verb      string `json:"verb"`
			UserAgent string `json:"userAgent"`
			ObjectRef struct {
				Resource string `json:"resource"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Stage == "ResponseComplete" && ev.ObjectRef.Resource == "resourceslices" && strings.HasPrefix(ev.UserAgent, "sriov-dra/") {
			n++
		}
	}
	return n
}

// TestDriverRescanReflectsChanges changes the host under a running driver.
func TestDriverRescanReflectsChanges(t *testing.T) {
	ctx := t.Context()
	const interval = 2 * time.Second
	spec := profiles(t, "e810")
	h := newSimHost(t, spec)
	startDriver(t, driverOpts{host: h, rescan: interval})

	// Unchanged host: no writes at all over several rescans, once the
	// initial publish is complete (every slice of the pool exists).
	waitPoolComplete(ctx, t, cluster.NodeName)
	before := auditWrites(t)
	never(t, func() bool { return auditWrites(t) != before }, 3*interval, 200*time.Millisecond,
		"rescans of an unchanged host must not write")

	step := func(name string, mutate func(*simhost.Spec)) {
		mutate(&spec)
		h.replace(t, spec)
		changed := time.Now()
		want := deviceNames(t, h)
		// Two rescan intervals, plus a second for the API round trip.
		waitDevices(ctx, t, cluster.NodeName, 2*interval+time.Second, sameDevices(want))
		t.Logf("%s: visible after %s", name, time.Since(changed).Round(time.Millisecond))
	}
	step("add 4 VFs to ens1f1", func(s *simhost.Spec) { s.PFs[1].NumVFs = 8 })
	got := publishedDevices(nodeSlices(ctx, t, cluster.NodeName))
	assert.Contains(t, got, "pci-0000-3b-11-7")
	step("rebind VF 0 of ens1f0 to vfio-pci", func(s *simhost.Spec) {
		s.PFs[0].VFs = append(s.PFs[0].VFs, simhost.VF{Index: 0, Driver: "vfio-pci"})
	})
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*interval+time.Second, true, func(ctx context.Context) (bool, error) {
		for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
			for _, d := range s.Spec.Devices {
				if d.Name == "pci-0000-3b-02-0" {
					return *d.Attributes["driver"].StringValue == "vfio-pci", nil
				}
			}
		}
		return false, nil
	}), "the rebound VF's driver attribute was not updated")
	step("remove ens1f0's VFs", func(s *simhost.Spec) { s.PFs[0].NumVFs, s.PFs[0].VFs = 0, nil })
	got = publishedDevices(nodeSlices(ctx, t, cluster.NodeName))
	assert.Contains(t, got, "pci-0000-3b-00-0", "a PF without VFs becomes a device")
	assert.NotContains(t, got, "pci-0000-3b-02-0")
}

// TestClassicConfigResourceName: with the classic README's config, a class
// selecting k8s.cni.cncf.io/resourceName gets a device of that pool only.
func TestClassicConfigResourceName(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "uio", "cx6dx"))
	cfg, err := filepath.Abs("../api/classic/v1/testdata/classic-readme-example.json")
	require.NoError(t, err)
	startDriver(t, driverOpts{host: h, config: cfg})
	// The pool's selectors (Intel 154c/10ed/1889 VFs on iavf) take ens1f0's
	// VFs 0-5 (6 and 7 are on vfio-pci), ens1f1's four VFs (offset 135 from
	// 0000:3b:00.1) and the X710's VF 0 (VF 1 is on igb_uio).
	pool := []string{"0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3", "0000:3b:02.4", "0000:3b:02.5",
		"0000:3b:11.0", "0000:3b:11.1", "0000:3b:11.2", "0000:3b:11.3", "0000:86:02.0"}
	var inPool []string
	for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
		for _, d := range s.Spec.Devices {
			rn, ok := d.Attributes["k8s.cni.cncf.io/resourceName"]
			if ok && *rn.StringValue == "intel.com/intel_sriov_netdevice" {
				inPool = append(inPool, *d.Attributes["k8s.cni.cncf.io/deviceID"].StringValue)
			}
		}
	}
	slices.Sort(inPool)
	assert.Equal(t, pool, inPool, "exactly the pool's devices carry its resourceName")
	applyDeviceClasses(ctx, t, "../deployments/examples/deviceclasses/classic-pool.yaml")
	ns := framework.Namespace(ctx, t, cluster.Client, "classic")
	got := runClaim(ctx, t, ns, simpleClaim(ns, "pool", "sriov-intel-sriov-netdevice", 3))
	require.Len(t, got, 3)
	var ids []string
	for _, d := range got {
		ids = append(ids, deviceIDOf(d))
	}
	assert.Subset(t, pool, ids)
}

// deviceIDOf turns pci-0000-3b-02-0 back into 0000:3b:02.0.
func deviceIDOf(name string) string {
	p := strings.Split(strings.TrimPrefix(name, "pci-"), "-")
	return fmt.Sprintf("%s:%s:%s.%s", p[0], p[1], p[2], p[3])
}

// TestDriverRestartRepublishes: a restarted driver publishes the same
// devices, without duplicates or orphaned slices.
func TestDriverRestartRepublishes(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "bf2", "fpga"))
	want := deviceNames(t, h)
	d := startDriver(t, driverOpts{host: h})
	waitPoolComplete(ctx, t, cluster.NodeName)
	first := nodeSlices(ctx, t, cluster.NodeName)
	d.stop(t)
	startDriver(t, driverOpts{host: h})
	waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(want))
	waitPoolComplete(ctx, t, cluster.NodeName)
	// Over several rescans (one a second) nothing is duplicated or orphaned.
	never(t, func() bool {
		second := nodeSlices(ctx, t, cluster.NodeName)
		if len(second) != len(first) || !sameDevices(want)(publishedDevices(second)) {
			return true
		}
		for _, s := range second {
			if s.Spec.Pool.ResourceSliceCount != int64(len(second)) {
				return true
			}
		}
		return false
	}, 3*time.Second, 200*time.Millisecond, "slices changed after the restart settled")
}

// TestNodeDeletionRemovesSlices: slices are owned by their Node.
func TestNodeDeletionRemovesSlices(t *testing.T) {
	ctx := t.Context()
	const node = "sriov-fake-node"
	deleteNode := framework.FakeNode(ctx, t, cluster.Client, node)
	h := newSimHost(t, profiles(t, "e810"))
	dir := t.TempDir()
	startDriver(t, driverOpts{node: node, host: h, registrar: filepath.Join(dir, "registry"), pluginDir: filepath.Join(dir, "plugin")})
	deleteNode()
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return len(nodeSlices(ctx, t, node)) == 0, nil
	}), "slices of a deleted node were not garbage-collected")
}

// TestAttributeTheAPIWouldRefuseIsDropped: an interface name that is not
// UTF-8 (a kernel allows any bytes but '/' and NUL) is left out of the
// device, the rest of the device and of its slice is published.
func TestAttributeTheAPIWouldRefuseIsDropped(t *testing.T) {
	ctx := t.Context()
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens\xff1", NumVFs: 2}}}
	h := newSimHost(t, spec)
	startDriver(t, driverOpts{host: h})
	for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
		require.Len(t, s.Spec.Devices, 2, "both VFs published in one slice")
		for _, d := range s.Spec.Devices {
			assert.NotContains(t, d.Attributes, resourceapi.QualifiedName("ifName"), d.Name)
			assert.NotContains(t, d.Attributes, resourceapi.QualifiedName("pfName"), d.Name)
			assert.Equal(t, "0000:3b:00.0", *d.Attributes["rootDevice"].StringValue)
			assert.Equal(t, "iavf", *d.Attributes["driver"].StringValue)
		}
	}
}
