package kubectlplugin

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"
)

func TestWhy(t *testing.T) {
	held := []string{ns + "/a", ns + "/b"} // the claims holding ens1f0's VFs 0 and 1
	freeUp := vfsUp - len(held)
	noneOnN2 := func(claim, class string, needed int) WhyRow {
		return WhyRow{Claim: ns + "/" + claim, Request: "dev", Node: "n2", Reason: ReasonNoMatch, Needed: needed,
			Detail: fmt.Sprintf(`class %s selector 2 (%s): none of %d`, class, pfIs(class), vfsN2)}
	}
	tests := []struct {
		name  string
		claim resourceapi.ResourceClaim
		pod   *corev1.Pod // default: a pod with the claim
		want  []WhyRow
	}{{
		name:  "a request selector no device passes",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "vf", Count: 1, Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: pfIs("ens7f0")}}}}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonNoMatch, Needed: 1,
				Detail: fmt.Sprintf("request selector 1 (%s): none of %d", pfIs("ens7f0"), vfsUp+vfsDown)},
			{Claim: ns + "/c", Request: "dev", Node: "n2", Reason: ReasonNoMatch, Needed: 1,
				Detail: fmt.Sprintf("request selector 1 (%s): none of %d", pfIs("ens7f0"), vfsN2)},
		},
	}, {
		name:  "more than the free matching devices: the allocations are in the way, and by whom",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "ens1f0", Count: int64(freeUp + 1)}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonAllAllocated, Matching: vfsUp, Free: freeUp, Needed: freeUp + 1,
				Detail: fmt.Sprintf("%d match, %d free, needs %d; %d allocated to %s, %s", vfsUp, freeUp, freeUp+1, len(held), held[0], held[1])},
			noneOnN2("c", "ens1f0", freeUp+1),
		},
	}, {
		name:  "allocation mode All while some are allocated",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "ens1f0", AllocationMode: resourceapi.DeviceAllocationModeAll}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonAllAllocated, Matching: vfsUp, Free: freeUp, Needed: vfsUp,
				Detail: fmt.Sprintf("%d match, %d free, needs %d; %d allocated to %s, %s", vfsUp, freeUp, vfsUp, len(held), held[0], held[1])},
			{Claim: ns + "/c", Request: "dev", Node: "n2", Reason: ReasonNoMatch,
				Detail: fmt.Sprintf(`class ens1f0 selector 2 (%s): none of %d`, pfIs("ens1f0"), vfsN2)},
		},
	}, {
		name:  "only tainted devices match",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "ens1f1", Count: 1}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonTainted, Matching: vfsDown, Needed: 1,
				Detail: fmt.Sprintf("%d match, 0 free, needs 1; %d tainted link-down=ens1f1:NoSchedule", vfsDown, vfsDown)},
			noneOnN2("c", "ens1f1", 1),
		},
	}, {
		name: "a tolerated taint is not in the way",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "ens1f1", Count: 1, Tolerations: []resourceapi.DeviceToleration{
			{Key: linkDown.Key, Operator: resourceapi.DeviceTolerationOpExists}}}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonNone, Matching: vfsDown, Free: vfsDown, Needed: 1,
				Detail: fmt.Sprintf("%d match, %d free, needs 1", vfsDown, vfsDown)},
			noneOnN2("c", "ens1f1", 1),
		},
	}, {
		name:  "nothing in the way",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "vf", Count: 1}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonNone, Matching: vfsUp + vfsDown, Free: freeUp, Needed: 1,
				Detail: fmt.Sprintf("%d match, %d free, needs 1; %d tainted link-down=ens1f1:NoSchedule", vfsUp+vfsDown, freeUp, vfsDown)},
			{Claim: ns + "/c", Request: "dev", Node: "n2", Reason: ReasonNone, Matching: vfsN2, Free: vfsN2, Needed: 1,
				Detail: fmt.Sprintf("%d match, %d free, needs 1", vfsN2, vfsN2)},
		},
	}, {
		name:  "an allocated claim: its own devices are not in its way",
		claim: allocated("c", "n1", []string{"p"}, vfName("3b", 2)),
		want:  []WhyRow{{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonNone, Detail: "allocated " + vfName("3b", 2)}},
	}, {
		name:  "a selector that fails at run time",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "vf", Count: 1, Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: `device.attributes["sriov.dra.dev"].nope == "x"`}}}}),
		want: []WhyRow{
			{Claim: ns + "/c", Request: "dev", Node: "n1", Reason: ReasonSelectorError},
			{Claim: ns + "/c", Request: "dev", Node: "n2", Reason: ReasonSelectorError},
		},
	}, {
		name:  "no such class",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "nope", Count: 1}),
		want:  []WhyRow{{Claim: ns + "/c", Request: "dev", Node: "-", Reason: ReasonNoClass, Detail: "DeviceClass nope does not exist"}},
	}, {
		name:  "a template's claim not made yet",
		claim: pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "vf", Count: 1}),
		pod: &corev1.Pod{Spec: corev1.PodSpec{ResourceClaims: []corev1.PodResourceClaim{
			{Name: "net", ResourceClaimTemplateName: ptr.To("tmpl")}}}},
		want: []WhyRow{{Claim: "net", Node: "-", Reason: ReasonNoClaim, Detail: "not made from its template yet (the resourceclaim controller makes it)"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := tt.pod
			if pod == nil {
				pod = podWith(tt.claim.Name)
			}
			rows := NewModel(snapshot(tt.claim)).Why(t.Context(), pod)
			if tt.want[0].Reason == ReasonSelectorError {
				// The error text is CEL's; that it names the selector is ours.
				for i := range rows {
					assert.Contains(t, rows[i].Detail, `request selector 1 (device.attributes["sriov.dra.dev"].nope == "x") on device`)
					rows[i].Detail = ""
				}
			}
			assert.Equal(t, tt.want, rows)
		})
	}
}

// A pod's template claim is found through the pod's status, and each
// alternative of a firstAvailable request is judged.
func TestWhyTemplateClaimFirstAvailable(t *testing.T) {
	claim := pending("p-net-x1", resourceapi.ExactDeviceRequest{})
	claim.Spec.Devices.Requests[0] = resourceapi.DeviceRequest{Name: "dev", FirstAvailable: []resourceapi.DeviceSubRequest{
		{Name: "down", DeviceClassName: "ens1f1", AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1},
		{Name: "any", DeviceClassName: "vf", AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1},
	}}
	pod := &corev1.Pod{}
	pod.Namespace = ns
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "net", ResourceClaimTemplateName: ptr.To("tmpl")}}
	pod.Status.ResourceClaimStatuses = []corev1.PodResourceClaimStatus{{Name: "net", ResourceClaimName: ptr.To(claim.Name)}}
	rows := NewModel(snapshot(claim)).Why(t.Context(), pod)
	require.Len(t, rows, 4, "two alternatives on two nodes")
	got := map[string]Reason{}
	for _, r := range rows {
		assert.Equal(t, ns+"/"+claim.Name, r.Claim)
		got[r.Request+"@"+r.Node] = r.Reason
	}
	assert.Equal(t, map[string]Reason{
		"dev/down@n1": ReasonTainted, "dev/down@n2": ReasonNoMatch,
		"dev/any@n1": ReasonNone, "dev/any@n2": ReasonNone,
	}, got)
}

// A node the pod may not run on is said so before its devices are judged;
// without the Node objects every node is judged.
func TestWhyNodeNotSelected(t *testing.T) {
	claim := pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "vf", Count: 1})
	nodes := []corev1.Node{{}, {}}
	nodes[0].Name, nodes[0].Labels = "n1", map[string]string{"zone": "a"}
	nodes[1].Name, nodes[1].Labels = "n2", map[string]string{"zone": "b"}
	tests := []struct {
		name  string
		pod   func(*corev1.Pod)
		nodes []corev1.Node
		want  map[string]Reason // node -> reason
		n1    string            // n1's detail
	}{{
		name:  "node selector",
		pod:   func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} },
		nodes: nodes,
		want:  map[string]Reason{"n1": ReasonNodeExcluded, "n2": ReasonNone},
		n1:    "the pod's nodeSelector or required node affinity excludes it",
	}, {
		name: "bound to another node",
		pod:  func(p *corev1.Pod) { p.Spec.NodeName = "n2" },
		want: map[string]Reason{"n1": ReasonNodeExcluded, "n2": ReasonNone},
		n1:   "the pod is bound to node n2",
	}, {
		name: "node selector, Node objects unknown",
		pod:  func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "b"} },
		want: map[string]Reason{"n1": ReasonNone, "n2": ReasonNone},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(claim)
			s.Nodes = tt.nodes
			pod := podWith(claim.Name)
			tt.pod(pod)
			got := map[string]Reason{}
			for _, r := range NewModel(s).Why(t.Context(), pod) {
				got[r.Node] = r.Reason
				if r.Node == "n1" && tt.n1 != "" {
					assert.Equal(t, tt.n1, r.Detail)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
