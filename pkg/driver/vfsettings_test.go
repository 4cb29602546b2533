package driver

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// vfioWithSettings is a class config binding vfio-pci with every VF
// setting a PF holds: what a DPDK pod or a VM asks for.
const vfioWithSettings = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci",
	"network":{"mac":"02:AB:00:00:00:05","vlan":7,"vlanQoS":2,"trust":true,"spoofChk":false,"minTxRate":100,"maxTxRate":500,"linkState":"disable"}}`

// vfDefaults is a VF the simulated PF never changed, as the kernel shows it.
var vfDefaults = host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: "auto"}

func vfState(t *testing.T, n *testNode, index int) host.VFState {
	t.Helper()
	st, err := n.h.VF("ens1f0", index)
	require.NoError(t, err)
	return st.Normalized()
}

// TestVFSettingsOnAVFIOVF: a VF bound to vfio-pci has no netdev to move, so
// its network section is set on the PF at prepare, without NRI, and put
// back at unprepare; the workload reads the MAC and VLAN from its device
// metadata and the claim's status.
func TestVFSettingsOnAVFIOVF(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	c := claimFor("dpdk", vfioWithSettings, "pci-0000-3b-02-1")
	res := n.prepareOne(t, c)
	require.NoError(t, res.Err)

	assert.Equal(t, "vfio-pci", n.driverOf(t, "0000:3b:02.1"))
	assert.Equal(t, host.VFState{MAC: "02:ab:00:00:00:05", VLAN: 7, QoS: 2, Trust: true, SpoofChk: false, MinTxRate: 100, MaxTxRate: 500, LinkState: "disable"},
		vfState(t, n, 1), "every setting on the PF")
	assert.Equal(t, vfDefaults, vfState(t, n, 0), "VF 0 untouched")
	dev := n.checkpoint(t).Claims["dpdk"].Devices[0]
	require.NotNil(t, dev.VFSet)
	zero, off, on, auto, mac := 0, false, true, "auto", "00:00:00:00:00:00"
	assert.Equal(t, checkpoint.VFSet{PF: "ens1f0", VFIndex: 1, Restore: checkpoint.VFSettings{MAC: &mac, VLAN: &zero, QoS: &zero,
		Trust: &off, SpoofChk: &on, MinTxRate: &zero, MaxTxRate: &zero, LinkState: &auto}}, *dev.VFSet, "what puts the VF back")
	assert.Nil(t, dev.Network, "nothing to move at sandbox creation")
	assert.Equal(t, "02:ab:00:00:00:05", dev.HardwareAddress, "the claim's networkData")
	require.Len(t, res.Devices, 1)
	require.NotNil(t, res.Devices[0].Metadata)
	attrs := res.Devices[0].Metadata.Attributes
	assert.Equal(t, "02:ab:00:00:00:05", *attrs["mac"].StringValue)
	assert.Equal(t, int64(7), *attrs["vlan"].IntValue)

	require.NoError(t, n.unprepareOne(t, c))
	assert.Equal(t, vfDefaults, vfState(t, n, 1), "put back")
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.1"))
}

// vfWatch is the node's host with a look at the checkpoint before each
// change of VF settings, and a PF that, when lazy, takes a link state
// without an error and does not apply it.
type vfWatch struct {
	Host
	look    func() checkpoint.Data
	lazy    bool
	records []*checkpoint.VFSet
	calls   map[int]int // by VF index
}

func (h *vfWatch) SetVF(pf string, index int, c host.VFConfig) error {
	if h.calls == nil {
		h.calls = map[int]int{}
	}
	h.calls[index]++
	h.records = append(h.records, h.look().Claims["dpdk"].Devices[0].VFSet)
	if h.lazy {
		c.LinkState = nil
	}
	return h.Host.SetVF(pf, index, c)
}

// watchedNode is an e810 node whose host is a vfWatch.
func watchedNode(t *testing.T, lazy bool) (*testNode, *vfWatch) {
	var n *testNode
	watch := &vfWatch{look: func() checkpoint.Data { return n.checkpoint(t) }, lazy: lazy}
	n = newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}, wrap: func(h Host) Host { watch.Host = h; return watch }})
	return n, watch
}

// TestVFSettingsRecordedBeforeTheyChange: the VF's original settings are in
// the checkpoint on disk before the PF changes them, so that a crash at any
// point leaves recovery what puts them back; recovery does.
func TestVFSettingsRecordedBeforeTheyChange(t *testing.T) {
	n, watch := watchedNode(t, false)
	require.NoError(t, n.prepareOne(t, claimFor("dpdk", vfioWithSettings, "pci-0000-3b-02-1")).Err)
	require.Len(t, watch.records, 1)
	require.NotNil(t, watch.records[0], "the record was on disk before the PF changed anything")
	assert.Equal(t, "ens1f0", watch.records[0].PF)

	// A crash before "prepared": the entry goes back to preparing.
	cp := n.checkpoint(t)
	e := cp.Claims["dpdk"]
	e.State = checkpoint.StatePreparing
	cp.Claims["dpdk"] = e
	require.NoError(t, checkpoint.Save(n.state.Path(), cp))
	restarted := newTestNode(t, nodeOpts{root: n.root, objects: []runtime.Object{testClass}})
	require.NoError(t, restarted.claims.Recover(context.Background()))
	assert.Equal(t, vfDefaults, vfState(t, restarted, 1), "recovery put the VF back")
	assert.Equal(t, "iavf", restarted.driverOf(t, "0000:3b:02.1"))
	assert.Empty(t, restarted.checkpoint(t).Claims)
}

// TestVFSettingRefusedByThePF: a setting the PF's driver takes without an
// error and does not apply is found by reading it back: the claim fails
// with what is missing, and nothing stays changed.
func TestVFSettingRefusedByThePF(t *testing.T) {
	n, _ := watchedNode(t, true)
	res := n.prepareOne(t, claimFor("dpdk", vfioWithSettings, "pci-0000-3b-02-1"))
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), "device pci-0000-3b-02-1: PF ens1f0 did not apply to VF 1: link state disable (the PF shows auto)")
	assert.Equal(t, vfDefaults, vfState(t, n, 1), "what it did apply is put back")
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.1"))
	assert.Empty(t, n.checkpoint(t).Claims)
}

// TestVFSettingsRefusedLeaveTheNextVFAlone: in a claim of two VFs, the PF
// refusing the first's settings leaves the second's PF settings untouched,
// not even "put back" (restoring a MAC never changed is not harmless: igb
// then pins it).
func TestVFSettingsRefusedLeaveTheNextVFAlone(t *testing.T) {
	n, watch := watchedNode(t, true)
	res := n.prepareOne(t, claimFor("dpdk", vfioWithSettings, "pci-0000-3b-02-1", "pci-0000-3b-02-2"))
	require.Error(t, res.Err)
	assert.Equal(t, map[int]int{1: 2}, watch.calls, "VF 1 set and put back; VF 2 never touched")
	assert.Equal(t, vfDefaults, vfState(t, n, 2))
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.2"))
}

// TestVFSettingsOnlyForVFs: on a PF, or a device whose network section
// needs a netdev it will not have, prepare refuses before touching it.
func TestVFSettingsOnlyForVFs(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 1},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0"}}}
	n := newTestNode(t, nodeOpts{spec: spec, objects: []runtime.Object{testClass}})
	res := n.prepareOne(t, claimFor("pf", vfioWithSettings, "pci-0000-5b-00-0"))
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), `device pci-0000-5b-00-0: on a device without a kernel netdev (driver "vfio-pci") a network section sets VF settings on the PF, and this device is a pf`)
	for _, field := range []string{`"addresses":["10.0.0.2/24"]`, `"routes":[{"destination":"10.1.0.0/16"}]`} {
		cfg := fmt.Sprintf(`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci","network":{"vlan":3,%s}}`, field)
		res := n.prepareOne(t, claimFor("netdev-field", cfg, "pci-0000-3b-02-0"))
		require.Error(t, res.Err, field)
		assert.Contains(t, res.Err.Error(), "has no kernel netdev")
	}
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.0"))
	st, err := n.h.VF("ens1f0", 0)
	require.NoError(t, err)
	assert.Equal(t, vfDefaults, st.Normalized())
}
