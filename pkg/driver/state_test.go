package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	metadatav1beta1 "k8s.io/dynamic-resource-allocation/api/metadata/v1beta1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestRecoverRollsBackHalfPrepared(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810()})
	// A crash after the rebind but before "prepared": the entry says preparing.
	_, err := n.h.BindDriver("0000:3b:02.3", "vfio-pci")
	require.NoError(t, err)
	spec := filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_u9.json")
	other := filepath.Join(n.cfg.CDIRoot, "vendor.com-gpu_x.json")
	writeFile(t, spec, "{}")
	writeFile(t, other, "{}")
	require.NoError(t, checkpoint.Save(n.state.Path(), checkpoint.Data{BootID: n.h.BootID(), Claims: map[string]checkpoint.Claim{
		"u9": {Namespace: "ns", Name: "c", State: checkpoint.StatePreparing, CDISpec: spec,
			Devices: []checkpoint.Device{{Name: "pci-0000-3b-02-3", PCIAddress: "0000:3b:02.3", OriginalDriver: "iavf", BoundDriver: "vfio-pci"}}},
	}}))
	require.NoError(t, n.claims.Recover(context.Background()))
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.3"))
	assert.False(t, exists(spec))
	assert.True(t, exists(other), "another driver's spec is left alone")
	assert.Empty(t, n.checkpoint(t).Claims)
}

func TestStaleBootDropsClaims(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810()})
	spec := filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_old.json")
	writeFile(t, spec, "{}")
	require.NoError(t, checkpoint.Save(n.state.Path(), checkpoint.Data{BootID: "an-earlier-boot", Claims: map[string]checkpoint.Claim{
		"old": {Name: "c", State: checkpoint.StatePrepared, CDISpec: spec}}}))
	cp, err := n.state.Load(context.Background())
	require.NoError(t, err)
	assert.Empty(t, cp.Claims)
	assert.False(t, exists(spec))
}

// TestUnreadableCheckpointAtRuntime: prepare and unprepare stop with an
// error naming the file, nothing is removed, and a Node event is posted.
func TestUnreadableCheckpointAtRuntime(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	running := claimFor("running", "", "pci-0000-3b-02-0")
	require.NoError(t, n.prepareOne(t, running).Err)
	spec := filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_running.json")
	require.NoError(t, os.WriteFile(n.state.Path(), []byte(`{"version":"v1","chec`), 0o600))

	_, err := n.claims.Prepare(context.Background(), []*resourceapi.ResourceClaim{claimFor("new", "", "pci-0000-3b-02-1")})
	require.ErrorIs(t, err, checkpoint.ErrUnreadable)
	assert.ErrorContains(t, err, n.state.Path())
	_, err = n.claims.Unprepare(context.Background(), nil)
	require.ErrorIs(t, err, checkpoint.ErrUnreadable)
	assert.True(t, exists(spec), "no destructive decision from an unreadable state")
	assert.EqualError(t, n.alive(), "the checkpoint cannot be read", "/healthz fails: the kubelet restarts the daemon")
	// Whole calls that failed are counted, by reason, as claims are.
	assert.Equal(t, 1.0, testutil.ToFloat64(n.metrics.PrepareErrors.WithLabelValues("checkpoint")), "the failed prepare call")
	assert.Equal(t, 1.0, testutil.ToFloat64(n.metrics.UnprepareErrors.WithLabelValues("checkpoint")), "the failed unprepare call")
	assert.Equal(t, 0.0, testutil.ToFloat64(n.metrics.PrepareErrors.WithLabelValues("claim")), "no claim was tried")
	require.Eventually(t, func() bool {
		evs, _ := n.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		return len(evs.Items) == 1 && evs.Items[0].Reason == "CheckpointUnreadable" && evs.Items[0].InvolvedObject.Name == "node"
	}, 5*time.Second, 10*time.Millisecond, "a Warning event on the Node")
}

// TestUnreadableCheckpointNoticedAtRescan: no prepare needs to come for a
// checkpoint gone bad to fail the health check, zero the gauge and post
// the event.
func TestUnreadableCheckpointNoticedAtRescan(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	require.NoError(t, n.prepareOne(t, claimFor("running", "", "pci-0000-3b-02-0")).Err)
	_, err := n.pub.Sync(context.Background())
	require.NoError(t, err)
	require.NoError(t, n.alive(), "a readable checkpoint: /healthz passes")
	assert.Equal(t, 1.0, testutil.ToFloat64(n.metrics.CheckpointReadable))

	require.NoError(t, os.WriteFile(n.state.Path(), []byte(`{"version":"v1","chec`), 0o600))
	_, err = n.pub.Sync(context.Background())
	require.NoError(t, err, "the rescan goes on with the devices last known held")
	assert.EqualError(t, n.alive(), "the checkpoint cannot be read", "/healthz fails: the kubelet restarts the daemon")
	assert.Equal(t, 0.0, testutil.ToFloat64(n.metrics.CheckpointReadable))
	require.Eventually(t, func() bool {
		evs, _ := n.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		return len(evs.Items) == 1 && evs.Items[0].Reason == "CheckpointUnreadable"
	}, 5*time.Second, 10*time.Millisecond, "a Warning event on the Node")
}

// TestRecoverUnreadableCheckpoint: at start-up the bad file is kept aside,
// and the claims are rebuilt from the driver's CDI specs and device-info
// files, so that the running pod's spec stays and the kubelet's next
// prepare of its claim gets the same devices.
func TestRecoverUnreadableCheckpoint(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	running := claimFor("running", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/net"}`, "pci-0000-3b-02-0")
	first := n.prepareOne(t, running)
	require.NoError(t, first.Err)
	require.NotNil(t, first.Devices[0].Metadata)
	before := n.checkpoint(t).Claims["running"]
	garbage := []byte("\x00\x01 not a checkpoint")
	require.NoError(t, os.WriteFile(n.state.Path(), garbage, 0o600))

	require.NoError(t, n.claims.Recover(context.Background()))
	aside, err := filepath.Glob(n.state.Path() + ".corrupt-*")
	require.NoError(t, err)
	require.Len(t, aside, 1)
	kept, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	assert.Equal(t, garbage, kept, "the bad file is kept, unchanged")
	e := n.checkpoint(t).Claims["running"]
	assert.True(t, e.Rebuilt)
	assert.Equal(t, checkpoint.StatePrepared, e.State)
	assert.Equal(t, before.CDISpec, e.CDISpec)
	assert.Equal(t, before.InfoFiles, e.InfoFiles)
	require.Len(t, e.Devices, 1)
	assert.Equal(t, "pci-0000-3b-02-0", e.Devices[0].Name)
	assert.Equal(t, "0000:3b:02.0", e.Devices[0].PCIAddress)
	assert.Equal(t, first, n.prepareOne(t, running), "the kubelet's next prepare gets what it got before")
}

// TestGarbageCollection: claims the API says are gone are unprepared;
// claims in use stay; rebuilt entries get their names back.
func TestGarbageCollection(t *testing.T) {
	inUse := claimFor("in-use", "", "pci-0000-3b-02-0")
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass, inUse}})
	gone := claimFor("gone", "", "pci-0000-3b-02-1")
	unreserved := claimFor("unreserved", "", "pci-0000-3b-02-2")
	for _, c := range []*resourceapi.ResourceClaim{inUse, gone, unreserved} {
		require.NoError(t, n.prepareOne(t, c).Err)
	}
	unreserved.Status.ReservedFor = nil
	_, err := n.client.ResourceV1().ResourceClaims("ns").Create(context.Background(), unreserved, metav1.CreateOptions{})
	require.NoError(t, err)
	// The in-use claim's entry lost its name, as a rebuilt one has.
	cp := n.checkpoint(t)
	e := cp.Claims["in-use"]
	e.Namespace, e.Name, e.Rebuilt = "", "", true
	cp.Claims["in-use"] = e
	require.NoError(t, checkpoint.Save(n.state.Path(), cp))

	require.NoError(t, n.claims.CollectGone(context.Background()))
	cp = n.checkpoint(t)
	assert.Equal(t, []string{"in-use"}, keys(cp.Claims))
	assert.Equal(t, "claim-in-use", cp.Claims["in-use"].Name, "named from the API")
	assert.False(t, exists(filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_gone.json")))
	assert.True(t, exists(filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_in-use.json")))
}

func TestGarbageCollectionWithoutAPIRemovesNothing(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	require.NoError(t, n.prepareOne(t, claimFor("a", "", "pci-0000-3b-02-0")).Err)
	n.client.PrependReactor("get", "resourceclaims", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("apiserver down")
	})
	require.Error(t, n.claims.CollectGone(context.Background()))
	assert.Len(t, n.checkpoint(t).Claims, 1)
}

// TestTwoInstancesShareState: two driver instances on one plugin dir (a
// rolling update) prepare and unprepare claims at once while one of them
// runs its start-up recovery: no entry is lost and no claim is rolled back
// while in flight.
func TestTwoInstancesShareState(t *testing.T) {
	spec := e810()
	spec.PFs[0].NumVFs = 32
	old := newTestNode(t, nodeOpts{spec: spec, objects: []runtime.Object{testClass}})
	fresh := newTestNode(t, nodeOpts{root: old.root, objects: []runtime.Object{testClass}})
	const perInstance = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*perInstance+1)
	for i, n := range []*testNode{old, fresh} {
		wg.Go(func() {
			for k := range perInstance {
				vf := i*perInstance + k
				c := claimFor(fmt.Sprintf("c%d", vf), dpdkConfig, fmt.Sprintf("pci-0000-3b-%02x-%x", 2+vf/8, vf%8))
				res, err := n.claims.Prepare(context.Background(), []*resourceapi.ResourceClaim{c})
				if err == nil {
					err = res[c.UID].Err
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", c.UID, err)
				}
				if k%2 == 1 {
					if err := n.unprepareOne(t, c); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := fresh.claims.Recover(context.Background()); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cp := old.checkpoint(t)
	require.Len(t, cp.Claims, perInstance, "every claim still prepared by either instance is recorded")
	for vf := range 2 * perInstance {
		addr := fmt.Sprintf("0000:3b:%02x.%x", 2+vf/8, vf%8)
		e, ok := cp.Claims[fmt.Sprintf("c%d", vf)]
		if vf%2 == 1 {
			assert.False(t, ok, "c%d was unprepared", vf)
			assert.Equal(t, "iavf", old.driverOf(t, addr), "c%d's device restored", vf)
			continue
		}
		require.True(t, ok, "c%d is recorded", vf)
		assert.Equal(t, checkpoint.StatePrepared, e.State)
		assert.True(t, exists(e.CDISpec), "c%d kept its spec", vf)
		assert.Equal(t, "vfio-pci", old.driverOf(t, addr), "c%d kept its bind", vf)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// helperWroteMetadata writes the metadata files the kubelet plugin helper
// writes for a prepared claim (KEP-5304), one per request, where it writes
// them.
func helperWroteMetadata(t testing.TB, pluginDir string, c *resourceapi.ResourceClaim, res kubeletplugin.PrepareResult) {
	t.Helper()
	byRequest := map[string][]metadatav1beta1.Device{}
	for _, d := range res.Devices {
		attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}
		for k, v := range d.Metadata.Attributes {
			attrs[resourceapi.QualifiedName(k)] = v
		}
		byRequest[d.Requests[0]] = append(byRequest[d.Requests[0]], metadatav1beta1.Device{Driver: "sriov.dra.dev", Pool: d.PoolName, Name: d.DeviceName, Attributes: attrs})
	}
	for request, devices := range byRequest {
		m := metadatav1beta1.DeviceMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "metadata.resource.k8s.io/v1beta1", Kind: "DeviceMetadata"},
			Requests: []metadatav1beta1.DeviceMetadataRequest{{Name: request, Devices: devices}}}
		data, err := json.Marshal(m)
		require.NoError(t, err)
		dir := filepath.Join(pluginDir, "dra-device-metadata", c.Namespace+"_"+c.Name, request)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		// A stream: the newest version first, then the older ones.
		require.NoError(t, os.WriteFile(filepath.Join(dir, "metadata.json"), append(data, []byte("\n{\"apiVersion\":\"metadata.resource.k8s.io/v1alpha1\"}\n")...), 0o600))
	}
}
