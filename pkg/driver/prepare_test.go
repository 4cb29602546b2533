package driver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

func TestPrepareRebindAndUnprepare(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	claim := claimFor("uid-1", dpdkConfig, "pci-0000-3b-02-1")

	res := n.prepareOne(t, claim)
	require.NoError(t, res.Err)
	require.Len(t, res.Devices, 1)
	assert.Equal(t, []string{"sriov.dra.dev/net=uid-1-pci-0000-3b-02-1"}, res.Devices[0].CDIDeviceIDs)
	assert.Equal(t, []string{"vf"}, res.Devices[0].Requests)
	assert.Equal(t, "vfio-pci", n.driverOf(t, "0000:3b:02.1"), "bound for the claim")
	// The metadata file's content (KEP-5304): the device as it is now.
	require.NotNil(t, res.Devices[0].Metadata)
	meta := res.Devices[0].Metadata.Attributes
	str := func(k string) string {
		if v, ok := meta[k]; ok && v.StringValue != nil {
			return *v.StringValue
		}
		return ""
	}
	assert.Equal(t, "0000:3b:02.1", str("pciAddress"))
	assert.Equal(t, "0000:3b:02.1", str("k8s.cni.cncf.io/deviceID"), "the classic device ID")
	assert.Equal(t, "intel.com/dpdk", str("resourceName"), "the resource name its variables carry")
	assert.Equal(t, "vfio-pci", str("driver"), "after the rebind")
	assert.NotContains(t, meta, "ifName", "a vfio-pci VF has no netdev")
	assert.Equal(t, "ens1f0", str("pfName"))

	specPath := filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_uid-1.json")
	spec, err := cdi.ReadSpec(specPath, 0)
	require.NoError(t, err, "a valid CDI spec")
	env := strings.Join(spec.ContainerEdits.Env, "\n")
	assert.Contains(t, env, "PCIDEVICE_INTEL_COM_DPDK=0000:3b:02.1")
	// The simulator numbers IOMMU groups bridge, PF, then VFs: VF 1 is group 3.
	assert.Contains(t, env, `"vfio":{"dev-mount":"/dev/vfio/3","mount":"/dev/vfio/vfio"}`)
	assert.Contains(t, env, `"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}`)
	infoPath := filepath.Join(n.cfg.DevInfoDir, "intel.com-dpdk-0000:3b:02.1-device.json")
	info, err := os.ReadFile(infoPath)
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.1","pf-pci-address":"0000:3b:00.0","vhost-net":"/dev/vhost-net"}}`, string(info))

	entry := n.checkpoint(t).Claims["uid-1"]
	assert.Equal(t, checkpoint.StatePrepared, entry.State)
	assert.Equal(t, "iavf", entry.Devices[0].OriginalDriver)
	assert.Equal(t, "vfio-pci", entry.Devices[0].BoundDriver)
	assert.Equal(t, specPath, entry.CDISpec)
	assert.Equal(t, []string{infoPath}, entry.InfoFiles)

	assert.Equal(t, res, n.prepareOne(t, claim), "prepare is idempotent")

	require.NoError(t, n.unprepareOne(t, claim))
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.1"), "original driver restored")
	assert.Equal(t, uint64(2), observations(t, n.metrics.PrepareDuration), "two prepares timed")
	assert.Equal(t, uint64(1), observations(t, n.metrics.UnprepareDuration))
	inv, err := discovery.Discover(context.Background(), n.h)
	require.NoError(t, err)
	d, _ := inv.Get("pci-0000-3b-02-1")
	assert.Equal(t, "ens1f0v1", d.IfName, "netdev back")
	assert.False(t, exists(specPath), "spec removed")
	assert.False(t, exists(infoPath), "device-info file removed")
	assert.Empty(t, n.checkpoint(t).Claims)
	assert.NoError(t, n.unprepareOne(t, claim), "unprepare is idempotent")
}

func TestPrepareErrorsLeaveNothing(t *testing.T) {
	tests := []struct {
		name, config, device, want string
		routeVF                    string
	}{
		{name: "bad config", config: `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","needVhostNet":"yes"}`, device: "pci-0000-3b-02-0", want: "class cls config[0]: decode NetConfig"},
		{name: "unknown device, even after a fresh discovery", device: "pci-0000-3b-0f-0", want: "device pci-0000-3b-0f-0: device is not on this node"},
		{name: "rebinding the default route NIC", config: dpdkConfig, device: "pci-0000-3b-02-2", routeVF: "ens1f0v2", want: "carries the default route (interface ens1f0v2); refusing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
			if tc.routeVF != "" {
				// The route moved onto the VF after the last rescan: the
				// snapshot still lists the device, the route table does not agree.
				require.NoError(t, os.WriteFile(filepath.Join(n.root, "host/proc/net/route"),
					[]byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"+tc.routeVF+"\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n"), 0o644))
			}
			res := n.prepareOne(t, claimFor("u", tc.config, tc.device))
			require.ErrorContains(t, res.Err, tc.want)
			entries, _ := os.ReadDir(n.cfg.CDIRoot)
			assert.Empty(t, entries)
			assert.Empty(t, n.checkpoint(t).Claims)
			assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.2"))
		})
	}
}

// TestPrepareNewDeviceSinceLastRescan: a VF the last rescan did not see is
// found by a fresh discovery.
func TestPrepareNewDeviceSinceLastRescan(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	spec := e810()
	spec.PFs[0].NumVFs = 6
	require.NoError(t, os.RemoveAll(filepath.Join(n.root, "host")))
	require.NoError(t, simhost.Write(filepath.Join(n.root, "host"), spec))
	require.NoError(t, n.prepareOne(t, claimFor("new", "", "pci-0000-3b-02-5")).Err)
}

// bindSpy checks, at every bind, that the checkpoint already records the
// claim as "preparing" with the driver to restore: intent is written ahead.
type bindSpy struct {
	*simhost.Host
	t     *testing.T
	path  string // the checkpoint's
	binds int
}

func (b *bindSpy) BindDriver(addr, driver string) (string, error) {
	b.binds++
	d, _, err := checkpoint.Load(b.path, b.BootID())
	require.NoError(b.t, err)
	recorded := false
	for _, e := range d.Claims {
		for _, dev := range e.Devices {
			if dev.PCIAddress == addr && e.State == checkpoint.StatePreparing && dev.OriginalDriver != "" {
				recorded = true
			}
			if dev.PCIAddress == addr && driver == dev.OriginalDriver {
				recorded = true // a restore
			}
		}
	}
	assert.True(b.t, recorded, "bind of %s to %q before the checkpoint recorded it", addr, driver)
	return b.Host.BindDriver(addr, driver)
}

// TestPrepareRollsBackAfterBind: a failure after the rebind (no
// /dev/vhost-net on the host) restores the driver and leaves no file and no
// entry; the bind itself happened only after the intent was saved.
func TestPrepareRollsBackAfterBind(t *testing.T) {
	var spy *bindSpy
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}, wrap: func(h Host) Host {
		spy = &bindSpy{Host: h.(*simhost.Host), t: t}
		return spy
	}})
	spy.path = n.state.Path()
	require.NoError(t, os.Remove(filepath.Join(n.root, "host/dev/vhost-net")))
	res := n.prepareOne(t, claimFor("u", dpdkConfig, "pci-0000-3b-02-1"))
	require.ErrorContains(t, res.Err, "vhost-net does not exist on the host")
	assert.Equal(t, 2, spy.binds, "bound, then restored")
	assert.Equal(t, 1.0, testutil.ToFloat64(n.metrics.PrepareErrors.WithLabelValues("claim")))
	assert.Equal(t, 1.0, testutil.ToFloat64(n.metrics.Rebinds))
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.1"))
	entries, _ := os.ReadDir(n.cfg.CDIRoot)
	assert.Empty(t, entries)
	infos, _ := os.ReadDir(n.cfg.DevInfoDir)
	assert.Empty(t, infos)
	assert.Empty(t, n.checkpoint(t).Claims)
}

// TestPreparePoolOptions: a device of a classic pool gets the pool's
// needVhostNet, isRdma mounts and additionalInfo.
func TestPreparePoolOptions(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:5e:00.0", Model: "cx6dx", IfName: "ens2f0np0", NumVFs: 2}}}
	n := newTestNode(t, nodeOpts{spec: spec, objects: []runtime.Object{testClass},
		config: `{"resourceList":[{"resourceName":"rdma_pool","resourcePrefix":"mellanox.com","selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},"additionalInfo":{"*":{"token":"3e49"}}}]}`})
	res := n.prepareOne(t, claimFor("p", "", "pci-0000-5e-00-2"))
	require.NoError(t, res.Err)
	spec2, err := cdi.ReadSpec(filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_p.json"), 0)
	require.NoError(t, err)
	env := strings.Join(spec2.ContainerEdits.Env, "\n")
	assert.Contains(t, env, `"extra":{"token":"3e49"}`)
	assert.Regexp(t, `"rdma":\{"issm":"/dev/infiniband/issm\d+","rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_\d+","umad":"/dev/infiniband/umad\d+","uverbs":"/dev/infiniband/uverbs\d+"\}`, env)
	assert.Contains(t, env, `"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}`)
	var nodes []string
	for _, dn := range spec2.Devices[0].ContainerEdits.DeviceNodes {
		nodes = append(nodes, dn.Path)
	}
	assert.Contains(t, nodes, "/dev/vhost-net")
	assert.Contains(t, nodes, "/dev/infiniband/rdma_cm")
}

// TestUnprepareVanishedDevice: the VFs were removed while a claim held one
// on vfio-pci: nothing is left to restore, and unprepare completes.
func TestUnprepareVanishedDevice(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	c := claimFor("u", dpdkConfig, "pci-0000-3b-02-1")
	require.NoError(t, n.prepareOne(t, c).Err)
	spec := e810()
	spec.PFs[0].NumVFs = 0
	require.NoError(t, os.RemoveAll(filepath.Join(n.root, "host")))
	require.NoError(t, simhost.Write(filepath.Join(n.root, "host"), spec))
	inv, err := n.pub.Rediscover(context.Background())
	require.NoError(t, err)
	for range 2 { // two rescans, one warning
		_, err := n.state.Check(context.Background(), inv)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		evs, _ := n.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		return len(evs.Items) == 1 && evs.Items[0].Reason == "PreparedDeviceGone" &&
			strings.Contains(evs.Items[0].Message, "device pci-0000-3b-02-1, prepared for claim ns/claim-u, is gone from the host")
	}, 5*time.Second, 10*time.Millisecond, "one warning event, however many rescans see it")
	require.NoError(t, n.unprepareOne(t, c))
	assert.Empty(t, n.checkpoint(t).Claims)
	assert.False(t, exists(filepath.Join(n.cfg.CDIRoot, "sriov.dra.dev-net_u.json")))
	assert.False(t, exists(filepath.Join(n.cfg.DevInfoDir, "intel.com-dpdk-0000:3b:02.1-device.json")))
}

func TestPrepareReadsClassAndPodOnce(t *testing.T) {
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	claims := []*resourceapi.ResourceClaim{claimFor("a", "", "pci-0000-3b-02-0", "pci-0000-3b-02-1"), claimFor("b", "", "pci-0000-3b-02-2")}
	n.client.ClearActions()
	res, err := n.claims.Prepare(context.Background(), claims)
	require.NoError(t, err)
	require.NoError(t, res["a"].Err)
	gets := map[string]int{}
	for _, a := range n.client.Actions() {
		if a.GetVerb() == "get" {
			gets[a.GetResource().Resource]++
		}
	}
	assert.Equal(t, map[string]int{"deviceclasses": 1, "pods": 1}, gets, "one read per class and per pod, not per device")
}

// observations is how many values a histogram has seen.
func observations(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount()
}
