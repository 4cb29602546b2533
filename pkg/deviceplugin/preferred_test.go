package deviceplugin

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

func TestPreferredAllocation(t *testing.T) {
	vf := func(addr, pf string, index, numa int) *discovery.Device {
		return &discovery.Device{PCIAddress: addr, RootDevice: pf, VFIndex: index, NUMANode: numa, FunctionType: discovery.FunctionVF, SFNum: -1}
	}
	// PF A (NUMA 0): VFs 0-3; PF B (NUMA 0): VFs 0-1; PF C (NUMA 1): VFs 0-4.
	pool := &selector.Pool{Devices: []*discovery.Device{
		vf("a3", "A", 3, 0), vf("a0", "A", 0, 0), vf("a1", "A", 1, 0), vf("a2", "A", 2, 0),
		vf("b0", "B", 0, 0), vf("b1", "B", 1, 0),
		vf("c0", "C", 0, 1), vf("c1", "C", 1, 1), vf("c2", "C", 2, 1), vf("c3", "C", 3, 1), vf("c4", "C", 4, 1),
	}}
	all := []string{"c4", "b1", "a3", "c0", "a1", "b0", "c2", "a0", "c1", "a2", "c3"}
	tests := []struct {
		name            string
		available, must []string
		size            int
		want            []string
	}{
		{"no must-include: NUMA and PF with the most devices, lowest VF index first", all, nil, 2, []string{"a0", "a1"}},
		{"fills the PF before moving on", all, nil, 6, []string{"a0", "a1", "a2", "a3", "b0", "b1"}},
		{"must-include anchors NUMA and PF", all, []string{"c2"}, 3, []string{"c2", "c0", "c1"}},
		{"same NUMA node before another PF of another node", all, []string{"b1"}, 4, []string{"b1", "b0", "a0", "a1"}},
		{"spills to the other NUMA node when needed", []string{"a0", "a1", "c3", "c4"}, []string{"a1"}, 3, []string{"a1", "a0", "c3"}},
		{"only available devices", []string{"c4", "a2"}, nil, 2, []string{"a2", "c4"}},
		{"must-include alone", all, []string{"c1", "a0"}, 2, []string{"c1", "a0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, prefer(pool, tc.available, tc.must, tc.size))
			shuffled := append([]string(nil), tc.available...)
			for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
				shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
			}
			assert.Equal(t, tc.want, prefer(pool, shuffled, tc.must, tc.size), "the order of the kubelet's list does not matter")
		})
	}
}
