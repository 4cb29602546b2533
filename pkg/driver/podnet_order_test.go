package driver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// watchedHost is the node's host, with each change SandboxCreated makes to
// it (a VF's settings on its PF, a netdev's move) preceded by a look at the
// checkpoint on disk: what a crash at that moment would leave to recovery.
type watchedHost struct {
	Host
	look  func() checkpoint.Data
	steps []watchedStep
}

// watchedStep is a change and the record of claim u1's device as the
// checkpoint held it just before.
type watchedStep struct {
	name   string
	record *checkpoint.InPod
}

func (h *watchedHost) see(name string) {
	h.steps = append(h.steps, watchedStep{name: name, record: h.look().Claims["u1"].Devices[0].InPod})
}

func (h *watchedHost) SetVF(pf string, index int, c host.VFConfig) error {
	h.see("set VF")
	return h.Host.SetVF(pf, index, c)
}

func (h *watchedHost) MoveLinkToPod(hostName string, p host.PodLink) (host.LinkState, error) {
	h.see("move netdev")
	return h.Host.MoveLinkToPod(hostName, p)
}

// TestSandboxRecordsIntentBeforeTouchingTheHost: SandboxCreated writes an
// "attaching" record, with what is needed to undo the change, before it
// changes the host. A crash after the move but before a later save would
// otherwise leave a netdev in a pod (and VF settings on a PF) that no
// record tells recovery to take back.
func TestSandboxRecordsIntentBeforeTouchingTheHost(t *testing.T) {
	zero := 0
	tests := []struct {
		name, network string
		steps         []string
		// restore is what the record must hold to put the VF's settings
		// back (nil: nothing set on the PF).
		restore *checkpoint.VFSettings
	}{
		{"netdev only: the move is the first change", `"interfaceName":"net1"`, []string{"move netdev"}, nil},
		// The VF starts without a VLAN: putting it back means VLAN 0, and
		// QoS 0 with it (the PF sets the two together).
		{"VLAN: set on the PF, then the move", `"vlan":7`, []string{"set VF", "move netdev"}, &checkpoint.VFSettings{VLAN: &zero, QoS: &zero}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n *testNode
			watched := &watchedHost{look: func() checkpoint.Data { return n.checkpoint(t) }}
			n, _ = podNetNode(t, func(h Host) Host { watched.Host = h; return watched })
			ns := simhosttest.Netns(t)
			require.NoError(t, n.prepareOne(t, podClaim("u1", tc.network, "pod-a", "pci-0000-3b-02-1")).Err)

			require.NoError(t, n.podnet.SandboxCreated(context.Background(), sandbox("sb1", "pod-a", ns)))

			var names []string
			for _, s := range watched.steps {
				names = append(names, s.name)
			}
			require.Equal(t, tc.steps, names, "the host changes SandboxCreated made")
			// pci-0000-3b-02-1 is VF 1 of ens1f0: netdev ens1f0v1 with the
			// MAC podNetNode gave it; the pod's first netdev is net1.
			want := &checkpoint.InPod{State: checkpoint.InPodAttaching, PodUID: "pod-a", Pod: "ns/pod-a", SandboxID: "sb1", NetNS: ns,
				IfName: "net1", Host: checkpoint.Link{Name: "ens1f0v1", MAC: vfMAC(1), MTU: 1500, Up: true}}
			if tc.restore != nil {
				want.PF, want.VFIndex, want.VFRestore = "ens1f0", 1, tc.restore
			}
			for _, s := range watched.steps {
				require.NotNil(t, s.record, "before %q: the checkpoint has the attaching record", s.name)
				got := *s.record
				got.Host.Index = 0 // the kernel's ifindex: not known to the test
				assert.Equal(t, *want, got, "before %q", s.name)
			}
		})
	}
}
