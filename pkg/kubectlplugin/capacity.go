package kubectlplugin

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	resourceapi "k8s.io/api/resource/v1"
)

// Kinds of capacity rows.
const (
	KindDriver       = "driver"       // every device of the driver on the node
	KindClass        = "class"        // the devices a DeviceClass selects
	KindResourceName = "resourceName" // a classic pool's devices
)

// CapacityRow counts a set of one node's devices.
type CapacityRow struct {
	Node  string `json:"node"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Total int    `json:"total"`
	// Allocated devices are named by a claim's allocation.
	Allocated int `json:"allocated"`
	// Free devices are neither allocated nor kept from new claims by a
	// NoSchedule or NoExecute taint: what the scheduler can still give.
	Free int `json:"free"`
	// Tainted devices carry any taint (the driver's link-down taint marks
	// the unhealthy ones), allocated or not.
	Tainted int `json:"tainted"`
	// FreeByNUMA counts the free devices per NUMA node ("-": unknown).
	FreeByNUMA map[string]int `json:"freeByNUMA,omitempty"`
}

// CapacityOptions filter the rows; empty means all.
type CapacityOptions struct {
	Node, Class string
}

// Capacity counts devices per node: all of the driver's, per DeviceClass
// that selects any of them, and per classic resource name. A class whose
// selectors fail on a device is reported in warnings and counted without it.
func (m *Model) Capacity(ctx context.Context, o CapacityOptions) (rows []CapacityRow, warnings []string, err error) {
	classes := m.Classes
	if o.Class != "" {
		c := m.Class(o.Class)
		if c == nil {
			return nil, nil, fmt.Errorf("DeviceClass %s not found", o.Class)
		}
		classes = []*resourceapi.DeviceClass{c}
	}
	nodes := m.Nodes
	if o.Node != "" {
		if !slices.Contains(m.Nodes, o.Node) {
			return nil, nil, m.noSlices(o.Node)
		}
		nodes = []string{o.Node}
	}
	// Per class, the devices it selects; classes of other drivers select
	// none of ours and are left out unless asked for.
	selected := map[string]map[*Device]bool{}
	for _, c := range classes {
		set := map[*Device]bool{}
		for _, node := range nodes {
			n, err := m.match.narrow(ctx, m.OnNode(node), selectorsOf(c, nil))
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("node %s: %v", node, err))
				continue
			}
			for _, d := range n.Matched {
				set[d] = true
			}
		}
		if len(set) > 0 || o.Class != "" {
			selected[c.Name] = set
		}
	}
	for _, node := range nodes {
		devices := m.OnNode(node)
		if o.Class == "" {
			rows = append(rows, count(node, KindDriver, m.Driver, devices))
		}
		for _, c := range classes {
			if set, ok := selected[c.Name]; ok {
				rows = append(rows, count(node, KindClass, c.Name, filter(devices, func(d *Device) bool { return set[d] })))
			}
		}
		if o.Class != "" {
			continue
		}
		byResource := map[string][]*Device{}
		for _, d := range devices {
			if rn := d.ResourceName(); rn != "" {
				byResource[rn] = append(byResource[rn], d)
			}
		}
		for _, rn := range slices.Sorted(maps.Keys(byResource)) {
			rows = append(rows, count(node, KindResourceName, rn, byResource[rn]))
		}
	}
	return rows, warnings, nil
}

func count(node, kind, name string, devices []*Device) CapacityRow {
	r := CapacityRow{Node: node, Kind: kind, Name: name, Total: len(devices)}
	for _, d := range devices {
		if d.Allocated() {
			r.Allocated++
		}
		if len(d.Taints) > 0 {
			r.Tainted++
		}
		if !d.Allocated() && !d.Blocked(nil) {
			r.Free++
			numa := cmp.Or(d.NUMA(), "-")
			if r.FreeByNUMA == nil {
				r.FreeByNUMA = map[string]int{}
			}
			r.FreeByNUMA[numa]++
		}
	}
	return r
}

func filter(devices []*Device, keep func(*Device) bool) []*Device {
	var out []*Device
	for _, d := range devices {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}
