//go:build kernel

package kernel

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/podnet"
)

// TestVFSettingsOnVFIOVFThroughRealPF: a VF bound to vfio-pci (no netdev)
// gets its MAC, VLAN and maximum rate through the real igb PF with the
// functions the claims executor calls at prepare (read, set and read back,
// put back); `ip link show` of the PF shows them, and the VF's line is as
// before once they are put back. What igb refuses (a minimum rate, and the
// link state if its driver has no such operation) is reported with the
// step, never taken silently.
func TestVFSettingsOnVFIOVFThroughRealPF(t *testing.T) {
	h := realHost()
	vf := vfsOf(discoverReal(t), igbPFs(t)[0])[2]
	prev, err := h.BindDriver(vf.PCIAddress, "vfio-pci")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = h.BindDriver(vf.PCIAddress, prev) })
	before := strings.TrimSpace(vfLine(t, vf.PFName, vf.VFIndex))
	t.Logf("before: %s", before)
	pn := podnet.New(podnet.Config{DriverName: "sriov.dra.dev", Host: h})

	mac, vlan, maxRate := "02:5d:aa:00:00:02", 7, 100
	n := &netconfig.Network{MAC: mac, VLAN: &vlan, MaxTxRate: &maxRate}
	set, err := pn.ReadVF(vf, n)
	require.NoError(t, err)
	require.NoError(t, pn.SetVF(set, n), "igb applies a MAC, a VLAN and a maximum rate")
	line := vfLine(t, vf.PFName, vf.VFIndex)
	t.Logf("set: %s", strings.TrimSpace(line))
	assert.Contains(t, line, "link/ether "+mac)
	assert.Contains(t, line, "vlan 7")
	assert.Contains(t, line, "max_tx_rate 100Mbps")
	require.NoError(t, pn.RestoreVF(set))
	assert.Equal(t, before, strings.TrimSpace(vfLine(t, vf.PFName, vf.VFIndex)), "put back")

	minRate := 50
	for name, n := range map[string]*netconfig.Network{
		"minTxRate": {MinTxRate: &minRate, MaxTxRate: &maxRate},
		"linkState": {LinkState: "disable"},
	} {
		set, err := pn.ReadVF(vf, n)
		require.NoError(t, err, name)
		err = pn.SetVF(set, n)
		line := strings.TrimSpace(vfLine(t, vf.PFName, vf.VFIndex))
		if err != nil {
			t.Logf("igb refuses %s: %v", name, err)
			assert.True(t, strings.Contains(err.Error(), "the PF's driver refused") || strings.Contains(err.Error(), "did not apply"), "%s: %v", name, err)
		} else {
			t.Logf("igb applies %s: %s", name, line)
			if name == "linkState" {
				assert.Contains(t, line, "link-state disable")
			}
		}
		require.NoError(t, pn.RestoreVF(set), name)
		assert.Equal(t, before, strings.TrimSpace(vfLine(t, vf.PFName, vf.VFIndex)), "%s put back", name)
	}
}
