// Package resourceslices turns a discovery inventory into the ResourceSlices one
// node publishes: one pool per node, split so that every slice is valid, with
// a placement that keeps an unchanged device in the same slice.
package resourceslices

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// Multus and SR-IOV CNI find an allocated device through these attributes.
const (
	AttrMultusDeviceID     = "k8s.cni.cncf.io/deviceID"
	AttrMultusResourceName = "k8s.cni.cncf.io/resourceName"
)

// Options shape the published pool.
type Options struct {
	// ResourceNameOf returns the classic resource name of the pool a device
	// falls in ("intel.com/intel_sriov_netdevice"), or "" for none.
	ResourceNameOf func(deviceName string) string
	// Withhold leaves a device out of the slices (served another way).
	Withhold func(deviceName string) bool
	// ExcludeTopology leaves out a device's NUMA attributes (the classic
	// pool's excludeTopology).
	ExcludeTopology func(deviceName string) bool
	// LinkDown, when set, is the taint (key and effect) a device gets while
	// its PF's link is down; its value is the PF's name.
	LinkDown *resourceapi.DeviceTaint
	// Reuse, when set, hands the attribute maps of the last Build given it
	// to the devices that have not changed since (see Reuse).
	Reuse *Reuse
}

// Problem is an attribute left out to keep a device valid.
type Problem struct {
	Device, Attribute, Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("device %s: attribute %s left out: %s", p.Device, p.Attribute, p.Reason)
}

// Build returns the node's pool. Devices are grouped by their PF (or their
// own address), each group filling slices of at most the API's device limit,
// so adding or removing VFs of one PF rewrites only that PF's slices.
func Build(inv *discovery.Inventory, o Options) (resourceslice.Pool, []Problem) {
	type group struct {
		key     string
		size    int
		devices []resourceapi.Device
		tainted bool
	}
	withheld := func(d *discovery.Device) bool { return o.Withhold != nil && o.Withhold(d.Name) }
	// A first pass counts each group's devices, so that each group's list
	// is allocated once at its size rather than grown by doubling.
	groups := map[string]*group{}
	for d := range inv.All() {
		if withheld(d) {
			continue
		}
		g := groups[groupKey(d)]
		if g == nil {
			g = &group{key: groupKey(d)}
			groups[g.key] = g
		}
		g.size++
	}
	var problems []Problem
	// The devices share their attribute values: a few hundred distinct
	// ones on a host of thousands of VFs.
	vals := discovery.NewAttrValues()
	reuse := o.Reuse.start(inv.Len())
	defer reuse.done()
	for d := range inv.All() {
		if withheld(d) {
			continue
		}
		g := groups[groupKey(d)]
		if g.devices == nil {
			g.devices = make([]resourceapi.Device, 0, g.size)
		}
		b := built{dev: d, noTopology: o.ExcludeTopology != nil && o.ExcludeTopology(d.Name)}
		if o.ResourceNameOf != nil {
			b.resourceName = o.ResourceNameOf(d.Name)
		}
		if !reuse.take(&b) {
			var dev resourceapi.Device
			dev, b.problems = device(d, b.resourceName, vals)
			if b.noTopology {
				delete(dev.Attributes, discovery.AttrNUMANode)
				delete(dev.Attributes, resourceapi.QualifiedName(discovery.AttrStdNUMANode))
			}
			b.attrs = dev.Attributes
		}
		reuse.keep(b)
		problems = append(problems, b.problems...)
		dev := resourceapi.Device{Name: d.Name, Attributes: b.attrs}
		// Health is decided once, by health.Of, for the taints, the
		// kubelet's health stream, the shim and the metrics alike.
		if o.LinkDown != nil && !health.Of(d).Healthy {
			dev.Taints = []resourceapi.DeviceTaint{linkDownTaint(d, o.LinkDown)}
			g.tainted = true
		}
		g.devices = append(g.devices, dev)
	}
	ordered := make([]*group, 0, len(groups))
	for _, g := range groups {
		ordered = append(ordered, g)
	}
	slices.SortFunc(ordered, func(a, b *group) int { return cmp.Compare(a.key, b.key) })

	pool := resourceslice.Pool{}
	for _, g := range ordered {
		// A slice with a tainted device may hold fewer devices.
		limit := resourceapi.ResourceSliceMaxDevices
		if g.tainted {
			limit = resourceapi.ResourceSliceMaxDevicesWithAdvancedFeatures
		}
		for chunk := range slices.Chunk(g.devices, limit) {
			pool.Slices = append(pool.Slices, resourceslice.Slice{Devices: chunk})
		}
	}
	if len(pool.Slices) == 0 {
		// An empty pool says "driver up, no devices", unlike no pool at all.
		pool.Slices = []resourceslice.Slice{{}}
	}
	return pool, problems
}

// groupKey is the slice group of a device: its PF, or its own address.
func groupKey(d *discovery.Device) string {
	if d.RootDevice != "" {
		return d.RootDevice
	}
	return d.PCIAddress
}

// LinkDownTaintKey is the taint key of a device whose PF link is down, in
// the driver's domain: sriov.dra.dev/link-down.
func LinkDownTaintKey(driverName string) string { return driverName + "/link-down" }

func linkDownTaint(d *discovery.Device, template *resourceapi.DeviceTaint) resourceapi.DeviceTaint {
	t := *template
	t.Value = d.PFName
	if t.Value == "" || len(t.Value) > 63 || !utf8.ValidString(t.Value) {
		t.Value = d.RootDevice
	}
	return t
}

// Device converts one discovered device, dropping what the API would reject.
func Device(d *discovery.Device, resourceNameOf func(string) string) (resourceapi.Device, []Problem) {
	rn := ""
	if resourceNameOf != nil {
		rn = resourceNameOf(d.Name)
	}
	return device(d, rn, nil)
}

// device is Device with its classic resource name ("" for none) and the
// attribute values taken from vals.
func device(d *discovery.Device, resourceName string, vals *discovery.AttrValues) (resourceapi.Device, []Problem) {
	attrs := d.SharedAttributes(vals, 2)
	attrs[AttrMultusDeviceID] = resourceapi.DeviceAttribute{StringValue: vals.String(d.ID())}
	if resourceName != "" {
		attrs[AttrMultusResourceName] = resourceapi.DeviceAttribute{StringValue: vals.String(resourceName)}
	}
	var problems []Problem
	for name, v := range attrs {
		if v.StringValue == nil {
			continue
		}
		// The API counts bytes, and a string that is not UTF-8 does not
		// survive JSON: either would make the value wrong or the slice invalid.
		switch val := *v.StringValue; {
		case len(val) > resourceapi.DeviceAttributeMaxValueLength:
			problems = append(problems, Problem{d.Name, string(name),
				fmt.Sprintf("value has %d bytes, the API allows %d", len(val), resourceapi.DeviceAttributeMaxValueLength)})
			delete(attrs, name)
		case !utf8.ValidString(val):
			problems = append(problems, Problem{d.Name, string(name), fmt.Sprintf("value %q is not valid UTF-8", val)})
			delete(attrs, name)
		}
	}
	if len(attrs) > resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice {
		// Not reachable with today's attribute set; kept as a guard so a
		// future attribute cannot make the whole slice invalid.
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, string(n))
		}
		slices.Sort(names)
		for _, n := range names[resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice:] {
			problems = append(problems, Problem{d.Name, n, "more than 32 attributes"})
			delete(attrs, resourceapi.QualifiedName(n))
		}
	}
	return resourceapi.Device{Name: d.Name, Attributes: attrs}, problems
}

// ResourceSlices renders a pool as the ResourceSlice objects a node would
// publish, for operators to inspect without a cluster. Names follow the
// slice index; the real controller adds a random suffix.
func ResourceSlices(pool resourceslice.Pool, driverName, nodeName string) []resourceapi.ResourceSlice {
	out := make([]resourceapi.ResourceSlice, len(pool.Slices))
	for i, s := range pool.Slices {
		out[i] = resourceapi.ResourceSlice{
			TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "ResourceSlice"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%x", nodeName, strings.ReplaceAll(driverName, ".", "-"), i)},
			Spec: resourceapi.ResourceSliceSpec{
				Driver:   driverName,
				NodeName: &nodeName,
				Pool:     resourceapi.ResourcePool{Name: nodeName, Generation: max(pool.Generation, 1), ResourceSliceCount: int64(len(pool.Slices))},
				Devices:  s.Devices,
			},
		}
	}
	return out
}

// PoolOptions shape a node's pool beyond its devices.
type PoolOptions struct {
	// WithholdPool names classic pools whose devices are left out.
	WithholdPool func(poolName string) bool
	// InUse names devices (by classic ID) that pods hold through the
	// device-plugin API: left out until released.
	InUse map[string]bool
	// Allocated are the devices prepared claims hold, by name: they keep
	// the classic pool they were allocated from and are never in a pool
	// WithholdPool names (see selector.Result.Hold).
	Allocated map[string]selector.Allocated
	// LinkDown is the taint of devices whose PF link is down (see Options).
	LinkDown *resourceapi.DeviceTaint
	// Reuse carries unchanged devices' attributes from one call to the next
	// (see Options).
	Reuse *Reuse
}

// DesiredPool is the pool a node publishes for an inventory: every device,
// with its classic pool's resource name when a config is given, except the
// devices of the pools po withholds and those pods hold through the
// device-plugin API. It also returns the classic pools (nil
// without a config).
func DesiredPool(inv *discovery.Inventory, cfg *classic.Config, po PoolOptions) (resourceslice.Pool, *selector.Result, []Problem, error) {
	var pools *selector.Result
	o := Options{LinkDown: po.LinkDown, Reuse: po.Reuse}
	withhold := po.WithholdPool
	if cfg != nil {
		var err error
		if pools, err = selector.Select(cfg, inv); err != nil {
			return resourceslice.Pool{}, nil, nil, err
		}
		pools.Hold(po.Allocated, inv, withhold)
		// Each pool's name and whether it is withheld, once per pool
		// rather than once per device.
		names := make([]string, len(pools.Pools))
		withheld := make([]bool, len(pools.Pools))
		for i := range pools.Pools {
			names[i] = pools.Pools[i].Name()
			withheld[i] = withhold != nil && withhold(names[i])
		}
		o.ResourceNameOf = func(name string) string {
			if i, ok := pools.PoolOf[name]; ok {
				return names[i]
			}
			return ""
		}
		o.ExcludeTopology = func(name string) bool {
			pool, ok := pools.PoolFor(name)
			return ok && pool.Config.ExcludeTopology
		}
		o.Withhold = func(name string) bool {
			if i, ok := pools.PoolOf[name]; ok && withheld[i] {
				return true
			}
			d, ok := inv.Get(name)
			return ok && po.InUse[d.ID()]
		}
	}
	pool, problems := Build(inv, o)
	return pool, pools, problems, nil
}
