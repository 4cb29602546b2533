package host

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func ptr[T any](v T) *T { return &v }

// TestVFStateRestoreAndChanges: what puts a VF back is the original of
// each setting a config changes (the VLAN with its QoS, the two rates
// together), and putting back sets only what differs now.
func TestVFStateRestoreAndChanges(t *testing.T) {
	orig := VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, MaxTxRate: 50}
	c := VFConfig{MAC: ptr("02:00:00:00:00:05"), VLAN: ptr(7), MaxTxRate: ptr(500), LinkState: ptr("disable")}
	restore := orig.Restore(c)
	assert.Equal(t, VFConfig{MAC: ptr("00:00:00:00:00:00"), VLAN: ptr(0), QoS: ptr(0), MinTxRate: ptr(0), MaxTxRate: ptr(50), LinkState: ptr("auto")}, restore)

	// The PF took everything but the link state.
	now := VFState{MAC: "02:00:00:00:00:05", VLAN: 7, SpoofChk: true, MaxTxRate: 500}
	assert.Equal(t, []string{"link state disable (the PF shows auto)"}, now.Differs(c))
	assert.Equal(t, VFConfig{MAC: ptr("00:00:00:00:00:00"), VLAN: ptr(0), QoS: ptr(0), MinTxRate: ptr(0), MaxTxRate: ptr(50)}, now.Changes(restore),
		"the link state never changed: not set again")
	assert.True(t, orig.Changes(restore).Empty(), "nothing changed: nothing to put back")
	assert.Empty(t, now.Apply(c).Differs(c))
}
