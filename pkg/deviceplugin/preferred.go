package deviceplugin

import (
	"cmp"
	"slices"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// prefer chooses size devices from available, deterministically: the
// must-include devices, then devices on the same NUMA node, then on the
// same PF, then the lowest VF index. Without must-include devices the NUMA
// node, then the PF, with the most available devices anchors the choice,
// so that an allocation stays on one node and one PF when it can.
func prefer(pool *selector.Pool, available, mustInclude []string, size int) []string {
	byID := map[string]*discovery.Device{}
	if pool != nil {
		for _, d := range pool.Devices {
			byID[d.ID()] = d
		}
	}
	out := slices.Clone(mustInclude)
	if size <= len(out) {
		return out[:max(size, 0)]
	}
	var candidates []*discovery.Device
	var unknown []string
	for _, id := range available {
		if slices.Contains(mustInclude, id) {
			continue
		}
		if d, ok := byID[id]; ok {
			candidates = append(candidates, d)
		} else {
			unknown = append(unknown, id)
		}
	}
	anchorNUMA, anchorPF := anchor(byID, mustInclude, candidates)
	slices.SortFunc(candidates, func(a, b *discovery.Device) int {
		return cmp.Or(
			cmpBool(a.NUMANode != anchorNUMA, b.NUMANode != anchorNUMA),
			cmpBool(a.RootDevice != anchorPF, b.RootDevice != anchorPF),
			cmp.Compare(a.RootDevice, b.RootDevice),
			cmp.Compare(a.VFIndex, b.VFIndex),
			cmp.Compare(a.SFNum, b.SFNum),
			cmp.Compare(a.ID(), b.ID()),
		)
	})
	for _, d := range candidates {
		if len(out) == size {
			return out
		}
		out = append(out, d.ID())
	}
	slices.Sort(unknown) // devices the pool does not know come last
	for _, id := range unknown {
		if len(out) == size {
			break
		}
		out = append(out, id)
	}
	return out
}

// anchor picks the NUMA node and PF the allocation gathers around.
func anchor(byID map[string]*discovery.Device, mustInclude []string, candidates []*discovery.Device) (numa int, pf string) {
	for _, id := range mustInclude {
		if d, ok := byID[id]; ok {
			return d.NUMANode, d.RootDevice
		}
	}
	numaCount, pfCount := map[int]int{}, map[string]int{}
	for _, d := range candidates {
		numaCount[d.NUMANode]++
	}
	numa = mostCommon(numaCount, cmp.Compare[int])
	for _, d := range candidates {
		if d.NUMANode == numa {
			pfCount[d.RootDevice]++
		}
	}
	return numa, mostCommon(pfCount, cmp.Compare[string])
}

// mostCommon returns the key with the highest count, the lowest key on a tie.
func mostCommon[K comparable](counts map[K]int, compare func(a, b K) int) K {
	var best K
	bestN := -1
	for k, n := range counts {
		if n > bestN || (n == bestN && compare(k, best) < 0) {
			best, bestN = k, n
		}
	}
	return best
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
