// Package selector applies classic sriov-network-device-plugin pools to a
// discovery inventory, choosing exactly the devices the classic plugin would.
package selector

import (
	"fmt"
	"slices"
	"strings"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/pfrange"
)

// Pool is one classic resource pool with the devices it selected.
type Pool struct {
	Config *classic.ResourceConfig
	// Devices are in inventory (name) order.
	Devices []*discovery.Device
}

// Name is the pool's full resource name.
func (p *Pool) Name() string { return p.Config.FullName() }

// IDs returns the classic device IDs (PCI address, or auxiliary name for an
// SF), sorted.
func (p *Pool) IDs() []string {
	ids := make([]string, len(p.Devices))
	for i, d := range p.Devices {
		ids[i] = d.ID()
	}
	slices.Sort(ids)
	return ids
}

// Result is the outcome of applying a config: the pools in config order and
// which pool each device fell in.
type Result struct {
	Pools []Pool
	// PoolOf maps a device name to the index of its pool in Pools.
	PoolOf map[string]int
}

// Select applies a defaulted, validated config. Pools are evaluated in
// config order; a device taken by an earlier pool is not offered to a later
// one. Within a pool, a device matching any selector object joins it.
func Select(cfg *classic.Config, inv *discovery.Inventory) (*Result, error) {
	// Sized for every device in a pool, the common case, so that it does
	// not grow (and copy) a dozen times on a large host.
	res := &Result{PoolOf: make(map[string]int, inv.Len())}
	compiled := make([][]matcher, len(cfg.ResourceList))
	for i := range cfg.ResourceList {
		r := &cfg.ResourceList[i]
		for k := range r.Selectors {
			m, err := compile(&r.Selectors[k])
			if err != nil {
				return nil, fmt.Errorf("resourceList[%d] (%s): selectors[%d]: %w", i, r.ResourceName, k, err)
			}
			compiled[i] = append(compiled[i], m)
		}
		res.Pools = append(res.Pools, Pool{Config: r})
	}
	for i := range res.Pools {
		want := deviceTypeOf(res.Pools[i].Config.DeviceType)
		for d := range inv.All() {
			if d.DeviceType != want {
				continue
			}
			if _, taken := res.PoolOf[d.Name]; taken {
				continue
			}
			if matchesAny(compiled[i], d) {
				res.Pools[i].Devices = append(res.Pools[i].Devices, d)
				res.PoolOf[d.Name] = i
			}
		}
	}
	return res, nil
}

// PoolFor returns the pool a device fell in.
func (r *Result) PoolFor(deviceName string) (*Pool, bool) {
	i, ok := r.PoolOf[deviceName]
	if !ok {
		return nil, false
	}
	return &r.Pools[i], true
}

func deviceTypeOf(t string) discovery.DeviceType {
	switch t {
	case classic.DeviceTypeAccelerator:
		return discovery.DeviceTypeAccelerator
	case classic.DeviceTypeAuxNet:
		return discovery.DeviceTypeAuxNet
	default:
		return discovery.DeviceTypeNet
	}
}

func matchesAny(ms []matcher, d *discovery.Device) bool {
	if len(ms) == 0 {
		return true // a pool without selectors takes every device of its type
	}
	for _, m := range ms {
		if m.match(d) {
			return true
		}
	}
	return false
}

// matcher is one selector object, its fields in the classic order. Each
// check narrows the candidates; all must pass.
type matcher []func(*discovery.Device) bool

func (m matcher) match(d *discovery.Device) bool {
	for _, check := range m {
		if !check(d) {
			return false
		}
	}
	return true
}

func compile(s *classic.Selectors) (matcher, error) {
	var m matcher
	oneOf := func(vals []string, field func(*discovery.Device) string) {
		if len(vals) == 0 {
			return
		}
		set := make(map[string]bool, len(vals))
		for _, v := range vals {
			set[v] = true
		}
		m = append(m, func(d *discovery.Device) bool { return set[field(d)] })
	}
	oneOf(s.Vendors, func(d *discovery.Device) string { return d.Vendor })
	oneOf(s.Devices, func(d *discovery.Device) string { return d.DeviceID })
	oneOf(s.Drivers, func(d *discovery.Device) string { return d.Driver })
	oneOf(s.PCIAddresses, func(d *discovery.Device) string { return d.PCIAddress })
	oneOf(s.AcpiIndexes, func(d *discovery.Device) string { return d.AcpiIndex })
	oneOf(s.AuxTypes, func(d *discovery.Device) string { return d.AuxType })
	pf, err := pfMatcher(s.PfNames, func(d *discovery.Device) string { return d.PFName }, strings.EqualFold)
	if err != nil {
		return nil, fmt.Errorf("pfNames: %w", err)
	}
	if pf != nil {
		m = append(m, pf)
	}
	root, err := pfMatcher(s.RootDevices, func(d *discovery.Device) string { return d.RootDevice }, strings.EqualFold)
	if err != nil {
		return nil, fmt.Errorf("rootDevices: %w", err)
	}
	if root != nil {
		m = append(m, root)
	}
	oneOf(s.LinkTypes, func(d *discovery.Device) string { return d.LinkType })
	oneOf(s.DDPProfiles, func(d *discovery.Device) string { return d.DDPProfile })
	if len(s.PKeys) > 0 {
		// Any of the device's partition keys (both lower case).
		m = append(m, func(d *discovery.Device) bool {
			return slices.ContainsFunc(d.PKeys, func(k string) bool { return slices.Contains(s.PKeys, k) })
		})
	}
	if s.IsRdma {
		m = append(m, func(d *discovery.Device) bool { return d.RDMA })
	}
	if s.VdpaType != "" {
		m = append(m, func(d *discovery.Device) bool { return d.VDPAType == s.VdpaType })
	}
	return m, nil
}

// pfMatcher matches "<PF>[#ranges]" entries against a device's PF and its
// VF index or SF number. A device without a PF never matches.
func pfMatcher(entries []string, pfOf func(*discovery.Device) string, eq func(a, b string) bool) (func(*discovery.Device) bool, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	sels := make([]pfrange.Selector, len(entries))
	for i, e := range entries {
		sel, err := pfrange.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		sels[i] = sel
	}
	return func(d *discovery.Device) bool {
		pf := pfOf(d)
		if pf == "" {
			return false
		}
		idx := d.VFIndex
		if d.FunctionType == discovery.FunctionSF {
			idx = d.SFNum
		}
		for _, sel := range sels {
			if !eq(sel.PF, pf) {
				continue
			}
			if len(sel.Ranges) == 0 || (idx >= 0 && sel.Contains(idx)) {
				return true
			}
		}
		return false
	}, nil
}

// Allocated is a device another path (a prepared DRA claim) holds.
type Allocated struct {
	// Pool is the pool it was in when allocated ("" for none); it stays
	// there, whatever driver the allocation bound it to, so that a rebind
	// never moves a held device into another pool or out of its own.
	Pool string
	// PoolKnown is false when the allocation did not record its pool (an
	// older record): the device keeps the pool it falls in now.
	PoolKnown bool
}

// Hold puts allocated devices back in the pools they were allocated from,
// then takes every allocated device out of the pools keep says another
// path serves (the legacy shim): a device is never offered by two paths at
// once. A device of a pool the config no longer has is in no pool.
func (r *Result) Hold(allocated map[string]Allocated, inv *discovery.Inventory, serves func(poolName string) bool) {
	if len(allocated) == 0 {
		return
	}
	index := make(map[string]int, len(r.Pools))
	for i := range r.Pools {
		index[r.Pools[i].Name()] = i
	}
	changed := map[int]bool{}
	for name, a := range allocated {
		if _, ok := inv.Get(name); !ok {
			continue
		}
		from, in := r.PoolOf[name]
		to, toOK := from, in
		if a.PoolKnown {
			to, toOK = index[a.Pool]
		}
		if toOK && serves != nil && serves(r.Pools[to].Name()) {
			toOK = false
		}
		if in == toOK && from == to {
			continue
		}
		if in {
			changed[from] = true
			delete(r.PoolOf, name)
		}
		if toOK {
			changed[to] = true
			r.PoolOf[name] = to
		}
	}
	// Rebuild the changed pools' lists from PoolOf, in inventory order.
	for i := range changed {
		r.Pools[i].Devices = r.Pools[i].Devices[:0:0]
	}
	for d := range inv.All() {
		if i, ok := r.PoolOf[d.Name]; ok && changed[i] {
			r.Pools[i].Devices = append(r.Pools[i].Devices, d)
		}
	}
}
