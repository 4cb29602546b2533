package kubectlplugin

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// PFGroup is one PF's devices as published: its VFs and SFs, or the PF
// itself when it is offered whole, or a device with no PF (an accelerator
// function).
type PFGroup struct {
	// PF is the PF's interface name ("" when it has none).
	PF string `json:"pf,omitempty"`
	// Root is the PF's PCI address, the devices' rootDevice attribute.
	Root    string       `json:"rootDevice"`
	Devices []DeviceView `json:"devices"`
}

// DeviceView is one device of the node view.
type DeviceView struct {
	Name string `json:"name"`
	// Function is "vf <index>", "sf <number>" or the function type.
	Function string   `json:"function"`
	PCI      string   `json:"pciAddress,omitempty"`
	Driver   string   `json:"driver,omitempty"`
	NUMA     string   `json:"numaNode,omitempty"`
	IfName   string   `json:"ifName,omitempty"`
	Resource string   `json:"resourceName,omitempty"`
	Taints   []string `json:"taints,omitempty"`
	Holders  []Holder `json:"holders,omitempty"`
}

// Health is "healthy" or the device's taints.
func (v DeviceView) Health() string {
	if len(v.Taints) == 0 {
		return "healthy"
	}
	return strings.Join(v.Taints, ",")
}

// Node groups a node's devices under their PFs, in PCI order.
func (m *Model) Node(node string) ([]PFGroup, error) {
	devices := m.OnNode(node)
	if len(devices) == 0 {
		return nil, m.noSlices(node)
	}
	groups := map[string]*PFGroup{}
	for _, d := range devices {
		root := cmp.Or(d.str(discovery.AttrRootDevice), d.str(discovery.AttrPCIAddress), d.Name)
		g := groups[root]
		if g == nil {
			g = &PFGroup{Root: root}
			groups[root] = g
		}
		g.PF = cmp.Or(g.PF, d.str(discovery.AttrPFName))
		g.Devices = append(g.Devices, m.view(d))
	}
	out := make([]PFGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b PFGroup) int { return cmp.Compare(a.Root, b.Root) })
	return out, nil
}

func (m *Model) noSlices(node string) error {
	return fmt.Errorf("node %s: no ResourceSlices of driver %s (nodes with some: %s)", node, m.Driver, strings.Join(m.Nodes, ", "))
}

func (m *Model) view(d *Device) DeviceView {
	fn := d.str(discovery.AttrFunctionType)
	switch idx := cmp.Or(d.num(discovery.AttrVFIndex), d.num(discovery.AttrSFNum)); {
	case idx != "":
		fn += " " + idx
	case fn == "":
		fn = d.str(discovery.AttrDeviceType)
	}
	v := DeviceView{
		Name: d.Name, Function: fn, PCI: d.str(discovery.AttrPCIAddress), Driver: d.str(discovery.AttrDriver),
		NUMA: d.NUMA(), IfName: d.str(discovery.AttrIfName), Resource: d.ResourceName(), Holders: d.Holders,
	}
	for _, t := range d.Taints {
		v.Taints = append(v.Taints, m.taintString(t))
	}
	return v
}

// taintString is key=value:effect, the key without the driver's own domain
// (link-down=ens1f1:NoSchedule) to keep the tables narrow.
func (m *Model) taintString(t resourceapi.DeviceTaint) string {
	s := strings.TrimPrefix(t.Key, m.Driver+"/")
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + string(t.Effect)
}
