package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/claims"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

const testDriver = "sriov.dra.dev"

// testNode is the DRA side of the daemon, assembled by newDRA as Run does,
// over a simulated host, with a fake API server holding the given objects.
// The runtime's NRI is replaced by a switch the test sets.
type testNode struct {
	*Driver
	root    string
	h       *simhost.Host
	client  *fake.Clientset
	runtime *runtimeSwitch
}

type nodeOpts struct {
	spec    simhost.Spec
	config  string // classic config.json content
	objects []runtime.Object
	// root shares another node's directories (two instances on one node,
	// or a restarted one).
	root string
	// netNS is the host's network namespace (real netdevs for the NRI path).
	netNS string
	// podUID runs the node as a DaemonSet pod (--pod-uid): another
	// instance may run beside it.
	podUID string
	// unscanned leaves the host undiscovered, as at start-up.
	unscanned bool
	// legacy are the classic resources the shim serves beside DRA.
	legacy []string
	// wrap, when set, stands between the daemon and the simulated host.
	wrap func(Host) Host
}

// runtimeSwitch stands in for the runtime's NRI connection: netdevs are
// moved into pods (through the sandbox calls the test makes) while on.
type runtimeSwitch struct {
	claims.PodNetwork
	on, connected bool
}

func (r *runtimeSwitch) Enabled() bool   { return r.on }
func (r *runtimeSwitch) Connected() bool { return r.connected }

// setRuntime turns the pod network on, with the runtime connected or not.
func (n *testNode) setRuntime(connected bool) { n.runtime.on, n.runtime.connected = true, connected }

func newTestNode(t testing.TB, o nodeOpts) *testNode {
	t.Helper()
	root := o.root
	if root == "" {
		root = t.TempDir()
		require.NoError(t, simhost.Write(filepath.Join(root, "host"), o.spec))
	}
	h, err := simhost.OpenWith(filepath.Join(root, "host"), host.Options{NetNS: o.netNS})
	require.NoError(t, err)
	var nodeHost Host = h
	if o.wrap != nil {
		nodeHost = o.wrap(h)
	}
	cfg := Config{DriverName: testDriver, NodeName: "node", Host: nodeHost, DRA: true, LegacyResources: o.legacy, CDIRoot: filepath.Join(root, "cdi"), ResourcePrefix: "intel.com",
		PluginDir: filepath.Join(root, "plugin"), DevInfoDir: filepath.Join(root, "devinfo"), AllowedDrivers: []string{"vfio-pci"}, PodUID: o.podUID}
	if o.config != "" {
		cfg.ConfigPath = filepath.Join(root, "config.json")
		require.NoError(t, os.WriteFile(cfg.ConfigPath, []byte(o.config), 0o644))
	}
	client := fake.NewClientset(o.objects...)
	cfg.KubeClient = client
	require.NoError(t, cfg.complete())
	d := newDRA(cfg)
	rt := &runtimeSwitch{PodNetwork: d.podnet}
	cc := d.claimsConfig()
	cc.PodNet = rt
	d.claims = claims.New(cc)
	if !o.unscanned {
		_, err = d.pub.Sync(context.Background())
		require.NoError(t, err)
	}
	return &testNode{Driver: d, root: root, h: h, client: client, runtime: rt}
}

func (n *testNode) checkpoint(t testing.TB) checkpoint.Data {
	t.Helper()
	d, _, err := checkpoint.Load(n.state.Path(), n.h.BootID())
	require.NoError(t, err)
	return d
}

func (n *testNode) driverOf(t testing.TB, addr string) string {
	t.Helper()
	drv, err := n.h.CurrentDriver(addr)
	require.NoError(t, err)
	return drv
}

func (n *testNode) prepareOne(t testing.TB, c *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
	t.Helper()
	res, err := n.claims.Prepare(context.Background(), []*resourceapi.ResourceClaim{c})
	require.NoError(t, err)
	if r := res[c.UID]; r.Err == nil && len(r.Devices) > 0 && r.Devices[0].Metadata != nil {
		helperWroteMetadata(t, n.cfg.PluginDir, c, r) // as the kubelet plugin helper does
	}
	return res[c.UID]
}

func (n *testNode) unprepareOne(t testing.TB, c *resourceapi.ResourceClaim) error {
	t.Helper()
	res, err := n.claims.Unprepare(context.Background(), []kubeletplugin.NamespacedObject{{UID: c.UID, NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}}})
	require.NoError(t, err)
	return res[c.UID]
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// claimFor is an allocated claim of class "cls" for devices, reserved for a
// pod, with an opaque config from the class when config is set.
func claimFor(uid string, config string, devices ...string) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "claim-" + uid, Namespace: "ns", UID: types.UID(uid)}}
	c.Spec.Devices.Requests = []resourceapi.DeviceRequest{{Name: "vf", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "cls"}}}
	alloc := &resourceapi.AllocationResult{}
	for _, d := range devices {
		alloc.Devices.Results = append(alloc.Devices.Results, resourceapi.DeviceRequestAllocationResult{Request: "vf", Driver: testDriver, Pool: "node", Device: d})
	}
	if config != "" {
		alloc.Devices.Config = []resourceapi.DeviceAllocationConfiguration{{Source: resourceapi.AllocationConfigSourceClass, Requests: []string{"vf"},
			DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: testDriver, Parameters: runtime.RawExtension{Raw: []byte(config)}}}}}
	}
	c.Status.Allocation = alloc
	c.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "pod", UID: "pod-uid"}}
	return c
}

var testClass = &resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "cls"}}

func e810(vfs ...simhost.VF) simhost.Spec {
	return simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4, VFs: vfs}}}
}

const dpdkConfig = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/dpdk","driver":"vfio-pci","needVhostNet":true}`
