package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

const namedConfig = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/net"}`

// TestAdoptedClaimsInfoFilesGo: after the checkpoint is lost, a restarted
// driver adopts the claims from their CDI specs before it has discovered
// anything; unpreparing them removes their device-info files too.
func TestAdoptedClaimsInfoFilesGo(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	claim := claimFor("running", namedConfig, "pci-0000-3b-02-0")
	require.NoError(t, n.prepareOne(t, claim).Err)
	info := filepath.Join(n.cfg.DevInfoDir, "intel.com-net-0000:3b:02.0-device.json")
	require.FileExists(t, info)
	require.NoError(t, os.Remove(n.state.Path()))

	// A new process: its publisher has not scanned the host yet.
	restarted := newTestNode(t, nodeOpts{root: n.root, unscanned: true, objects: []runtime.Object{testClass}})
	require.NoError(t, restarted.claims.Recover(context.Background()))
	assert.Equal(t, []string{info}, restarted.checkpoint(t).Claims["running"].InfoFiles, "the adopted claim owns its device-info file")

	require.NoError(t, restarted.unprepareOne(t, claim))
	assert.NoFileExists(t, info)
	assert.NoFileExists(t, filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_running.json"))
}

// TestStartupSweep: every device-info file about a device of the node is
// owned by a prepared claim or handed to the shim; the rest go. Files
// about other devices, and other files, stay.
func TestStartupSweep(t *testing.T) {
	// VF 3 on vfio-pci: in the dpdk pool the shim serves.
	n := newTestNode(t, nodeOpts{spec: e810(simhost.VF{Index: 3, Driver: "vfio-pci"}), config: poolsByDriver, objects: []runtime.Object{testClass},
		legacy: []string{"intel.com/dpdk"}})
	require.NoError(t, n.prepareOne(t, claimFor("running", namedConfig, "pci-0000-3b-02-0")).Err)
	dir := n.cfg.DevInfoDir
	owned := filepath.Join(dir, "intel.com-net-0000:3b:02.0-device.json")
	require.FileExists(t, owned)
	write := func(name string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte("{}"), 0o600))
		return path
	}
	leftover := write("intel.com-net-0000:3b:02.1-device.json")  // a claim gone while no driver ran
	shimFile := write("intel.com-dpdk-0000:3b:02.3-device.json") // a legacy pod's, maybe still running
	others := []string{
		write("intel.com-net-0000:d8:00.1-device.json"), // not a device of this node
		write("README"),
	}
	shim := n.shim

	require.NoError(t, n.sweepDevInfo(context.Background()))
	assert.FileExists(t, owned, "its claim is prepared")
	assert.NoFileExists(t, leftover, "no claim or pod owns it")
	assert.FileExists(t, shimFile, "the shim decides once the kubelet says who holds it")
	for _, f := range others {
		assert.FileExists(t, f)
	}
	assert.Zero(t, shim.ReleaseFiles(context.Background(), map[string]bool{"0000:3b:02.3": true}, time.Now()), "a pod holds it")
	assert.Equal(t, 1, shim.ReleaseFiles(context.Background(), map[string]bool{}, time.Now()), "the pod is gone")
	assert.NoFileExists(t, shimFile)
}

// TestRecoverRemovesTempFiles: a driver killed in the middle of writing a
// CDI spec (pkg/atomicfile) or the helper's device metadata leaves a temp
// file nothing renames or removes; recovery does. Beside another instance
// (a rolling update) only stale ones go: that one may be writing.
func TestRecoverRemovesTempFiles(t *testing.T) {
	// Recovery removes a temp file a minute old beside another instance.
	const staleTempAge = time.Minute
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	require.NoError(t, os.MkdirAll(n.cfg.CDIRoot, 0o755))
	write := func(name string, age time.Duration) string {
		path := filepath.Join(n.cfg.CDIRoot, name)
		require.NoError(t, os.WriteFile(path, []byte("{"), 0o600))
		at := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(path, at, at))
		return path
	}
	spec := write(".sriov.dra.dev-net_uid-1.json.tmp", 0)
	meta := write(".sriov.dra.dev_metadata_uid-1_vf.json.123456.tmp", 0)
	staleMeta := write(".sriov.dra.dev_metadata_uid-2_vf.json.654321.tmp", 2*staleTempAge)
	other := write(".other.vendor-net_uid-3.json.tmp", 2*staleTempAge) // another driver's

	daemonSetPod := newTestNode(t, nodeOpts{root: n.root, podUID: "pod-b", objects: []runtime.Object{testClass}})
	require.NoError(t, daemonSetPod.claims.Recover(context.Background()))
	assert.FileExists(t, spec, "beside another instance, a fresh one may be in the middle of a write")
	assert.FileExists(t, meta)
	assert.NoFileExists(t, staleMeta)

	require.NoError(t, n.claims.Recover(context.Background()))
	assert.NoFileExists(t, spec, "alone, nothing else can be writing")
	assert.NoFileExists(t, meta)
	assert.FileExists(t, other, "another driver's files stay")
}
