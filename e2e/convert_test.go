//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/convert"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// TestConvertedClassesAllocatedByScheduler: the classic README's example
// config converted in the selectors mode, on a node whose driver runs
// without any config (so no pool names are published). For each pool, a
// claim for All devices of its class, allocated by the real scheduler, gets
// exactly the devices that pool selects on the example host.
func TestConvertedClassesAllocatedByScheduler(t *testing.T) {
	ctx := t.Context()
	const node = "convert-node"
	defer framework.FakeNode(ctx, t, cluster.Client, node)()
	h := newSimHost(t, simhost.ClassicExample())
	dir := t.TempDir()
	startDriver(t, driverOpts{node: node, host: h, rescan: time.Minute,
		registrar: filepath.Join(dir, "registry"), pluginDir: filepath.Join(dir, "plugin")})

	cfg, err := classic.Load("../api/classic/v1/testdata/classic-readme-example.json", "")
	require.NoError(t, err)
	pools, err := convert.Convert(cfg, convert.Options{DriverName: driverName, Mode: convert.ModeSelectors})
	require.NoError(t, err)
	// What each pool takes on this host (simhost.ClassicExample's comments;
	// pkg/selector's TestClassicReadmeExample holds the same).
	want := map[string][]string{
		"intel.com/intel_sriov_netdevice":   {"pci-0000-3b-02-0", "pci-0000-3b-02-1", "pci-0000-5b-02-1"},
		"intel.com/intel_sriov_dpdk":        {"pci-0000-3b-02-2", "pci-0000-3b-02-3", "pci-0000-5b-02-0"},
		"mellanox.com/mlnx_sriov_rdma":      {"pci-0000-5d-00-2", "pci-0000-5d-00-3"},
		"intel.com/infiniband_rdma_netdevs": {"pci-0000-af-00-2", "pci-0000-af-00-3"},
		"intel.com/ct6dx_vdpa_vhost":        {"pci-0000-65-00-2"},
		"intel.com/intel_fpga":              {"pci-0000-d8-00-0"},
		"nvidia.com/bf2_sf":                 {"aux-mlx5-core-sf-2", "aux-mlx5-core-sf-3"},
		// The first pool took all its devices: a claim for it finds none.
		"intel.com/intel_sriov_netdevice_additional_env": nil,
	}
	require.Len(t, pools, len(want))
	ns := framework.Namespace(ctx, t, cluster.Client, "convert")
	for _, p := range pools {
		class := p.Class
		class.Name = "e2e-convert-" + class.Name
		createDeviceClass(ctx, t, &class)
		expected, ok := want[p.ResourceName]
		require.True(t, ok, p.ResourceName)
		if len(expected) == 0 {
			continue // allocationMode All needs at least one device
		}
		claim := simpleClaim(ns, class.Name, class.Name, 0)
		claim.Spec.Devices.Requests[0].Exactly.AllocationMode = resourceapi.DeviceAllocationModeAll
		_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
		require.NoError(t, err)
		// A pod on the node without a kubelet: the scheduler allocates and
		// binds, nothing runs.
		pod := podWithClaims(ns, class.Name, "true", class.Name)
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
		_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		var got *resourceapi.ResourceClaim
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err = cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, class.Name, metav1.GetOptions{})
			return err == nil && got.Status.Allocation != nil, nil
		})
		require.NoError(t, err, "%s not allocated:\n%s", p.ResourceName, framework.DescribePod(ctx, cluster.Client, ns, class.Name))
		var devices []string
		for _, r := range got.Status.Allocation.Devices.Results {
			assert.Equal(t, node, r.Pool)
			devices = append(devices, r.Device)
		}
		slices.Sort(devices)
		assert.Equal(t, expected, devices, "%s: the class's devices are the pool's", p.ResourceName)
		t.Logf("%s: %d devices, as the classic pool", p.ResourceName, len(devices))
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, class.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	}
}
