package discovery_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// TestUplinksAreNeverOffered: whatever sits between the default route and
// the hardware, the function under it is not a device; the others are.
func TestUplinksAreNeverOffered(t *testing.T) {
	e810 := func(addr, ifName string, vfs int) simhost.PF {
		return simhost.PF{Address: addr, Model: "e810", IfName: ifName, NumVFs: vfs}
	}
	tests := []struct {
		name    string
		spec    simhost.Spec
		offered []string
		// uplinks maps each uplink function to the interface named in its reason.
		uplinks map[string]string
	}{
		{
			name: "virtio NIC",
			spec: simhost.Spec{PFs: []simhost.PF{{Address: "0000:07:00.0", Model: "virtio", IfName: "eth0", DefaultRoute: true},
				e810("0000:3b:00.0", "ens1f0", 0)}},
			offered: []string{"pci-0000-3b-00-0"},
			uplinks: map[string]string{"0000:07:00.0": "carries the default route (interface eth0)"},
		},
		{
			name: "bond of two PFs",
			spec: simhost.Spec{PFs: []simhost.PF{e810("0000:3b:00.0", "ens1f0", 0), e810("0000:3b:00.1", "ens1f1", 0), e810("0000:5b:00.0", "ens2f0", 0)},
				Uppers: []simhost.Upper{{Name: "bond0", Kind: "bond", Lowers: []string{"ens1f0", "ens1f1"}, DefaultRoute: true}}},
			offered: []string{"pci-0000-5b-00-0"},
			uplinks: map[string]string{"0000:3b:00.0": "carries the default route (interface bond0)", "0000:3b:00.1": "carries the default route (interface bond0)"},
		},
		{
			name: "bridge over a PF",
			spec: simhost.Spec{PFs: []simhost.PF{e810("0000:3b:00.0", "ens1f0", 0), e810("0000:5b:00.0", "ens2f0", 0)},
				Uppers: []simhost.Upper{{Name: "br0", Kind: "bridge", Lowers: []string{"ens2f0"}, DefaultRoute: true}}},
			offered: []string{"pci-0000-3b-00-0"},
			uplinks: map[string]string{"0000:5b:00.0": "carries the default route (interface br0)"},
		},
		{
			name: "VLAN over a bond over a PF",
			spec: simhost.Spec{PFs: []simhost.PF{e810("0000:3b:00.0", "ens1f0", 0), e810("0000:5b:00.0", "ens2f0", 0)},
				Uppers: []simhost.Upper{{Name: "bond1", Kind: "bond", Lowers: []string{"ens2f0"}},
					{Name: "bond1.100", Kind: "vlan", Lowers: []string{"bond1"}, DefaultRoute: true}}},
			offered: []string{"pci-0000-3b-00-0"},
			uplinks: map[string]string{"0000:5b:00.0": "carries the default route (interface bond1.100)"},
		},
		{
			name: "VLAN over a PF",
			spec: simhost.Spec{PFs: []simhost.PF{e810("0000:3b:00.0", "ens1f0", 0), e810("0000:5b:00.0", "ens2f0", 0)},
				Uppers: []simhost.Upper{{Name: "ens2f0.100", Kind: "vlan", Lowers: []string{"ens2f0"}, DefaultRoute: true}}},
			offered: []string{"pci-0000-3b-00-0"},
			uplinks: map[string]string{"0000:5b:00.0": "carries the default route (interface ens2f0.100)"},
		},
		{
			name: "a VF, whose PF is kept out as well",
			spec: simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4,
				VFs: []simhost.VF{{Index: 2, DefaultRoute: true}}}}},
			offered: []string{"pci-0000-3b-02-0", "pci-0000-3b-02-1", "pci-0000-3b-02-3"},
			uplinks: map[string]string{"0000:3b:02.2": "carries the default route (interface ens1f0v2)",
				"0000:3b:00.0": "is the PF of 0000:3b:02.2, which carries the default route (interface ens1f0v2)"},
		},
		{
			name:    "the management profile: an I210, a virtio NIC and a bond, each with a default route",
			spec:    simhosttest.Profiles(t, "mgmt", "fpga"),
			offered: []string{"pci-0000-d8-00-0"},
			uplinks: map[string]string{"0000:06:00.0": "carries the default route (interface eno1)", "0000:07:00.0": "carries the default route (interface eth0)",
				"0000:08:00.0": "carries the default route (interface bond0)", "0000:09:00.0": "carries the default route (interface bond0)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := simhosttest.NewHost(t, tc.spec)
			inv := discover(t, h)
			assert.Equal(t, tc.offered, names(inv))
			assert.Equal(t, tc.uplinks, inv.Uplinks().Functions)
			assert.Empty(t, inv.Uplinks().Unresolved)
			excluded := map[string]string{}
			for _, e := range inv.Excluded() {
				excluded[e.PCIAddress] = e.Reason
			}
			for addr, why := range tc.uplinks {
				assert.Equal(t, "uplink: "+why, excluded[addr], "discover --all shows why %s is not offered", addr)
			}
		})
	}
}

func TestVirtioNetdevIsFound(t *testing.T) {
	h, _ := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:07:00.0", Model: "virtio", IfName: "eth1"}}})
	inv := discover(t, h)
	d := get(t, inv, "pci-0000-07-00-0")
	assert.Equal(t, "eth1", d.IfName)
	assert.Equal(t, "eth1", d.PFName)
	assert.Equal(t, "ether", d.LinkType)
	assert.Equal(t, "virtio-pci", d.Driver)
}

// TestUnresolvedUplink: a default route on an interface with no device
// below it (a tunnel) is a problem naming it, and keeps every PF from being
// rebound; the devices are still offered.
func TestUnresolvedUplink(t *testing.T) {
	h, root := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0"}}})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sys/devices/virtual/net/wg0"), 0o755))
	require.NoError(t, os.Symlink("../../devices/virtual/net/wg0", filepath.Join(root, "sys/class/net/wg0")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/route"),
		[]byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nwg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n"), 0o644))
	inv := discover(t, h)
	assert.Equal(t, []string{"pci-0000-3b-00-0"}, names(inv))
	assert.Equal(t, []string{"wg0"}, inv.Uplinks().Unresolved)
	require.Len(t, inv.Problems(), 1)
	assert.Contains(t, inv.Problems()[0].String(), "default-route interface wg0 cannot be traced to a PCI device")
	pf := get(t, inv, "pci-0000-3b-00-0")
	why, protected := inv.Uplinks().Protects(&pf)
	assert.True(t, protected)
	assert.Contains(t, why, "wg0")
}
