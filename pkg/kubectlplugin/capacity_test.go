package kubectlplugin

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCapacity(t *testing.T) {
	const held = 2 // claims a and b, one ens1f0 VF each
	n1 := vfsUp + vfsDown
	freeUp := vfsUp - held
	tests := []struct {
		name    string
		opts    CapacityOptions
		want    []CapacityRow
		wantErr string
	}{{
		name: "every node, class and resource name; classes of other drivers left out",
		want: []CapacityRow{
			{Node: "n1", Kind: KindDriver, Name: DefaultDriver, Total: n1, Allocated: held, Free: freeUp, Tainted: vfsDown, FreeByNUMA: map[string]int{"0": freeUp}},
			{Node: "n1", Kind: KindClass, Name: "ens1f0", Total: vfsUp, Allocated: held, Free: freeUp, FreeByNUMA: map[string]int{"0": freeUp}},
			{Node: "n1", Kind: KindClass, Name: "ens1f1", Total: vfsDown, Tainted: vfsDown},
			{Node: "n1", Kind: KindClass, Name: "vf", Total: n1, Allocated: held, Free: freeUp, Tainted: vfsDown, FreeByNUMA: map[string]int{"0": freeUp}},
			// The classic pool's VFs are the two the claims hold.
			{Node: "n1", Kind: KindResourceName, Name: classicRN, Total: classicVFs, Allocated: held},
			{Node: "n2", Kind: KindDriver, Name: DefaultDriver, Total: vfsN2, Free: vfsN2, FreeByNUMA: map[string]int{"0": vfsN2}},
			{Node: "n2", Kind: KindClass, Name: "ens1f0"},
			{Node: "n2", Kind: KindClass, Name: "ens1f1"},
			{Node: "n2", Kind: KindClass, Name: "vf", Total: vfsN2, Free: vfsN2, FreeByNUMA: map[string]int{"0": vfsN2}},
		},
	}, {
		name: "one node, one class",
		opts: CapacityOptions{Node: "n2", Class: "vf"},
		want: []CapacityRow{{Node: "n2", Kind: KindClass, Name: "vf", Total: vfsN2, Free: vfsN2, FreeByNUMA: map[string]int{"0": vfsN2}}},
	}, {
		name: "a class asked for by name is shown even when it selects nothing",
		opts: CapacityOptions{Node: "n1", Class: "gpu"},
		want: []CapacityRow{{Node: "n1", Kind: KindClass, Name: "gpu"}},
	}, {
		name:    "a node without the driver's slices",
		opts:    CapacityOptions{Node: "n9"},
		wantErr: "node n9: no ResourceSlices of driver sriov.dra.dev (nodes with some: n1, n2)",
	}, {
		name:    "unknown class",
		opts:    CapacityOptions{Class: "nope"},
		wantErr: "DeviceClass nope not found",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, warnings, err := NewModel(snapshot()).Capacity(t.Context(), tt.opts)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Empty(t, warnings)
			assert.Equal(t, tt.want, rows)
		})
	}
}

// A class whose selector fails on a device (no such attribute, no has())
// is a warning naming the selector, not a wrong count.
func TestCapacitySelectorError(t *testing.T) {
	s := snapshot(class("broken", `device.attributes["sriov.dra.dev"].nope == "x"`))
	rows, warnings, err := NewModel(s).Capacity(t.Context(), CapacityOptions{Class: "broken", Node: "n2"})
	require.NoError(t, err)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], `class broken selector 1 (device.attributes["sriov.dra.dev"].nope == "x") on device `)
	assert.Equal(t, []CapacityRow{{Node: "n2", Kind: KindClass, Name: "broken"}}, rows)
}
