package prepare

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// linkContainerPeers sets each plan's Peers, in call order: the plans whose
// claims a container of the same pod also uses (itself included). Claims used by one container share
// their PCIDEVICE_ variables; claims in different containers stay apart. A
// claim shared by two containers lists the devices of both containers'
// claims, since a claim has one CDI spec. Without the pod, every claim of
// the pod in this call is a peer of every other.
func linkContainerPeers(plans []ClaimPlan, pods map[types.UID]*corev1.Pod) {
	byPod := map[types.UID][]int{}
	for i := range plans {
		plans[i].Peers = nil
		c := plans[i].Claim
		if plans[i].Err != nil || c == nil || len(c.Status.ReservedFor) == 0 {
			continue
		}
		uid := c.Status.ReservedFor[0].UID
		byPod[uid] = append(byPod[uid], i)
	}
	for uid, members := range byPod {
		groups := containerClaimGroups(pods[uid])
		for _, a := range members {
			for _, b := range members {
				if a == b || sharesContainer(groups, plans[a].Claim.Name, plans[b].Claim.Name) {
					plans[a].Peers = append(plans[a].Peers, plans[b].ID)
				}
			}
		}
	}
	for i := range plans {
		if plans[i].Peers == nil {
			plans[i].Peers = []string{plans[i].ID}
		}
	}
}

// sharesContainer reports whether two claims are used by one container;
// with no groups known (no pod), all claims of the pod are.
func sharesContainer(groups [][]string, a, b string) bool {
	if groups == nil {
		return true
	}
	for _, g := range groups {
		if slices.Contains(g, a) && slices.Contains(g, b) {
			return true
		}
	}
	return false
}

// containerClaimGroups returns, per container of the pod, the names of the
// ResourceClaims it uses; nil when the pod is unknown.
func containerClaimGroups(pod *corev1.Pod) [][]string {
	if pod == nil {
		return nil
	}
	claimName := map[string]string{}
	for _, pc := range pod.Spec.ResourceClaims {
		if pc.ResourceClaimName != nil {
			claimName[pc.Name] = *pc.ResourceClaimName
		}
	}
	// Claims made from templates are named in the pod's status.
	for _, st := range pod.Status.ResourceClaimStatuses {
		if st.ResourceClaimName != nil {
			claimName[st.Name] = *st.ResourceClaimName
		}
	}
	var groups [][]string
	for _, ctr := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		var g []string
		for _, rc := range ctr.Resources.Claims {
			if n, ok := claimName[rc.Name]; ok {
				g = append(g, n)
			}
		}
		groups = append(groups, g)
	}
	if ext := pod.Status.ExtendedResourceClaimStatus; ext != nil {
		// The claim the scheduler made for extended resources (KEP-5004)
		// serves every container that asked for one.
		groups = append(groups, []string{ext.ResourceClaimName})
	}
	return groups
}
