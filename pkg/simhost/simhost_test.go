package simhost_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

func readlink(t *testing.T, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	require.NoError(t, err)
	return target
}

// TestKernelLayout checks the simulator against the layout a 6.12 kernel
// shows for igb/igbvf (the facts the kernel test tier relies on).
func TestKernelLayout(t *testing.T) {
	_, dir := simhosttest.NewProfileHost(t, "igb")
	sys := filepath.Join(dir, "sys")
	assert.Equal(t, "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0", readlink(t, filepath.Join(sys, "bus/pci/devices/0000:01:00.0")))
	pf := filepath.Join(sys, "devices/pci0000:00/0000:00:01.0/0000:01:00.0")
	vf := filepath.Join(sys, "devices/pci0000:00/0000:00:01.0/0000:01:10.2")
	assert.Equal(t, "../../../../bus/pci/drivers/igb", readlink(t, filepath.Join(pf, "driver")))
	assert.Equal(t, "../../../../kernel/iommu_groups/2", readlink(t, filepath.Join(pf, "iommu_group")), "bridges, then PFs, then VFs, as the kernel numbers them")
	assert.Equal(t, "../0000:01:10.2", readlink(t, filepath.Join(pf, "virtfn1")))
	assert.Equal(t, "../0000:01:00.0", readlink(t, filepath.Join(vf, "physfn")))
	for file, want := range map[string]string{
		"vendor": "0x8086\n", "device": "0x10c9\n", "class": "0x020000\n", "sriov_totalvfs": "7\n", "sriov_numvfs": "4\n",
		"sriov_offset": "128\n", "sriov_stride": "2\n", "sriov_vf_device": "10ca\n",
	} {
		b, err := os.ReadFile(filepath.Join(pf, file))
		require.NoError(t, err)
		assert.Equal(t, want, string(b), file)
	}
	_, err := os.Stat(filepath.Join(vf, "net/enp1s0v1/operstate"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(vf, "net/enp1s0v1/phys_port_name"))
	assert.True(t, os.IsNotExist(err), "VF netdevs have no phys_port_name")
	assert.Equal(t, "../../devices/pci0000:00/0000:00:01.0/0000:01:00.0/net/enp1s0", readlink(t, filepath.Join(sys, "class/net/enp1s0")))
}

func TestVFIOAndLinkDown(t *testing.T) {
	_, dir := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0",
		NumVFs: 2, LinkDown: true, VFs: []simhost.VF{{Index: 1, Driver: "vfio-pci"}}}}})
	vf := filepath.Join(dir, "sys/bus/pci/devices/0000:3b:02.1")
	_, err := os.Stat(filepath.Join(vf, "net"))
	assert.True(t, os.IsNotExist(err), "a vfio-pci VF has no netdev")
	group := filepath.Base(readlink(t, filepath.Join(vf, "iommu_group")))
	_, err = os.Stat(filepath.Join(dir, "dev/vfio", group))
	assert.NoError(t, err)
	_, err = os.ReadFile(filepath.Join(dir, "sys/class/net/ens1f0/carrier"))
	assert.Error(t, err, "a down PF's carrier cannot be read")
	b, err := os.ReadFile(filepath.Join(dir, "sys/class/net/ens1f0v0/carrier"))
	require.NoError(t, err)
	assert.Equal(t, "0\n", string(b))
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		spec simhost.Spec
		want string
	}{
		{"bad address", simhost.Spec{PFs: []simhost.PF{{Address: "3b:00.0", Model: "e810"}}}, "is not a PCI address"},
		{"unknown model", simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "cx9"}}}, `unknown model "cx9"`},
		{"too many VFs", simhost.Spec{PFs: []simhost.PF{{Address: "0000:01:00.0", Model: "igb", NumVFs: 8}}}, "numVFs 8 exceeds totalVFs 7"},
		{"no IDs", simhost.Spec{PFs: []simhost.PF{{Address: "0000:01:00.0"}}}, "vendor and device are required"},
		{"overlap", simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", NumVFs: 2}, {Address: "0000:3b:02.1", Model: "i210"}}}, "0000:3b:02.1 is used twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorContains(t, simhost.Write(t.TempDir(), tc.spec), tc.want)
		})
	}
}

func TestProfilesCombine(t *testing.T) {
	var all []string
	for _, p := range simhost.ProfileNames() {
		if p != "large" {
			all = append(all, p)
		}
	}
	spec, err := simhost.Combine(all...)
	require.NoError(t, err)
	require.NoError(t, simhost.Write(t.TempDir(), spec), "every profile but large fits in one host")
}
