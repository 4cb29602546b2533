package v1alpha1_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1alpha1 "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

func TestDecode(t *testing.T) {
	c, err := v1alpha1.Decode([]byte(`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/sriov_dpdk","needVhostNet":true,"rdma":false,"driver":"vfio-pci","additionalInfo":{"token":"x"}}`))
	require.NoError(t, err)
	assert.Equal(t, "intel.com/sriov_dpdk", c.ResourceName)
	assert.True(t, v1alpha1.Bool(c.NeedVhostNet))
	assert.False(t, v1alpha1.Bool(c.RDMA))
	assert.Equal(t, "vfio-pci", c.Driver)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"unknown field", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","needVhostnet":true}`, `unknown field "needVhostnet"`},
		{"wrong kind", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"Config"}`, `kind: "Config", want "NetConfig"`},
		{"wrong version", `{"apiVersion":"sriov.dra.dev/v1","kind":"NetConfig"}`, `apiVersion: "sriov.dra.dev/v1", want "sriov.dra.dev/v1alpha1"`},
		{"bad resourceName", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"a b"}`, `resourceName: "a b"`},
		{"bad driver", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"../x"}`, `driver: "../x"`},
		{"wrong type", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","rdma":"yes"}`, `cannot unmarshal`},
		{"duplicate", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"a","driver":"b"}`, `duplicate field "driver"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v1alpha1.Decode([]byte(tc.json))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMergeClassThenClaim(t *testing.T) {
	yes, no := true, false
	class := v1alpha1.NetConfig{ResourceName: "intel.com/a", NeedVhostNet: &yes, AdditionalInfo: map[string]string{"a": "1", "b": "1"}}
	claim := &v1alpha1.NetConfig{NeedVhostNet: &no, Driver: "vfio-pci", AdditionalInfo: map[string]string{"b": "2"}}
	got := class.Merge(claim)
	assert.Equal(t, "intel.com/a", got.ResourceName)
	assert.False(t, v1alpha1.Bool(got.NeedVhostNet))
	assert.Equal(t, "vfio-pci", got.Driver)
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, got.AdditionalInfo)
	assert.Equal(t, map[string]string{"a": "1", "b": "1"}, class.AdditionalInfo, "merge does not modify the class config")
}
