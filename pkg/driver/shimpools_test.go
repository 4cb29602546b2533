package driver

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// Two classic pools by driver: iavf VFs are netdevice, vfio-pci VFs dpdk.
const poolsByDriver = `{"resourceList":[
 {"resourceName":"netdevice","selectors":{"drivers":["iavf"]}},
 {"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}}]}`

// shimNode is a node whose legacy shim serves intel.com/dpdk: its devices
// are withheld from the slices, and the devices prepared claims hold are
// kept out of it, as Run wires them.
func shimNode(t *testing.T) *testNode {
	t.Helper()
	// VF 3 is bound to vfio-pci: dpdk from the start.
	n := newTestNode(t, nodeOpts{spec: e810(simhost.VF{Index: 3, Driver: "vfio-pci"}), config: poolsByDriver, objects: []runtime.Object{testClass},
		legacy: []string{"intel.com/dpdk"}})
	n.rescan(t)
	return n
}

func (n *testNode) rescan(t *testing.T) {
	t.Helper()
	_, err := n.pub.Sync(context.Background())
	require.NoError(t, err)
}

// poolDevices lists the classic pool's device names after the last rescan.
func (n *testNode) poolDevices(name string) []string {
	_, pools := n.pub.Snapshot()
	var out []string
	for i := range pools.Pools {
		if pools.Pools[i].Name() == name {
			for _, d := range pools.Pools[i].Devices {
				out = append(out, d.Name)
			}
		}
	}
	return out
}

// published lists the device names in the last pool handed to the API.
func (n *testNode) published() []string {
	var out []string
	for _, s := range n.pub.Desired().Slices {
		for _, d := range s.Devices {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return out
}

func TestPreparedDeviceNeverInTheShimsPool(t *testing.T) {
	n := shimNode(t)
	const vf1 = "pci-0000-3b-02-1"
	require.Equal(t, []string{"pci-0000-3b-02-3"}, n.poolDevices("intel.com/dpdk"))
	assert.NotContains(t, n.published(), "pci-0000-3b-02-3", "the shim's devices are not in the slices")
	assert.Contains(t, n.poolDevices("intel.com/netdevice"), vf1)

	claim := claimFor("uid-1", dpdkConfig, vf1)
	require.NoError(t, n.prepareOne(t, claim).Err)
	require.Equal(t, "vfio-pci", n.driverOf(t, "0000:3b:02.1"), "the claim rebinds VF 1")
	n.rescan(t)
	assert.Equal(t, []string{"pci-0000-3b-02-3"}, n.poolDevices("intel.com/dpdk"), "the rebound VF is not offered by the shim")
	assert.Contains(t, n.poolDevices("intel.com/netdevice"), vf1, "it stays in the pool it was allocated from")
	assert.Contains(t, n.published(), vf1, "and in the slices")
	pool := n.checkpoint(t).Claims["uid-1"].Devices[0].ClassicPool
	if assert.NotNil(t, pool) {
		assert.Equal(t, "intel.com/netdevice", *pool)
	}

	require.NoError(t, n.unprepareOne(t, claim))
	n.rescan(t)
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.1"))
	assert.Contains(t, n.poolDevices("intel.com/netdevice"), vf1, "back in its pool")
	assert.Equal(t, []string{"pci-0000-3b-02-3"}, n.poolDevices("intel.com/dpdk"))
}

// A device prepared by an older release (no pool recorded) that is bound
// to vfio-pci now is still not offered by the shim.
func TestPreparedDeviceWithoutRecordedPoolNotInTheShimsPool(t *testing.T) {
	n := shimNode(t)
	claim := claimFor("uid-1", dpdkConfig, "pci-0000-3b-02-1")
	require.NoError(t, n.prepareOne(t, claim).Err)
	cp := n.checkpoint(t)
	e := cp.Claims["uid-1"]
	e.Devices[0].ClassicPool = nil
	cp.Claims["uid-1"] = e
	require.NoError(t, n.state.Save(cp))
	n.rescan(t)
	assert.Equal(t, []string{"pci-0000-3b-02-3"}, n.poolDevices("intel.com/dpdk"))
	assert.Contains(t, n.published(), "pci-0000-3b-02-1", "a prepared device is never withheld from the slices")
}
