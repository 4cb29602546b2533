package v1alpha1_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1alpha1 "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

// The split is the security boundary between tenants and the admin: written
// out here by hand, so that a new field, or one moved across, shows up.
func TestClassOnlyFields(t *testing.T) {
	assert.Equal(t, []string{"needVhostNet", "driver", "network.vlan", "network.vlanQoS", "network.mtu",
		"network.trust", "network.spoofChk", "network.minTxRate", "network.maxTxRate", "network.linkState", "claimMaySet"}, v1alpha1.ClassOnlyFields())
	assert.Equal(t, []string{"needVhostNet", "driver", "network.vlan", "network.vlanQoS", "network.mtu",
		"network.trust", "network.spoofChk", "network.minTxRate", "network.maxTxRate", "network.linkState"}, v1alpha1.GrantableFields())
}

func TestSetFields(t *testing.T) {
	tests := []struct{ name, json string }{
		{"nothing", ``},
		{"empty strings are unset", `,"driver":"","resourceName":""`},
		{"nulls are unset", `,"needVhostNet":null,"network":{"vlan":null}`},
		{"false is set", `,"needVhostNet":false,"rdma":false`},
		{"zero is set", `,"network":{"vlan":0,"mtu":1500}`},
		{"every field", `,"resourceName":"a/b","needVhostNet":true,"rdma":true,"additionalInfo":{"k":"v"},"driver":"vfio-pci",
			"network":{"interfaceName":"n","mac":"02:00:00:00:00:01","vlan":1,"vlanQoS":1,"mtu":1500,"trust":true,"spoofChk":true,
			"minTxRate":0,"maxTxRate":100,"linkState":"enable","addresses":["10.0.0.1/24"],"routes":[{"destination":"10.1.0.0/16"}]},"claimMaySet":["driver"]`},
	}
	// apiVersion and kind are always set.
	want := map[string][]string{
		"nothing":                 {"apiVersion", "kind"},
		"empty strings are unset": {"apiVersion", "kind"},
		"nulls are unset":         {"apiVersion", "kind"},
		"false is set":            {"apiVersion", "kind", "needVhostNet", "rdma"},
		"zero is set":             {"apiVersion", "kind", "network.vlan", "network.mtu"},
		"every field": {"apiVersion", "kind", "resourceName", "needVhostNet", "rdma", "additionalInfo", "driver", "network.interfaceName", "network.mac",
			"network.vlan", "network.vlanQoS", "network.mtu", "network.trust", "network.spoofChk", "network.minTxRate", "network.maxTxRate", "network.linkState", "network.addresses", "network.routes", "claimMaySet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v1alpha1.Decode([]byte(header[:len(header)-1] + tc.json + `}`))
			require.NoError(t, err)
			assert.Equal(t, want[tc.name], c.SetFields())
		})
	}
}

func TestCheckClaim(t *testing.T) {
	tests := []struct {
		name, json string
		granted    []string
		used       []string
		err        string
	}{
		{name: "claim-safe fields only", json: `"resourceName":"a/b","rdma":true,"additionalInfo":{"k":"v"},"network":{"interfaceName":"net1","mac":"02:00:00:00:00:01","addresses":["10.0.0.1/24"],"routes":[{"destination":"10.1.0.0/16"}]}`},
		{name: "driver", json: `"driver":"vfio-pci"`, err: "driver may only be set by a DeviceClass; DeviceClass vfs does not grant it to claims (claimMaySet)"},
		{name: "needVhostNet false too", json: `"needVhostNet":false`, err: "needVhostNet may only be set by a DeviceClass"},
		{name: "vlan", json: `"network":{"vlan":7}`, err: "network.vlan may only be set by a DeviceClass"},
		{name: "vlan 0", json: `"network":{"vlan":0}`, err: "network.vlan may only be set by a DeviceClass"},
		{name: "qos", json: `"network":{"vlan":7,"vlanQoS":1}`, granted: []string{"network.vlan"}, err: "network.vlanQoS may only be set"},
		{name: "mtu", json: `"network":{"mtu":9000}`, err: "network.mtu may only be set"},
		{name: "trust", json: `"network":{"trust":true}`, err: "network.trust may only be set"},
		{name: "spoofChk", json: `"network":{"spoofChk":false}`, err: "network.spoofChk may only be set"},
		{name: "a claim never grants", json: `"claimMaySet":["driver"]`, granted: []string{"driver", "claimMaySet"}, err: "claimMaySet may only be set"},
		{name: "the first in declaration order", json: `"network":{"trust":true},"driver":"x"`, err: "driver may only be set"},
		{name: "granted", json: `"network":{"vlan":7,"trust":true},"rdma":true`, granted: []string{"network.trust", "network.vlan"}, used: []string{"network.vlan", "network.trust"}},
		{name: "granted other", json: `"network":{"vlan":7}`, granted: []string{"network.trust"}, err: "network.vlan may only be set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v1alpha1.Decode([]byte(header + tc.json + `}`))
			require.NoError(t, err)
			used, err := v1alpha1.CheckClaim(c, "vfs", tc.granted)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var ng *v1alpha1.NotGrantedError
				require.ErrorAs(t, err, &ng)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.used, used)
		})
	}
}

func TestGrantsValidated(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`["network.vlna"]`, `claimMaySet[0]: "network.vlna" is not a field a class can grant (one of needVhostNet, driver, network.vlan, network.vlanQoS, network.mtu, network.trust, network.spoofChk, network.minTxRate, network.maxTxRate, network.linkState)`},
		{`["driver","claimMaySet"]`, `claimMaySet[1]: "claimMaySet" is not a field a class can grant`},
		{`["network.mac"]`, `claimMaySet[0]: "network.mac" is not a field a class can grant`},
		{`["driver","driver"]`, `claimMaySet[1]: "driver" is listed twice`},
		{`"driver"`, `cannot unmarshal string into Go struct field NetConfig.claimMaySet of type []string`},
	} {
		_, err := v1alpha1.Decode([]byte(header + `"claimMaySet":` + tc.json + `}`))
		assert.ErrorContains(t, err, tc.want, tc.json)
	}
	c, err := v1alpha1.Decode([]byte(header + `"claimMaySet":["network.vlan","driver"]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"network.vlan", "driver"}, c.ClaimMaySet)
}

func TestMergeUnitesGrants(t *testing.T) {
	a := v1alpha1.NetConfig{ClaimMaySet: []string{"network.vlan"}}
	got := a.Merge(&v1alpha1.NetConfig{ClaimMaySet: []string{"driver", "network.vlan"}})
	assert.Equal(t, []string{"driver", "network.vlan"}, got.ClaimMaySet)
	assert.Equal(t, []string{"network.vlan"}, a.ClaimMaySet, "merge does not modify the earlier config")
}
