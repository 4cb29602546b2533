package prepare_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// classOnly are the fields a claim may not set unless its class grants
// them, each with a value and how the plan shows it applied.
var classOnly = []struct {
	field, json string
	// with are granted beside field: vlanQoS needs a VLAN in its config.
	with    string
	applied func(t *testing.T, o prepare.Options)
}{
	{"driver", `"driver":"vfio-pci"`, "", func(t *testing.T, o prepare.Options) { assert.Equal(t, "vfio-pci", o.Driver) }},
	{"needVhostNet", `"needVhostNet":true`, "", func(t *testing.T, o prepare.Options) { assert.True(t, o.NeedVhostNet) }},
	{"network.vlan", `"network":{"vlan":42}`, "", func(t *testing.T, o prepare.Options) {
		require.NotNil(t, o.Network)
		assert.Equal(t, ptr.To(42), o.Network.VLAN)
	}},
	{"network.vlanQoS", `"network":{"vlan":7,"vlanQoS":3}`, "network.vlan", func(t *testing.T, o prepare.Options) {
		require.NotNil(t, o.Network)
		assert.Equal(t, ptr.To(3), o.Network.VLANQoS)
	}},
	{"network.mtu", `"network":{"mtu":9000}`, "", func(t *testing.T, o prepare.Options) {
		require.NotNil(t, o.Network)
		assert.Equal(t, ptr.To(9000), o.Network.MTU)
	}},
	{"network.trust", `"network":{"trust":true}`, "", func(t *testing.T, o prepare.Options) {
		require.NotNil(t, o.Network)
		assert.Equal(t, ptr.To(true), o.Network.Trust)
	}},
	{"network.spoofChk", `"network":{"spoofChk":false}`, "", func(t *testing.T, o prepare.Options) {
		require.NotNil(t, o.Network)
		assert.Equal(t, ptr.To(false), o.Network.SpoofChk)
	}},
}

// grantPlan resolves one claim of class "vfs" on netVF0 with the configs
// given, on a node that moves netdevs and allows vfio-pci.
func grantPlan(cfgs ...resourceapi.DeviceAllocationConfiguration) prepare.ClaimPlan {
	in := prepare.Input{DriverName: driverName, PoolName: "node", Classes: classes, PodNetwork: true, AllowedDrivers: vfioOnly,
		Inventory: discovery.NewInventory(nodeDevices), Claims: []*resourceapi.ResourceClaim{withConfig(claim("c", "vfs", netVF0.Name), cfgs...)}}
	return prepare.Resolve(in)[0]
}

func TestClaimCannotSetClassOnlyFields(t *testing.T) {
	for _, tc := range classOnly {
		t.Run(tc.field, func(t *testing.T) {
			grant := func(fields ...string) resourceapi.DeviceAllocationConfiguration {
				list := `"` + strings.Join(slices.DeleteFunc(fields, func(f string) bool { return f == "" }), `","`) + `"`
				return opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"claimMaySet":[`+list+`]`))
			}
			fromClaim := opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,`+tc.json))
			// A grant of some other field does not do.
			other := "network.trust"
			if tc.field == other {
				other = "driver"
			}
			p := grantPlan(grant(other, tc.with), fromClaim)
			require.EqualError(t, p.Err, "claim ns/c: claim config[0]: "+tc.field+
				" may only be set by a DeviceClass; DeviceClass vfs does not grant it to claims (claimMaySet)")

			fromClass := opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,`+tc.json))
			p = grantPlan(fromClass)
			require.NoError(t, p.Err, "the same field from the class")
			tc.applied(t, p.Devices[0].Options)
			assert.Empty(t, p.Devices[0].Granted)

			p = grantPlan(grant(tc.field, tc.with), fromClaim)
			require.NoError(t, p.Err, "granted by the class")
			tc.applied(t, p.Devices[0].Options)
			want := slices.DeleteFunc([]string{tc.with, tc.field}, func(f string) bool { return f == "" })
			slices.Sort(want)
			assert.Equal(t, want, p.Devices[0].Granted)
		})
	}
}

func TestGrants(t *testing.T) {
	claimVLAN := opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,"network":{"vlan":42,"interfaceName":"data0"}`))
	t.Run("claim-safe fields need no grant", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,"resourceName":"acme.io/a","rdma":true,"additionalInfo":{"k":"v"},`+
			`"network":{"interfaceName":"data0","mac":"02:00:00:00:00:07","addresses":["10.0.0.2/24"],"routes":[{"destination":"10.1.0.0/16"}]}`)))
		require.NoError(t, p.Err)
		o := p.Devices[0].Options
		assert.Equal(t, "acme.io/a", o.ResourceName)
		assert.True(t, o.RDMA)
		require.NotNil(t, o.Network)
		assert.Equal(t, "02:00:00:00:00:07", o.Network.MAC)
	})
	t.Run("a grant for another field does not do", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"claimMaySet":["network.trust"]`)), claimVLAN)
		require.ErrorContains(t, p.Err, "claim config[0]: network.vlan may only be set by a DeviceClass")
	})
	t.Run("grants of two class configs add up", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"claimMaySet":["network.trust"]`)),
			opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"claimMaySet":["network.vlan"]`)),
			opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,"network":{"vlan":42,"trust":true}`)))
		require.NoError(t, p.Err)
		assert.Equal(t, []string{"network.trust", "network.vlan"}, p.Devices[0].Granted)
	})
	t.Run("a grant for another request does not do", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClass, []string{"other"}, netConfig(`,"claimMaySet":["network.vlan"]`)), claimVLAN)
		require.ErrorContains(t, p.Err, "network.vlan may only be set by a DeviceClass")
	})
	t.Run("a claim cannot grant itself", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,"claimMaySet":["network.vlan"]`)), claimVLAN)
		require.ErrorContains(t, p.Err, "claim config[0]: claimMaySet may only be set by a DeviceClass")
	})
	t.Run("the claim's granted value wins over the class's", func(t *testing.T) {
		p := grantPlan(opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"network":{"vlan":5},"claimMaySet":["network.vlan"]`)), claimVLAN)
		require.NoError(t, p.Err)
		assert.Equal(t, ptr.To(42), p.Devices[0].Options.Network.VLAN)
	})
}

func TestAllowedDrivers(t *testing.T) {
	bind := func(driver string) resourceapi.DeviceAllocationConfiguration {
		return opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"driver":"`+driver+`"`))
	}
	resolve := func(allowed []string, cfg resourceapi.DeviceAllocationConfiguration, dev discovery.Device) prepare.ClaimPlan {
		in := prepare.Input{DriverName: driverName, PoolName: "node", Classes: classes, AllowedDrivers: allowed,
			Inventory: discovery.NewInventory(nodeDevices), Claims: []*resourceapi.ResourceClaim{withConfig(claim("c", "vfs", dev.Name), cfg)}}
		return prepare.Resolve(in)[0]
	}
	p := resolve(vfioOnly, bind("uio_pci_generic"), netVF0)
	require.EqualError(t, p.Err, `claim ns/c: device pci-0000-3b-02-0: driver "uio_pci_generic" is not allowed on this node (--allowed-drivers=vfio-pci)`)
	p = resolve(nil, bind("vfio-pci"), netVF0)
	require.ErrorContains(t, p.Err, `driver "vfio-pci" is not allowed on this node (--allowed-drivers=)`, "an empty list allows no rebind")
	p = resolve([]string{"vfio-pci", "uio_pci_generic"}, bind("uio_pci_generic"), netVF0)
	require.NoError(t, p.Err)
	driver, ok := p.Devices[0].Rebind()
	assert.True(t, ok)
	assert.Equal(t, "uio_pci_generic", driver)
	// Asking for the driver a device already has is no rebind.
	p = resolve(nil, bind("iavf"), netVF0)
	require.NoError(t, p.Err)
	_, ok = p.Devices[0].Rebind()
	assert.False(t, ok)
}

func TestAdminAccessIsNeverReconfigured(t *testing.T) {
	c := withConfig(claim("admin", "vfs", netVF0.Name), opaque(resourceapi.AllocationConfigSourceClass, nil,
		netConfig(`,"driver":"vfio-pci","network":{"interfaceName":"net1","vlan":5}`)))
	c.Status.Allocation.Devices.Results[0].AdminAccess = ptr.To(true)
	in := prepare.Input{DriverName: driverName, PoolName: "node", Classes: classes, PodNetwork: true, AllowedDrivers: vfioOnly,
		Inventory: discovery.NewInventory(nodeDevices), Claims: []*resourceapi.ResourceClaim{c}}
	p := prepare.Resolve(in)[0]
	require.NoError(t, p.Err)
	_, rebind := p.Devices[0].Rebind()
	assert.False(t, rebind)
	assert.Nil(t, p.Devices[0].Options.Network, "the netdev of a device another pod may use is never moved")
}
