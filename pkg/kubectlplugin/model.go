// Package kubectlplugin is the logic of kubectl-sriov_dra: what the
// driver's devices are, who holds them, and why a pod's claims cannot be
// allocated, computed from a snapshot of the API's objects (ResourceSlices,
// ResourceClaims, DeviceClasses) so that it can be tested without a
// cluster. The command in command.go only reads the objects and prints.
package kubectlplugin

import (
	"cmp"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceclaim"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
)

// Snapshot is what the commands read from the API.
type Snapshot struct {
	// Driver is the DRA driver whose devices are shown (sriov.dra.dev).
	Driver  string
	Slices  []resourceapi.ResourceSlice
	Claims  []resourceapi.ResourceClaim
	Classes []resourceapi.DeviceClass
	// Nodes, when given, let why tell the nodes a pod may not run on.
	Nodes []corev1.Node
}

// Device is one published device with the claims allocated it.
type Device struct {
	Node, Pool string
	resourceapi.Device
	// Holders are the claims whose allocation names this device.
	Holders []Holder
}

// Holder is a claim holding a device and the pods it is reserved for.
type Holder struct {
	Claim string   `json:"claim"`
	Pods  []string `json:"pods,omitempty"`
}

// Model is a snapshot indexed for the commands.
type Model struct {
	Driver  string
	Devices []*Device // by node, then name
	Nodes   []string  // the nodes with a pool, sorted
	Classes []*resourceapi.DeviceClass
	claims  map[string]*resourceapi.ResourceClaim // by namespace/name
	nodes   map[string]*corev1.Node
	byID    map[string]*Device // by pool/device
	match   *matcher
}

// NewModel indexes a snapshot. Only the newest generation of each pool
// counts, as for the scheduler: older slices are being replaced.
func NewModel(s Snapshot) *Model {
	m := &Model{Driver: s.Driver, claims: map[string]*resourceapi.ResourceClaim{}, nodes: map[string]*corev1.Node{}, byID: map[string]*Device{}, match: newMatcher(s.Driver)}
	for i := range s.Nodes {
		m.nodes[s.Nodes[i].Name] = &s.Nodes[i]
	}
	gen := map[string]int64{}
	for i := range s.Slices {
		sl := &s.Slices[i]
		if sl.Spec.Driver == s.Driver {
			gen[sl.Spec.Pool.Name] = max(gen[sl.Spec.Pool.Name], sl.Spec.Pool.Generation)
		}
	}
	nodes := map[string]bool{}
	for i := range s.Slices {
		sl := &s.Slices[i]
		if sl.Spec.Driver != s.Driver || sl.Spec.Pool.Generation != gen[sl.Spec.Pool.Name] {
			continue
		}
		// This driver's slices are node-local; a slice for many nodes
		// is shown under its pool's name.
		node := sl.Spec.Pool.Name
		if sl.Spec.NodeName != nil {
			node = *sl.Spec.NodeName
		}
		nodes[node] = true
		for _, d := range sl.Spec.Devices {
			dev := &Device{Node: node, Pool: sl.Spec.Pool.Name, Device: d}
			m.Devices = append(m.Devices, dev)
			m.byID[dev.Pool+"/"+dev.Name] = dev
		}
	}
	slices.SortFunc(m.Devices, func(a, b *Device) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Name, b.Name))
	})
	for n := range nodes {
		m.Nodes = append(m.Nodes, n)
	}
	slices.Sort(m.Nodes)
	for i := range s.Claims {
		c := &s.Claims[i]
		m.claims[c.Namespace+"/"+c.Name] = c
		if c.Status.Allocation == nil {
			continue
		}
		h := holderOf(c)
		for _, r := range c.Status.Allocation.Devices.Results {
			if d := m.byID[r.Pool+"/"+r.Device]; r.Driver == s.Driver && d != nil {
				d.Holders = append(d.Holders, h)
			}
		}
	}
	for i := range s.Classes {
		m.Classes = append(m.Classes, &s.Classes[i])
	}
	slices.SortFunc(m.Classes, func(a, b *resourceapi.DeviceClass) int { return cmp.Compare(a.Name, b.Name) })
	return m
}

func holderOf(c *resourceapi.ResourceClaim) Holder {
	h := Holder{Claim: c.Namespace + "/" + c.Name}
	for _, r := range c.Status.ReservedFor {
		if r.Resource == "pods" && r.APIGroup == "" {
			h.Pods = append(h.Pods, c.Namespace+"/"+r.Name)
		}
	}
	return h
}

// Class returns the DeviceClass of that name, or nil.
func (m *Model) Class(name string) *resourceapi.DeviceClass {
	i, ok := slices.BinarySearchFunc(m.Classes, name, func(c *resourceapi.DeviceClass, n string) int { return cmp.Compare(c.Name, n) })
	if !ok {
		return nil
	}
	return m.Classes[i]
}

// OnNode returns the node's devices.
func (m *Model) OnNode(node string) []*Device {
	return filter(m.Devices, func(d *Device) bool { return d.Node == node })
}

// str returns a string attribute, in the driver's domain unless name has one.
func (d *Device) str(name string) string {
	if v, ok := d.Attributes[resourceapi.QualifiedName(name)]; ok && v.StringValue != nil {
		return *v.StringValue
	}
	return ""
}

// num returns an int attribute as text, "" when absent.
func (d *Device) num(name string) string {
	if v, ok := d.Attributes[resourceapi.QualifiedName(name)]; ok && v.IntValue != nil {
		return strconv.FormatInt(*v.IntValue, 10)
	}
	return ""
}

// ResourceName is the classic pool's resource name the driver publishes
// on devices a classic config selects ("" without one).
func (d *Device) ResourceName() string { return d.str(resourceslices.AttrMultusResourceName) }

// NUMA is the device's NUMA node, "" when unknown.
func (d *Device) NUMA() string { return d.num(discovery.AttrNUMANode) }

// Allocated reports whether a claim holds the device.
func (d *Device) Allocated() bool { return len(d.Holders) > 0 }

// Blocked reports whether a taint keeps the scheduler from allocating the
// device to a request without tolerations: None effects only inform.
func (d *Device) Blocked(tolerations []resourceapi.DeviceToleration) bool {
	return len(d.blockingTaints(tolerations)) > 0
}

func (d *Device) blockingTaints(tolerations []resourceapi.DeviceToleration) []resourceapi.DeviceTaint {
	var out []resourceapi.DeviceTaint
	for _, t := range d.Taints {
		if t.Effect != resourceapi.DeviceTaintEffectNoSchedule && t.Effect != resourceapi.DeviceTaintEffectNoExecute {
			continue
		}
		if !slices.ContainsFunc(tolerations, func(tol resourceapi.DeviceToleration) bool { return resourceclaim.ToleratesTaint(tol, t) }) {
			out = append(out, t)
		}
	}
	return out
}

// claimOf returns the claim a pod's claim entry names: its own, or the one
// made from its template (pod status), and "" when none exists yet.
func claimOf(pod *corev1.Pod, pc corev1.PodResourceClaim) string {
	if pc.ResourceClaimName != nil {
		return *pc.ResourceClaimName
	}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == pc.Name && s.ResourceClaimName != nil {
			return *s.ResourceClaimName
		}
	}
	return ""
}
