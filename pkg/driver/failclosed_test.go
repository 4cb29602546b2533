package driver

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// TestUnreadableRouteTableKeepsPFs: when prepare cannot read which NIC
// carries the node's traffic, any PF may be it, so no PF is rebound; VFs
// still are (the uplink's VF is found through its PF by discovery).
func TestUnreadableRouteTableKeepsPFs(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4},
		{Address: "0000:5e:00.0", Model: "e810", IfName: "ens2f0"},
	}}
	n := newTestNode(t, nodeOpts{spec: spec, objects: []runtime.Object{testClass}})
	route := filepath.Join(n.root, "host/proc/net/route")
	require.NoError(t, os.Remove(route))
	require.NoError(t, os.Mkdir(route, 0o755), "a directory where the table should be: reading it fails")

	res := n.prepareOne(t, claimFor("pf", dpdkConfig, "pci-0000-5e-00-0"))
	require.ErrorContains(t, res.Err, "(route table unreadable) cannot be traced to a device, so any PF may be the uplink")
	assert.Equal(t, "ice", n.driverOf(t, "0000:5e:00.0"), "the PF keeps its driver")
	assert.Empty(t, n.checkpoint(t).Claims)

	res = n.prepareOne(t, claimFor("vf", dpdkConfig, "pci-0000-3b-02-1"))
	require.NoError(t, res.Err)
	assert.Equal(t, "vfio-pci", n.driverOf(t, "0000:3b:02.1"))
}

// TestPrepareAgainTouchesNothing: the kubelet prepares a prepared claim
// again after its own restart; the driver answers from the checkpoint and
// neither undoes nor redoes anything (the pod is using the device).
func TestPrepareAgainTouchesNothing(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	claim := claimFor("uid-1", dpdkConfig, "pci-0000-3b-02-1")
	first := n.prepareOne(t, claim)
	require.NoError(t, first.Err)
	files := []string{
		filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_uid-1.json"),
		filepath.Join(n.cfg.DevInfoDir, "intel.com-dpdk-0000:3b:02.1-device.json"),
		n.state.Path(),
	}
	inodes := func() []uint64 {
		var out []uint64
		for _, f := range files {
			fi, err := os.Stat(f)
			require.NoError(t, err)
			out = append(out, fi.Sys().(*syscall.Stat_t).Ino)
		}
		return out
	}
	before := inodes()
	// The device's driver as a bind would leave it is the only trace of a
	// rollback and rebind besides the files: the simulator rewrites the
	// VF's driver link on every bind.
	link := filepath.Join(n.root, "host/sys/bus/pci/devices/0000:3b:02.1/driver")
	linkBefore, err := os.Lstat(link)
	require.NoError(t, err)

	assert.Equal(t, first, n.prepareOne(t, claim))
	assert.Equal(t, before, inodes(), "no file rewritten (atomic writes replace the inode)")
	linkAfter, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, linkBefore.Sys().(*syscall.Stat_t).Ino, linkAfter.Sys().(*syscall.Stat_t).Ino, "the device was not rebound")
}
