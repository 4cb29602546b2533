package kubectlplugin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Reason says what keeps a request from being allocated on a node.
type Reason string

// The reasons, in the words the table prints.
const (
	ReasonNone          Reason = "nothing in the way"
	ReasonNodeExcluded  Reason = "node not selected"
	ReasonNoMatch       Reason = "no device matches"
	ReasonAllAllocated  Reason = "all allocated"
	ReasonTainted       Reason = "tainted"
	ReasonSelectorError Reason = "selector error"
	ReasonNoClass       Reason = "class not found"
	ReasonNoClaim       Reason = "claim not found"
)

// WhyRow is the verdict for one request of one claim on one node.
type WhyRow struct {
	Claim   string `json:"claim"`
	Request string `json:"request,omitempty"`
	Node    string `json:"node"`
	Reason  Reason `json:"reason"`
	Detail  string `json:"detail"`
	// Counts behind the verdict (-o wide).
	Matching int `json:"matching"`
	Free     int `json:"free"`
	Needed   int `json:"needed"`
}

// Why explains, per claim of the pod, request and node, what stands in the
// way of an allocation.
func (m *Model) Why(ctx context.Context, pod *corev1.Pod) []WhyRow {
	var rows []WhyRow
	for _, pc := range pod.Spec.ResourceClaims {
		name := claimOf(pod, pc)
		key := pod.Namespace + "/" + name
		claim := m.claims[key]
		switch {
		case name == "":
			rows = append(rows, WhyRow{Claim: pc.Name, Node: "-", Reason: ReasonNoClaim, Detail: "not made from its template yet (the resourceclaim controller makes it)"})
		case claim == nil:
			rows = append(rows, WhyRow{Claim: key, Node: "-", Reason: ReasonNoClaim, Detail: "ResourceClaim " + key + " does not exist"})
		case claim.Status.Allocation != nil:
			rows = append(rows, m.allocated(claim)...)
		default:
			for _, r := range claim.Spec.Devices.Requests {
				rows = append(rows, m.whyRequest(ctx, pod, key, r)...)
			}
		}
	}
	return rows
}

// allocated: the claim's own devices are not in its way.
func (m *Model) allocated(c *resourceapi.ResourceClaim) []WhyRow {
	var rows []WhyRow
	for _, r := range c.Status.Allocation.Devices.Results {
		node := r.Pool
		if d := m.byID[r.Pool+"/"+r.Device]; d != nil {
			node = d.Node
		}
		rows = append(rows, WhyRow{Claim: c.Namespace + "/" + c.Name, Request: r.Request, Node: node, Reason: ReasonNone, Detail: "allocated " + r.Device})
	}
	return rows
}

// request is what the allocator needs to know of one (sub)request.
type request struct {
	name        string
	class       string
	selectors   []resourceapi.DeviceSelector
	all         bool
	count       int64
	tolerations []resourceapi.DeviceToleration
}

func (m *Model) whyRequest(ctx context.Context, pod *corev1.Pod, claim string, r resourceapi.DeviceRequest) []WhyRow {
	var reqs []request
	if e := r.Exactly; e != nil {
		reqs = append(reqs, request{r.Name, e.DeviceClassName, e.Selectors, e.AllocationMode == resourceapi.DeviceAllocationModeAll, e.Count, e.Tolerations})
	}
	// Each alternative of firstAvailable is judged on its own: the pod is
	// stuck only while every one has something in the way.
	for _, s := range r.FirstAvailable {
		reqs = append(reqs, request{r.Name + "/" + s.Name, s.DeviceClassName, s.Selectors, s.AllocationMode == resourceapi.DeviceAllocationModeAll, s.Count, s.Tolerations})
	}
	var rows []WhyRow
	for _, req := range reqs {
		class := m.Class(req.class)
		if class == nil {
			rows = append(rows, WhyRow{Claim: claim, Request: req.name, Node: "-", Reason: ReasonNoClass, Detail: "DeviceClass " + req.class + " does not exist"})
			continue
		}
		for _, node := range m.Nodes {
			// The scheduler filters nodes before it looks at devices.
			row, excluded := m.excludes(pod, node)
			if !excluded {
				row = m.onNode(ctx, req, selectorsOf(class, req.selectors), node)
			}
			row.Claim, row.Request, row.Node = claim, req.name, node
			rows = append(rows, row)
		}
	}
	return rows
}

// excludes reports whether the pod may not run on the node: bound to
// another, or kept off it by its nodeSelector or required node affinity
// (judged by the scheduler's own helper). Without the Node object, it may.
func (m *Model) excludes(pod *corev1.Pod, node string) (WhyRow, bool) {
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node {
		return WhyRow{Reason: ReasonNodeExcluded, Detail: "the pod is bound to node " + pod.Spec.NodeName}, true
	}
	n := m.nodes[node]
	if n == nil {
		return WhyRow{}, false
	}
	ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(n)
	switch {
	case err != nil:
		return WhyRow{Reason: ReasonNodeExcluded, Detail: fmt.Sprintf("the pod's node affinity does not parse: %v", err)}, true
	case !ok:
		return WhyRow{Reason: ReasonNodeExcluded, Detail: "the pod's nodeSelector or required node affinity excludes it"}, true
	}
	return WhyRow{}, false
}

// onNode judges one request on one node as the allocator would, counting
// instead of choosing: matching devices, then allocated ones, then taints.
func (m *Model) onNode(ctx context.Context, req request, sels []selector, node string) WhyRow {
	devices := m.OnNode(node)
	n, err := m.match.narrow(ctx, devices, sels)
	if err != nil {
		return WhyRow{Reason: ReasonSelectorError, Detail: err.Error()}
	}
	row := WhyRow{Matching: len(n.Matched), Needed: int(max(req.count, 1))}
	if req.all {
		row.Needed = len(n.Matched)
	}
	if len(n.Matched) == 0 {
		row.Reason, row.Detail = ReasonNoMatch, fmt.Sprintf("none of the node's %d devices", len(devices))
		if n.Emptied != nil {
			row.Detail = fmt.Sprintf("%s: none of %d", n.Emptied, n.Before)
		}
		return row
	}
	var holders, taints []string
	unallocated := 0
	for _, d := range n.Matched {
		switch {
		case d.Allocated():
			for _, h := range d.Holders {
				holders = appendNew(holders, h.Claim)
			}
		case d.Blocked(req.tolerations):
			unallocated++
			for _, t := range d.blockingTaints(req.tolerations) {
				taints = appendNew(taints, m.taintString(t))
			}
		default:
			unallocated++
			row.Free++
		}
	}
	allocated := len(n.Matched) - unallocated
	tainted := unallocated - row.Free
	summary := fmt.Sprintf("%d match, %d free, needs %d", row.Matching, row.Free, row.Needed)
	switch {
	case row.Free >= row.Needed:
		row.Reason, row.Detail = ReasonNone, summary
	case unallocated < row.Needed:
		// Too few even with the taints gone: the allocations stand in the way.
		row.Reason, row.Detail = ReasonAllAllocated, fmt.Sprintf("%s; %d allocated to %s", summary, allocated, short(holders))
	default:
		row.Reason, row.Detail = ReasonTainted, fmt.Sprintf("%s; %d tainted %s", summary, tainted, strings.Join(taints, ","))
	}
	if row.Reason != ReasonTainted && tainted > 0 {
		row.Detail += fmt.Sprintf("; %d tainted %s", tainted, strings.Join(taints, ","))
	}
	return row
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// short lists up to three names, then how many more: a row stays one line.
func short(names []string) string {
	slices.Sort(names)
	if len(names) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
	}
	return strings.Join(names, ", ")
}
