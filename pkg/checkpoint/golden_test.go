package checkpoint_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

// goldenV1 is what testdata/v1.json holds: written by the driver of the
// format's first release (commit f8041e1) from these values, one claim of
// each kind a node has (see testdata/README.md).
var goldenV1 = checkpoint.Data{BootID: "8b1c2a4e-5d6f-4a7b-9c0d-1e2f3a4b5c6d", Claims: map[string]checkpoint.Claim{
	"11111111-aaaa-4bbb-8ccc-000000000001": {Namespace: "dpdk", Name: "vfio-claim", State: checkpoint.StatePrepared,
		CDISpec:   "/var/run/cdi/sriov.dra.dev-net_11111111-aaaa-4bbb-8ccc-000000000001.json",
		InfoFiles: []string{"/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov_dpdk-0000:3b:02.1-device.json"},
		Pods:      []string{"pod-uid-1"},
		Devices: []checkpoint.Device{{Request: "vf", Pool: "node-a", Name: "pci-0000-3b-02-1", PCIAddress: "0000:3b:02.1",
			CDIDeviceIDs:   []string{"sriov.dra.dev/net=11111111-aaaa-4bbb-8ccc-000000000001-pci-0000-3b-02-1"},
			OriginalDriver: "iavf", BoundDriver: "vfio-pci"}}},
	"22222222-aaaa-4bbb-8ccc-000000000002": {Namespace: "web", Name: "net-claim", State: checkpoint.StatePrepared,
		CDISpec: "/var/run/cdi/sriov.dra.dev-net_22222222-aaaa-4bbb-8ccc-000000000002.json",
		Pods:    []string{"pod-uid-2"},
		Devices: []checkpoint.Device{{Request: "vf", Pool: "node-a", Name: "pci-0000-3b-02-2", PCIAddress: "0000:3b:02.2",
			CDIDeviceIDs:  []string{"sriov.dra.dev/net=22222222-aaaa-4bbb-8ccc-000000000002-pci-0000-3b-02-2"},
			InterfaceName: "net1", HardwareAddress: "02:5d:aa:00:00:01",
			Network: &netconfig.Network{InterfaceName: "net1", MAC: "02:5d:aa:00:00:01", VLAN: ptr.To(0), MTU: ptr.To(1400), Addresses: []string{"10.77.0.5/24"},
				Routes: []netconfig.Route{{Destination: "10.78.0.0/16", Gateway: "10.77.0.1"}}},
			InPod: &checkpoint.InPod{State: checkpoint.InPodAttached, PodUID: "pod-uid-2", Pod: "web/server-0", SandboxID: "sandbox-2",
				NetNS: "/var/run/netns/cni-2", IfName: "net1", MAC: "02:5d:aa:00:00:01", IPs: []string{"10.77.0.5/24"},
				Host: checkpoint.Link{Index: 12, Name: "ens1f0v2", MAC: "02:5d:00:00:00:02", MTU: 1500, Up: true},
				PF:   "ens1f0", VFIndex: 2,
				VFRestore: &checkpoint.VFSettings{MAC: ptr.To("00:00:00:00:00:00"), VLAN: ptr.To(0), QoS: ptr.To(0), Trust: ptr.To(false), SpoofChk: ptr.To(true)}}}}},
	"33333333-aaaa-4bbb-8ccc-000000000003": {Namespace: "dpdk", Name: "half", State: checkpoint.StatePreparing,
		Devices: []checkpoint.Device{{Request: "vf", Pool: "node-a", Name: "pci-0000-3b-02-3", PCIAddress: "0000:3b:02.3",
			OriginalDriver: "iavf", BoundDriver: "vfio-pci"}}},
	"44444444-aaaa-4bbb-8ccc-000000000004": {Namespace: "legacy", Name: "adopted", State: checkpoint.StatePrepared, Rebuilt: true,
		CDISpec: "/var/run/cdi/sriov.dra.dev-net_44444444-aaaa-4bbb-8ccc-000000000004.json",
		Devices: []checkpoint.Device{{Name: "pci-0000-3b-02-4", PCIAddress: "0000:3b:02.4",
			CDIDeviceIDs: []string{"sriov.dra.dev/net=44444444-aaaa-4bbb-8ccc-000000000004-pci-0000-3b-02-4"}}}},
}}

// golden lists every golden file with what it holds. A format change adds
// its file here; none is ever removed.
var golden = map[string]checkpoint.Data{
	"v1.json": goldenV1,
}

// TestGoldenCheckpointsStillRead: a driver reads the checkpoint of every
// earlier release with all its claims, as a rolling update from any of them
// needs.
func TestGoldenCheckpointsStillRead(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, ok := golden[filepath.Base(f)]
			require.True(t, ok, "%s has no expected content in golden", f)
			// Load from a copy: a reader must never change the file.
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "checkpoint.json")
			require.NoError(t, os.WriteFile(path, b, 0o600))
			got, stale, err := checkpoint.Load(path, want.BootID)
			require.NoError(t, err)
			assert.False(t, stale)
			assert.Equal(t, want, got)

			// Written again by today's driver, it reads back the same.
			require.NoError(t, checkpoint.Save(path, got))
			again, _, err := checkpoint.Load(path, want.BootID)
			require.NoError(t, err)
			assert.Equal(t, want, again)
		})
	}
}
