package v1alpha1_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1alpha1 "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

const header = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig",`

func TestDecodeNetwork(t *testing.T) {
	c, err := v1alpha1.Decode([]byte(header + `"network":{"interfaceName":"net1","mac":"02:AA:00:00:00:01","vlan":100,"vlanQoS":3,"mtu":9000,"trust":true,"spoofChk":false,
		"addresses":["10.1.0.5/24","fd00::5/64"],"routes":[{"destination":"10.2.0.0/16","gateway":"10.1.0.1"},{"destination":"fd01::/64"}]}}`))
	require.NoError(t, err)
	n := c.Network
	require.NotNil(t, n)
	assert.Equal(t, "net1", n.InterfaceName)
	assert.Equal(t, "02:aa:00:00:00:01", n.NormalizedMAC())
	assert.Equal(t, 100, *n.VLAN)
	assert.Equal(t, 3, *n.VLANQoS)
	assert.Equal(t, 9000, *n.MTU)
	assert.True(t, *n.Trust)
	assert.False(t, *n.SpoofChk)
	assert.Equal(t, []string{"10.1.0.5/24", "fd00::5/64"}, n.Addresses)
	assert.Equal(t, []v1alpha1.Route{{Destination: "10.2.0.0/16", Gateway: "10.1.0.1"}, {Destination: "fd01::/64"}}, n.Routes)
	assert.False(t, n.VFSettingsOnly(), "an interface name, MTU, addresses and routes are the netdev's")

	c, err = v1alpha1.Decode([]byte(header + `"network":{"mac":"02:00:00:00:00:09","vlan":7,"minTxRate":0,"maxTxRate":500,"linkState":"disable"}}`))
	require.NoError(t, err)
	n = c.Network
	assert.Equal(t, 0, *n.MinTxRate)
	assert.Equal(t, 500, *n.MaxTxRate)
	assert.Equal(t, "disable", n.LinkState)
	assert.True(t, n.VFSettingsOnly(), "all held by the PF: a VF without a netdev can take them")
	c, err = v1alpha1.Decode([]byte(header + `"network":{"minTxRate":100,"maxTxRate":0}}`))
	require.NoError(t, err, "a minimum without a maximum bound")
	assert.Equal(t, 100, *c.Network.MinTxRate)
}

func TestDecodeNetworkErrors(t *testing.T) {
	tests := []struct{ name, network, want string }{
		{"unknown field", `{"ifName":"net1"}`, `unknown field "network.ifName"`},
		{"long name", `{"interfaceName":"a-very-long-name0"}`, `network.interfaceName: "a-very-long-name0" is longer than 15 characters`},
		{"slash", `{"interfaceName":"a/b"}`, `network.interfaceName: "a/b" holds a character`},
		{"loopback", `{"interfaceName":"lo"}`, `network.interfaceName: "lo" is the pod's loopback interface`},
		{"bad mac", `{"mac":"02:00:00:00:01"}`, `network.mac: "02:00:00:00:01" is not a MAC address`},
		{"multicast mac", `{"mac":"01:00:5e:00:00:01"}`, `network.mac: "01:00:5e:00:00:01" is a multicast address`},
		{"zero mac", `{"mac":"00:00:00:00:00:00"}`, `is the zero address`},
		{"vlan", `{"vlan":4095}`, `network.vlan: 4095 is not a VLAN ID (0-4094)`},
		{"qos", `{"vlan":5,"vlanQoS":8}`, `network.vlanQoS: 8 is not a priority (0-7)`},
		{"qos without vlan", `{"vlanQoS":2}`, `network.vlanQoS: 2 needs a vlan`},
		{"mtu", `{"mtu":10}`, `network.mtu: 10 is out of range (68-65535)`},
		{"address without prefix", `{"addresses":["10.1.0.5"]}`, `network.addresses[0]: "10.1.0.5" is not an address with a prefix length`},
		{"route destination", `{"routes":[{"destination":"10.2.0.0"}]}`, `network.routes[0].destination: "10.2.0.0" is not a prefix`},
		{"route gateway", `{"routes":[{"destination":"10.2.0.0/16","gateway":"x"}]}`, `network.routes[0].gateway: "x" is not an IP address`},
		{"route family", `{"routes":[{"destination":"10.2.0.0/16","gateway":"fd00::1"}]}`, `network.routes[0].gateway: "fd00::1" is not of the destination's family`},
		{"wrong type", `{"vlan":"100"}`, `cannot unmarshal string`},
		{"negative max rate", `{"maxTxRate":-1}`, `network.maxTxRate: -1 is negative (Mbps; 0 is no bound)`},
		{"negative min rate", `{"minTxRate":-5}`, `network.minTxRate: -5 is negative`},
		{"min above max", `{"minTxRate":200,"maxTxRate":100}`, `network.minTxRate: 200 is above maxTxRate 100`},
		{"link state", `{"linkState":"up"}`, `network.linkState: "up" is not one of auto, enable, disable`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v1alpha1.Decode([]byte(header + `"network":` + tc.network + `}`))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMergeNetwork(t *testing.T) {
	vlan, mtu, vlan2 := 10, 1500, 20
	class := v1alpha1.NetConfig{Network: &v1alpha1.Network{VLAN: &vlan, MTU: &mtu, Addresses: []string{"10.0.0.1/24"}}}
	claim := &v1alpha1.NetConfig{Network: &v1alpha1.Network{InterfaceName: "data0", VLAN: &vlan2}}
	got := class.Merge(claim).Network
	require.NotNil(t, got)
	assert.Equal(t, "data0", got.InterfaceName)
	assert.Equal(t, 20, *got.VLAN)
	assert.Equal(t, 1500, *got.MTU)
	assert.Equal(t, []string{"10.0.0.1/24"}, got.Addresses)
	assert.Equal(t, 10, *class.Network.VLAN, "merge does not modify the class config")

	rate, rate2 := 100, 300
	class = v1alpha1.NetConfig{Network: &v1alpha1.Network{MaxTxRate: &rate, MinTxRate: &rate, LinkState: "enable"}}
	got = class.Merge(&v1alpha1.NetConfig{Network: &v1alpha1.Network{MaxTxRate: &rate2, LinkState: "disable"}}).Network
	assert.Equal(t, 300, *got.MaxTxRate, "the claim's, granted, wins")
	assert.Equal(t, 100, *got.MinTxRate, "the class's stays where the claim sets none")
	assert.Equal(t, "disable", got.LinkState)
	assert.Equal(t, "enable", class.Merge(&v1alpha1.NetConfig{Network: &v1alpha1.Network{}}).Network.LinkState)

	assert.Nil(t, v1alpha1.NetConfig{}.Merge(&v1alpha1.NetConfig{}).Network, "no section anywhere: none")
	only := v1alpha1.NetConfig{}.Merge(claim).Network
	require.NotNil(t, only)
	assert.Equal(t, "data0", only.InterfaceName)
	only.InterfaceName = "x"
	assert.Equal(t, "data0", claim.Network.InterfaceName, "the merged section is a copy")
}
