package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

type testPreparer struct {
	*preparer
	root string
	h    *host.Host
}

func newTestPreparer(t testing.TB, spec simhost.Spec) *testPreparer {
	root := t.TempDir()
	require.NoError(t, simhost.Write(filepath.Join(root, "host"), spec))
	h := host.ForRoot(filepath.Join(root, "host"))
	p := &preparer{
		driverName: "sriov.dra.dev", nodeName: "node", cdiRoot: filepath.Join(root, "cdi"), devInfoDir: filepath.Join(root, "devinfo"),
		checkpoint: filepath.Join(root, "plugin", "checkpoint.json"), host: h,
		inventory:   func(ctx context.Context, _ bool) (*discovery.Inventory, error) { return discovery.Discover(ctx, h) },
		poolOptions: func(*discovery.Device) prepare.Options { return prepare.Options{} },
		defaultRoutes: func() map[string]bool {
			r, _ := h.DefaultRouteInterfaces()
			return r
		},
	}
	return &testPreparer{preparer: p, root: root, h: h}
}

// claimFor is an allocated claim for devices, with an opaque config from the class.
func claimFor(uid string, config string, devices ...string) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "claim-" + uid, Namespace: "ns", UID: types.UID(uid)}}
	c.Spec.Devices.Requests = []resourceapi.DeviceRequest{{Name: "vf", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "cls"}}}
	alloc := &resourceapi.AllocationResult{}
	for _, d := range devices {
		alloc.Devices.Results = append(alloc.Devices.Results, resourceapi.DeviceRequestAllocationResult{Request: "vf", Driver: "sriov.dra.dev", Pool: "node", Device: d})
	}
	if config != "" {
		alloc.Devices.Config = []resourceapi.DeviceAllocationConfiguration{{Source: resourceapi.AllocationConfigSourceClass,
			DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: "sriov.dra.dev", Parameters: runtime.RawExtension{Raw: []byte(config)}}}}}
	}
	c.Status.Allocation = alloc
	c.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "pod", UID: "pod-uid"}}
	return c
}

func e810(vfs ...simhost.VF) simhost.Spec {
	return simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4, VFs: vfs}}}
}

const dpdkConfig = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/dpdk","driver":"vfio-pci","needVhostNet":true}`

func TestPrepareRebindAndUnprepare(t *testing.T) {
	ctx := context.Background()
	p := newTestPreparer(t, e810())
	claim := claimFor("uid-1", dpdkConfig, "pci-0000-3b-02-1")

	res, err := p.Prepare(ctx, []*resourceapi.ResourceClaim{claim})
	require.NoError(t, err)
	require.NoError(t, res["uid-1"].Err)
	require.Len(t, res["uid-1"].Devices, 1)
	assert.Equal(t, []string{"sriov.dra.dev/net=uid-1-pci-0000-3b-02-1"}, res["uid-1"].Devices[0].CDIDeviceIDs)
	drv, err := p.h.CurrentDriver("0000:3b:02.1")
	require.NoError(t, err)
	assert.Equal(t, "vfio-pci", drv, "bound for the claim")

	spec, err := cdi.ReadSpec(filepath.Join(p.cdiRoot, "sriov.dra.dev-net_uid-1.json"), 0)
	require.NoError(t, err, "a valid CDI spec")
	env := strings.Join(spec.ContainerEdits.Env, "\n")
	assert.Contains(t, env, "PCIDEVICE_INTEL_COM_DPDK=0000:3b:02.1")
	assert.Contains(t, env, `"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}`)
	assert.Contains(t, env, `"vfio":{"dev-mount":"/dev/vfio/3","mount":"/dev/vfio/vfio"}`)
	info, err := os.ReadFile(filepath.Join(p.devInfoDir, "intel.com-dpdk-0000:3b:02.1-device.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0","vhost-net":"/dev/vhost-net"}}`, string(info))

	cp, _, err := checkpoint.Load(p.checkpoint, p.h.BootID())
	require.NoError(t, err)
	entry := cp.Claims["uid-1"]
	assert.Equal(t, checkpoint.StatePrepared, entry.State)
	assert.Equal(t, "iavf", entry.Devices[0].OriginalDriver)

	again, err := p.Prepare(ctx, []*resourceapi.ResourceClaim{claim})
	require.NoError(t, err)
	assert.Equal(t, res, again, "prepare is idempotent")

	out, err := p.Unprepare(ctx, []kubeletplugin.NamespacedObject{{UID: "uid-1"}})
	require.NoError(t, err)
	require.NoError(t, out["uid-1"])
	drv, _ = p.h.CurrentDriver("0000:3b:02.1")
	assert.Equal(t, "iavf", drv, "original driver restored")
	inv, err := discovery.Discover(ctx, p.h)
	require.NoError(t, err)
	d, _ := inv.Get("pci-0000-3b-02-1")
	assert.Equal(t, "ens1f0v1", d.IfName, "netdev back")
	for _, f := range []string{filepath.Join(p.cdiRoot, "sriov.dra.dev-net_uid-1.json"), filepath.Join(p.devInfoDir, "intel.com-dpdk-0000:3b:02.1-device.json")} {
		_, err := os.Stat(f)
		assert.True(t, os.IsNotExist(err), "%s removed", f)
	}
	cp, _, _ = checkpoint.Load(p.checkpoint, p.h.BootID())
	assert.Empty(t, cp.Claims)
	out, err = p.Unprepare(ctx, []kubeletplugin.NamespacedObject{{UID: "uid-1"}})
	require.NoError(t, err)
	assert.NoError(t, out["uid-1"], "unprepare is idempotent")
}

func TestPrepareErrorsLeaveNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, config, device, want string
		routeVF                    string
	}{
		{name: "bad config", config: `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","needVhostNet":"yes"}`, device: "pci-0000-3b-02-0", want: "config[0] (from fromclass)"},
		{name: "unknown device", device: "pci-0000-3b-0f-0", want: "device pci-0000-3b-0f-0 is not on this node"},
		{name: "rebinding the default route NIC", config: dpdkConfig, device: "pci-0000-3b-02-2", routeVF: "ens1f0v2", want: "carries the default route; refusing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPreparer(t, e810())
			if tc.routeVF != "" {
				// The route moved onto the VF after the last rescan: the
				// inventory still lists the device, the route table does not agree.
				stale, err := discovery.Discover(ctx, p.h)
				require.NoError(t, err)
				p.inventory = func(context.Context, bool) (*discovery.Inventory, error) { return stale, nil }
				require.NoError(t, os.WriteFile(filepath.Join(p.root, "host/proc/net/route"),
					[]byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"+tc.routeVF+"\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n"), 0o644))
			}
			res, err := p.Prepare(ctx, []*resourceapi.ResourceClaim{claimFor("u", tc.config, tc.device)})
			require.NoError(t, err)
			require.ErrorContains(t, res["u"].Err, tc.want)
			entries, _ := os.ReadDir(p.cdiRoot)
			assert.Empty(t, entries)
			cp, _, _ := checkpoint.Load(p.checkpoint, p.h.BootID())
			assert.Empty(t, cp.Claims)
			drv, _ := p.h.CurrentDriver("0000:3b:02.2")
			assert.Equal(t, "iavf", drv)
		})
	}
}

func TestReconcileRollsBackHalfPrepared(t *testing.T) {
	ctx := context.Background()
	p := newTestPreparer(t, e810())
	// A crash after the rebind but before "prepared": checkpoint says preparing.
	_, err := p.h.BindDriver("0000:3b:02.3", "vfio-pci")
	require.NoError(t, err)
	spec := filepath.Join(p.cdiRoot, "sriov.dra.dev-net_u9.json")
	orphan := filepath.Join(p.cdiRoot, "sriov.dra.dev-net_orphan.json")
	other := filepath.Join(p.cdiRoot, "vendor.com-gpu_x.json")
	for _, f := range []string{spec, orphan, other} {
		require.NoError(t, os.MkdirAll(p.cdiRoot, 0o755))
		require.NoError(t, os.WriteFile(f, []byte("{}"), 0o644))
	}
	require.NoError(t, checkpoint.Save(p.checkpoint, checkpoint.Data{BootID: p.h.BootID(), Claims: map[string]checkpoint.Claim{
		"u9": {Namespace: "ns", Name: "c", State: checkpoint.StatePreparing, CDISpec: spec,
			Devices: []checkpoint.Device{{Name: "pci-0000-3b-02-3", PCIAddress: "0000:3b:02.3", OriginalDriver: "iavf", BoundDriver: "vfio-pci"}}},
	}}))
	require.NoError(t, p.reconcile(ctx))
	drv, _ := p.h.CurrentDriver("0000:3b:02.3")
	assert.Equal(t, "iavf", drv)
	for _, f := range []string{spec, orphan} {
		_, err := os.Stat(f)
		assert.True(t, os.IsNotExist(err), "%s removed", f)
	}
	_, err = os.Stat(other)
	assert.NoError(t, err, "another driver's spec is left alone")
	cp, _, _ := checkpoint.Load(p.checkpoint, p.h.BootID())
	assert.Empty(t, cp.Claims)
}

func TestStaleBootDropsClaims(t *testing.T) {
	p := newTestPreparer(t, e810())
	spec := filepath.Join(p.cdiRoot, "sriov.dra.dev-net_old.json")
	require.NoError(t, os.MkdirAll(p.cdiRoot, 0o755))
	require.NoError(t, os.WriteFile(spec, []byte("{}"), 0o644))
	require.NoError(t, checkpoint.Save(p.checkpoint, checkpoint.Data{BootID: "an-earlier-boot", Claims: map[string]checkpoint.Claim{
		"old": {Name: "c", State: checkpoint.StatePrepared, CDISpec: spec}}}))
	cp, err := p.load()
	require.NoError(t, err)
	assert.Empty(t, cp.Claims)
	_, err = os.Stat(spec)
	assert.True(t, os.IsNotExist(err))
}

func TestConfigClassThenClaimPerRequest(t *testing.T) {
	p := newTestPreparer(t, e810())
	c := claimFor("u", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/from_class","needVhostNet":true}`, "pci-0000-3b-02-0")
	opaque := func(src resourceapi.AllocationConfigSource, requests []string, params string) resourceapi.DeviceAllocationConfiguration {
		return resourceapi.DeviceAllocationConfiguration{Source: src, Requests: requests, DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: "sriov.dra.dev", Parameters: runtime.RawExtension{Raw: []byte(params)}}}}
	}
	// Listed claim-first to show that order in the list does not matter:
	// class configs apply first, then the claim's.
	c.Status.Allocation.Devices.Config = append([]resourceapi.DeviceAllocationConfiguration{
		opaque(resourceapi.AllocationConfigSourceClaim, []string{"vf"}, `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/from_claim"}`),
		opaque(resourceapi.AllocationConfigSourceClaim, []string{"other"}, `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci"}`),
		{Source: resourceapi.AllocationConfigSourceClaim, DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{
			Driver: "other.example.com", Parameters: runtime.RawExtension{Raw: []byte(`not json`)}}}},
	}, c.Status.Allocation.Devices.Config...)
	cfg, err := p.configFor(c, "vf")
	require.NoError(t, err)
	assert.Equal(t, "intel.com/from_claim", cfg.ResourceName, "the claim overrides the class")
	assert.True(t, *cfg.NeedVhostNet, "the class setting stays where the claim is silent")
	assert.Empty(t, cfg.Driver, "a config for another request does not apply")
	sub, err := p.configFor(c, "vf/fast")
	require.NoError(t, err)
	assert.Equal(t, "intel.com/from_claim", sub.ResourceName, "a subrequest takes its request's config")
}
