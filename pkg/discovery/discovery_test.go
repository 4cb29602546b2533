package discovery_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

func discover(t *testing.T, h discovery.Host) *discovery.Inventory {
	t.Helper()
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	return inv
}

func names(inv *discovery.Inventory) []string {
	var out []string
	for d := range inv.All() {
		out = append(out, d.Name)
	}
	return out
}

func get(t *testing.T, inv *discovery.Inventory, name string) discovery.Device {
	t.Helper()
	d, ok := inv.Get(name)
	require.Truef(t, ok, "device %s not discovered (%d devices)", name, inv.Len())
	return d
}

// attrs returns a device's published attributes as plain values.
func attrs(t *testing.T, inv *discovery.Inventory, name string) map[string]any {
	d := get(t, inv, name)
	return d.PlainAttributes()
}

func TestProfiles(t *testing.T) {
	tests := []struct {
		profile string
		want    []string
		// attributes asserted on the first device in want
		attrs map[string]any
		// attributes that must be absent on it
		absent []string
	}{
		{
			profile: "e810",
			want: []string{"pci-0000-3b-02-0", "pci-0000-3b-02-1", "pci-0000-3b-02-2", "pci-0000-3b-02-3",
				"pci-0000-3b-02-4", "pci-0000-3b-02-5", "pci-0000-3b-02-6", "pci-0000-3b-02-7",
				"pci-0000-3b-11-0", "pci-0000-3b-11-1", "pci-0000-3b-11-2", "pci-0000-3b-11-3"},
			attrs: map[string]any{"vendor": "8086", "deviceID": "1889", "driver": "iavf", "pciAddress": "0000:3b:02.0",
				"functionType": "vf", "deviceType": "netDevice", "pfName": "ens1f0", "rootDevice": "0000:3b:00.0",
				"vfIndex": int64(0), "ifName": "ens1f0v0", "linkType": "ether", "rdma": false,
				"ddpProfile": "ICE OS Default Package", "eswitchMode": "legacy", "numaNode": int64(0),
				"resource.kubernetes.io/pciBusID": "0000:3b:02.0", "resource.kubernetes.io/pcieRoot": "pci0000:00"},
			absent: []string{"sfNum", "auxType", "vdpaType"},
		},
		{
			profile: "cx6dx",
			want:    []string{"pci-0000-5e-00-2", "pci-0000-5e-00-3", "pci-0000-5e-00-4", "pci-0000-5e-00-5"},
			attrs: map[string]any{"vendor": "15b3", "deviceID": "101e", "driver": "mlx5_core", "rdma": true,
				"eswitchMode": "switchdev", "pfName": "ens2f0np0", "numaNode": int64(1)},
		},
		{
			profile: "bf2",
			want:    []string{"aux-mlx5-core-sf-2", "aux-mlx5-core-sf-3", "aux-mlx5-core-sf-4", "pci-0000-03-00-0"},
			attrs: map[string]any{"functionType": "sf", "deviceType": "auxNetDevice", "auxType": "sf", "sfNum": int64(1),
				"pfName": "p0", "rootDevice": "0000:03:00.0", "pciAddress": "0000:03:00.0", "vendor": "15b3",
				"deviceID": "a2d6", "rdma": true, "eswitchMode": "switchdev", "ifName": "enp3s0f0s1"},
			absent: []string{"vfIndex", "iommuGroup"},
		},
		{
			profile: "infiniband",
			want:    []string{"pci-0000-af-00-2", "pci-0000-af-00-3"},
			attrs:   map[string]any{"linkType": "infiniband", "rdma": true, "pfName": "ib0", "deviceID": "1014"},
		},
		{
			profile: "vdpa",
			want:    []string{"pci-0000-65-00-2", "pci-0000-65-00-3"},
			attrs:   map[string]any{"vdpaType": "vhost"},
		},
		{
			profile: "fpga",
			want:    []string{"pci-0000-d8-00-0"},
			attrs: map[string]any{"deviceType": "accelerator", "functionType": "pf", "vendor": "8086", "deviceID": "0d90",
				"driver": "dfl-pci", "rootDevice": "0000:d8:00.0"},
			absent: []string{"ifName", "linkType", "pfName", "rdma"},
		},
		{
			profile: "uio",
			want:    []string{"pci-0000-86-02-0", "pci-0000-86-02-1"},
		},
		{profile: "mgmt", want: nil},
		{
			profile: "igb",
			want: []string{"pci-0000-01-10-0", "pci-0000-01-10-2", "pci-0000-01-10-4", "pci-0000-01-10-6",
				"pci-0000-02-10-0", "pci-0000-02-10-2", "pci-0000-02-10-4", "pci-0000-02-10-6"},
			attrs:  map[string]any{"vendor": "8086", "deviceID": "10ca", "driver": "igbvf", "pfName": "enp1s0", "vfIndex": int64(0)},
			absent: []string{"numaNode", "eswitchMode", "ddpProfile"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			h, _ := simhosttest.NewProfileHost(t, tc.profile)
			inv := discover(t, h)
			assert.Equal(t, tc.want, names(inv))
			assert.Empty(t, inv.Problems())
			if len(tc.want) == 0 {
				return
			}
			got := attrs(t, inv, tc.want[0])
			for k, v := range tc.attrs {
				assert.Equalf(t, v, got[k], "attribute %s", k)
			}
			for _, k := range tc.absent {
				assert.NotContainsf(t, got, k, "attribute %s", k)
			}
		})
	}
}

func TestLargeProfile(t *testing.T) {
	h, _ := simhosttest.NewProfileHost(t, "large")
	inv := discover(t, h)
	require.Equal(t, 2048, inv.Len())
	d := get(t, inv, "pci-0000-cf-11-7")
	assert.Equal(t, 127, d.VFIndex)
	assert.Equal(t, "ens25f0", d.PFName)
	assert.Equal(t, 1, d.NUMANode)
}

func TestDeviceDetails(t *testing.T) {
	h, _ := simhosttest.NewProfileHost(t, "e810", "uio", "vdpa", "bf2", "cx6dx")
	inv := discover(t, h)

	vfio := get(t, inv, "pci-0000-3b-02-6")
	assert.Equal(t, "vfio-pci", vfio.Driver)
	assert.Empty(t, vfio.IfName, "a vfio-pci VF has no netdev")
	assert.Equal(t, "ether", vfio.LinkType, "link type comes from the PF")
	assert.GreaterOrEqual(t, vfio.IOMMUGroup, 0)
	assert.False(t, vfio.IOMMUNoIOMMU)
	assert.Equal(t, int64(vfio.IOMMUGroup), attrs(t, inv, vfio.Name)["iommuGroup"])

	uio := get(t, inv, "pci-0000-86-02-1")
	assert.Equal(t, "igb_uio", uio.Driver)
	assert.Equal(t, "uio0", uio.UIODevice)

	virtio := get(t, inv, "pci-0000-65-00-3")
	assert.Equal(t, "virtio", virtio.VDPAType)
	assert.Empty(t, virtio.VDPADevice)
	vhost := get(t, inv, "pci-0000-65-00-2")
	assert.Equal(t, "vhost-vdpa-0", vhost.VDPADevice)

	rdma := get(t, inv, "pci-0000-5e-00-2")
	assert.True(t, rdma.RDMA)
	assert.Len(t, rdma.RDMADevices, 1)
	assert.Len(t, rdma.RDMACharDevices, 3, "uverbs, umad and issm")
	assert.Regexp(t, `^02:00:00:`, rdma.HardwareAddress)
	assert.Equal(t, "up", rdma.OperState)

	sf := get(t, inv, "aux-mlx5-core-sf-2")
	assert.Equal(t, "mlx5_core.sf.2", sf.ID())
	vf := get(t, inv, "pci-0000-3b-02-0")
	assert.Equal(t, "0000:3b:02.0", vf.ID())
}

// TestPCIeRootsOfSeveralRootComplexes: devices under different root
// complexes get different roots; those under one share it.
func TestPCIeRootsOfSeveralRootComplexes(t *testing.T) {
	// The profiles place e810 and fpga under pci0000:00, cx6dx under
	// pci0000:5d, infiniband under pci0000:ae and uio under pci0000:85.
	h, _ := simhosttest.NewProfileHost(t, "e810", "cx6dx", "infiniband", "uio", "fpga")
	inv := discover(t, h)
	for name, want := range map[string]string{
		"pci-0000-3b-02-0": "pci0000:00", "pci-0000-3b-11-3": "pci0000:00", "pci-0000-d8-00-0": "pci0000:00",
		"pci-0000-5e-00-2": "pci0000:5d", "pci-0000-5e-00-5": "pci0000:5d",
		"pci-0000-af-00-2": "pci0000:ae",
		"pci-0000-86-02-0": "pci0000:85", "pci-0000-86-02-1": "pci0000:85",
	} {
		assert.Equal(t, want, get(t, inv, name).PCIeRoot, name)
	}
}

// TestPartitionKeys: the infiniband profile's VFs carry 0x7fff with 0x8001
// and 0x8002 in port 1's table (an empty 0x0000 slot after them); the
// published attribute lists them comma-separated, sorted.
func TestPartitionKeys(t *testing.T) {
	h, dir := simhosttest.NewProfileHost(t, "infiniband")
	// A slot written in upper case reads as the same key.
	slot := filepath.Join(dir, "sys/devices/pci0000:ae/0000:00:01.0/0000:af:00.3/infiniband/mlx5_2/ports/1/pkeys/1")
	require.NoError(t, os.WriteFile(slot, []byte("0X8002\n"), 0o644))
	inv := discover(t, h)
	for name, want := range map[string][]string{
		"pci-0000-af-00-2": {"0x7fff", "0x8001"},
		"pci-0000-af-00-3": {"0x7fff", "0x8002"},
	} {
		d, ok := inv.Get(name)
		require.True(t, ok, name)
		assert.Equal(t, want, d.PKeys, name)
		assert.Equal(t, strings.Join(want, ","), *d.Attributes()[discovery.AttrPKeys].StringValue, name)
	}
}
