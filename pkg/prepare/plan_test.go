package prepare_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

const driverName = "sriov.dra.dev"

// The node of these tests: what its discovery would have found.
var (
	netVF0 = discovery.Device{Name: "pci-0000-3b-02-0", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:3b:02.0", Vendor: "8086", DeviceID: "1889", Driver: "iavf", PFName: "ens1f0", RootDevice: "0000:3b:00.0",
		VFIndex: 0, SFNum: -1, IfName: "ens1f0v0", HardwareAddress: "02:00:00:00:00:10", IOMMUGroup: 10, NUMANode: 0}
	netVF1 = discovery.Device{Name: "pci-0000-3b-02-1", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:3b:02.1", Vendor: "8086", DeviceID: "1889", Driver: "iavf", PFName: "ens1f0", RootDevice: "0000:3b:00.0",
		VFIndex: 1, SFNum: -1, IfName: "ens1f0v1", HardwareAddress: "02:00:00:00:00:11", IOMMUGroup: 11, NUMANode: 0}
	vfioVF6 = discovery.Device{Name: "pci-0000-3b-02-6", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:3b:02.6", Vendor: "8086", DeviceID: "1889", Driver: "vfio-pci", PFName: "ens1f0", RootDevice: "0000:3b:00.0",
		VFIndex: 6, SFNum: -1, IOMMUGroup: 16, NUMANode: 0}
	uioVF = discovery.Device{Name: "pci-0000-86-02-1", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:86:02.1", Driver: "igb_uio", PFName: "ens5f0", RootDevice: "0000:86:00.0", VFIndex: 1, SFNum: -1,
		UIODevice: "uio0", IOMMUGroup: 40, NUMANode: 1}
	vdpaVF = discovery.Device{Name: "pci-0000-65-00-2", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:65:00.2", Driver: "mlx5_core", PFName: "ens3f0np0", RootDevice: "0000:65:00.0", VFIndex: 0, SFNum: -1,
		VDPAType: "vhost", VDPADevice: "vhost-vdpa-0", IOMMUGroup: 50, NUMANode: 0}
	rdmaVF = discovery.Device{Name: "pci-0000-5e-00-2", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:5e:00.2", Driver: "mlx5_core", PFName: "ens2f0np0", RootDevice: "0000:5e:00.0", VFIndex: 0, SFNum: -1,
		IfName: "ens2f0v0", HardwareAddress: "02:00:00:00:00:20", RDMA: true, RDMADevices: []string{"mlx5_2"},
		RDMACharDevices: []string{"infiniband/uverbs2", "infiniband/umad2", "infiniband/issm2"}, IOMMUGroup: 60, NUMANode: 1}
	sf2 = discovery.Device{Name: "aux-mlx5-core-sf-2", FunctionType: discovery.FunctionSF, DeviceType: discovery.DeviceTypeAuxNet,
		PCIAddress: "0000:03:00.0", AuxName: "mlx5_core.sf.2", AuxType: "sf", SFNum: 1, Driver: "mlx5_core", PFName: "p0",
		RootDevice: "0000:03:00.0", VFIndex: -1, IfName: "enp3s0f0s1", HardwareAddress: "02:00:00:00:00:30", IOMMUGroup: -1, NUMANode: 0}
	uplinkVF = discovery.Device{Name: "pci-0000-3b-02-2", FunctionType: discovery.FunctionVF, DeviceType: discovery.DeviceTypeNet,
		PCIAddress: "0000:3b:02.2", Driver: "iavf", PFName: "ens1f0", RootDevice: "0000:3b:00.0", VFIndex: 2, SFNum: -1,
		IfName: "ens1f0v2", IOMMUGroup: 12, NUMANode: 0}

	nodeDevices = []discovery.Device{netVF0, netVF1, vfioVF6, uioVF, vdpaVF, rdmaVF, sf2, uplinkVF}
	nodeDev     = devRoot(nil, "vfio/vfio", "vfio/16", "uio0", "vhost-vdpa-0", "infiniband/uverbs2", "infiniband/umad2",
		"infiniband/issm2", "infiniband/rdma_cm", "vhost-net", "net/tun")
)

func opaque(source resourceapi.AllocationConfigSource, requests []string, params string) resourceapi.DeviceAllocationConfiguration {
	return resourceapi.DeviceAllocationConfiguration{Source: source, Requests: requests, DeviceConfiguration: resourceapi.DeviceConfiguration{
		Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: driverName, Parameters: runtime.RawExtension{Raw: []byte(params)}}}}
}

func netConfig(fields string) string {
	return `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig"` + fields + `}`
}

// claim is an allocated claim reserved for pod "pod-a": request "vf" of
// class, one result per device.
func claim(name, class string, devices ...string) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
	c.Spec.Devices.Requests = []resourceapi.DeviceRequest{{Name: "vf", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: class}}}
	c.Status.Allocation = &resourceapi.AllocationResult{}
	for _, d := range devices {
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results,
			resourceapi.DeviceRequestAllocationResult{Request: "vf", Driver: driverName, Pool: "node", Device: d})
	}
	c.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "pod-a", UID: "pod-a-uid"}}
	return c
}

func withConfig(c *resourceapi.ResourceClaim, cfgs ...resourceapi.DeviceAllocationConfiguration) *resourceapi.ResourceClaim {
	c.Status.Allocation.Devices.Config = append(c.Status.Allocation.Devices.Config, cfgs...)
	for _, cfg := range cfgs {
		if cfg.Source == resourceapi.AllocationConfigSourceClaim {
			c.Spec.Devices.Config = append(c.Spec.Devices.Config, resourceapi.DeviceClaimConfiguration{Requests: cfg.Requests, DeviceConfiguration: cfg.DeviceConfiguration})
		}
	}
	return c
}

// pod uses claims: one slice of claim names per container.
func pod(containers ...[]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-a", Namespace: "ns", UID: "pod-a-uid"}}
	seen := map[string]bool{}
	for i, claims := range containers {
		ctr := corev1.Container{Name: "c" + string(rune('0'+i))}
		for _, c := range claims {
			ctr.Resources.Claims = append(ctr.Resources.Claims, corev1.ResourceClaim{Name: "ref-" + c})
			if !seen[c] {
				seen[c] = true
				p.Spec.ResourceClaims = append(p.Spec.ResourceClaims, corev1.PodResourceClaim{Name: "ref-" + c, ResourceClaimName: ptr.To(c)})
			}
		}
		p.Spec.Containers = append(p.Spec.Containers, ctr)
	}
	return p
}

// vfioOnly is the daemon's default --allowed-drivers.
var vfioOnly = []string{"vfio-pci"}

var classes = map[string]*resourceapi.DeviceClass{
	"vfs": {ObjectMeta: metav1.ObjectMeta{Name: "vfs"}},
	"ext": {ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: resourceapi.DeviceClassSpec{ExtendedResourceName: ptr.To("intel.com/sriov_ext")}},
}

func plan(t *testing.T, in prepare.Input) []prepare.Rendered {
	t.Helper()
	in.DriverName, in.PoolName = driverName, "node"
	if in.Inventory == nil {
		in.Inventory = discovery.NewInventory(nodeDevices)
	}
	if in.Classes == nil {
		in.Classes = classes
	}
	return prepare.Render(driverName, prepare.Resolve(in), in.Inventory, nodeDev)
}

// containerPaths lists the container paths of a rendered claim's nodes, per device.
func containerPaths(r prepare.Rendered) [][]string {
	var out [][]string
	for _, d := range r.Devices {
		var paths []string
		for _, n := range d.Edits.Nodes {
			paths = append(paths, n.Path)
		}
		out = append(out, paths)
	}
	return out
}

func TestPlanDeviceKinds(t *testing.T) {
	tests := []struct {
		name   string
		claim  *resourceapi.ResourceClaim
		env    []string
		nodes  [][]string
		status []string // interface names
		infos  map[string]string
	}{
		{
			name:  "vfio-pci VF with vhost-net",
			claim: withConfig(claim("dpdk", "vfs", vfioVF6.Name), opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"resourceName":"intel.com/intel_sriov_dpdk","needVhostNet":true`))),
			env: []string{
				"PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK=0000:3b:02.6",
				`PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK_INFO={"0000:3b:02.6":{"generic":{"deviceID":"0000:3b:02.6"},"vfio":{"dev-mount":"/dev/vfio/16","mount":"/dev/vfio/vfio"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}}}`,
			},
			nodes: [][]string{{"/dev/vfio/vfio", "/dev/vfio/16", "/dev/vhost-net", "/dev/net/tun"}},
			infos: map[string]string{"intel.com-intel_sriov_dpdk-0000:3b:02.6-device.json": `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.6","pf-pci-address":"0000:3b:00.0","vhost-net":"/dev/vhost-net"}}`},
		},
		{
			name:  "uio VF",
			claim: claim("uio", "vfs", uioVF.Name),
			env: []string{
				"PCIDEVICE_VFS=0000:86:02.1",
				`PCIDEVICE_VFS_INFO={"0000:86:02.1":{"generic":{"deviceID":"0000:86:02.1"},"uio":{"mount":"/dev/uio0"}}}`,
			},
			nodes: [][]string{{"/dev/uio0"}},
			infos: map[string]string{"vfs-0000:86:02.1-device.json": `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:86:02.1","pf-pci-address":"0000:86:00.0"}}`},
		},
		{
			name:  "vDPA vhost VF",
			claim: claim("vdpa", "vfs", vdpaVF.Name),
			env: []string{
				"PCIDEVICE_VFS=0000:65:00.2",
				`PCIDEVICE_VFS_INFO={"0000:65:00.2":{"generic":{"deviceID":"0000:65:00.2"},"vdpa":{"mount":"/dev/vhost-vdpa-0"}}}`,
			},
			nodes: [][]string{{"/dev/vhost-vdpa-0"}},
			infos: map[string]string{"vfs-0000:65:00.2-device.json": `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:65:00.2","pf-pci-address":"0000:65:00.0"}}`},
		},
		{
			name:  "RDMA VF with its char devices, extended resource name",
			claim: withConfig(claim("rdma", "ext", rdmaVF.Name), opaque(resourceapi.AllocationConfigSourceClaim, nil, netConfig(`,"rdma":true`))),
			env: []string{
				"PCIDEVICE_INTEL_COM_SRIOV_EXT=0000:5e:00.2",
				`PCIDEVICE_INTEL_COM_SRIOV_EXT_INFO={"0000:5e:00.2":{"generic":{"deviceID":"0000:5e:00.2"},"rdma":{"issm":"/dev/infiniband/issm2","rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_2","umad":"/dev/infiniband/umad2","uverbs":"/dev/infiniband/uverbs2"}}}`,
			},
			nodes:  [][]string{{"/dev/infiniband/uverbs2", "/dev/infiniband/umad2", "/dev/infiniband/issm2", "/dev/infiniband/rdma_cm"}},
			status: []string{"ens2f0v0"},
			infos:  map[string]string{"intel.com-sriov_ext-0000:5e:00.2-device.json": `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:5e:00.2","pf-pci-address":"0000:5e:00.0","rdma-device":"mlx5_2"}}`},
		},
		{
			name: "additionalInfo, class then claim",
			claim: withConfig(claim("extra", "vfs", netVF0.Name),
				opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"additionalInfo":{"token":"class","keep":"1"}`)),
				opaque(resourceapi.AllocationConfigSourceClaim, []string{"vf"}, netConfig(`,"additionalInfo":{"token":"claim"}`))),
			env: []string{
				"PCIDEVICE_VFS=0000:3b:02.0",
				`PCIDEVICE_VFS_INFO={"0000:3b:02.0":{"extra":{"keep":"1","token":"claim"},"generic":{"deviceID":"0000:3b:02.0"}}}`,
			},
			nodes:  [][]string{nil},
			status: []string{"ens1f0v0"},
			infos:  map[string]string{"vfs-0000:3b:02.0-device.json": `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.0","pf-pci-address":"0000:3b:00.0"}}`},
		},
		{
			name:   "subfunction: no device-info file",
			claim:  claim("sf", "vfs", sf2.Name),
			env:    []string{"PCIDEVICE_VFS=mlx5_core.sf.2", `PCIDEVICE_VFS_INFO={"mlx5_core.sf.2":{"generic":{"deviceID":"mlx5_core.sf.2"}}}`},
			nodes:  [][]string{nil},
			status: []string{"enp3s0f0s1"},
			infos:  map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{tc.claim}})
			require.Len(t, out, 1)
			r := out[0]
			require.NoError(t, r.Err)
			assert.Equal(t, tc.env, r.Env)
			assert.Equal(t, tc.env, r.Spec.ContainerEdits.Env, "the spec carries the environment")
			assert.Equal(t, tc.nodes, containerPaths(r))
			assert.Equal(t, "sriov.dra.dev/net", r.Spec.Kind)
			assert.Equal(t, "sriov.dra.dev-net_"+string(tc.claim.UID)+".json", r.SpecFile)
			require.Len(t, r.Spec.Devices, 1)
			assert.Equal(t, string(tc.claim.UID)+"-"+tc.claim.Status.Allocation.Devices.Results[0].Device, r.Spec.Devices[0].Name)
			infos := map[string]string{}
			for _, f := range r.InfoFiles {
				infos[f.Name] = string(f.Data)
			}
			require.Len(t, infos, len(tc.infos))
			for name, want := range tc.infos {
				assert.JSONEq(t, want, infos[name], name)
			}
			var ifNames []string
			for _, s := range r.Status {
				assert.Equal(t, driverName, s.Driver)
				assert.Equal(t, "node", s.Pool)
				ifNames = append(ifNames, s.NetworkData.InterfaceName)
			}
			assert.Equal(t, tc.status, ifNames)
		})
	}
}

func TestPlanContainers(t *testing.T) {
	a, b := claim("a", "vfs", netVF0.Name), claim("b", "vfs", netVF1.Name)
	sameValue := []string{"PCIDEVICE_VFS=0000:3b:02.0,0000:3b:02.1",
		`PCIDEVICE_VFS_INFO={"0000:3b:02.0":{"generic":{"deviceID":"0000:3b:02.0"}},"0000:3b:02.1":{"generic":{"deviceID":"0000:3b:02.1"}}}`}
	tests := []struct {
		name       string
		pods       map[types.UID]*corev1.Pod
		wantA, wnB []string
	}{
		{
			name:  "two claims in one container share one variable",
			pods:  map[types.UID]*corev1.Pod{"pod-a-uid": pod([]string{"a", "b"})},
			wantA: sameValue, wnB: sameValue,
		},
		{
			name:  "two containers keep their own devices",
			pods:  map[types.UID]*corev1.Pod{"pod-a-uid": pod([]string{"a"}, []string{"b"})},
			wantA: []string{"PCIDEVICE_VFS=0000:3b:02.0", `PCIDEVICE_VFS_INFO={"0000:3b:02.0":{"generic":{"deviceID":"0000:3b:02.0"}}}`},
			wnB:   []string{"PCIDEVICE_VFS=0000:3b:02.1", `PCIDEVICE_VFS_INFO={"0000:3b:02.1":{"generic":{"deviceID":"0000:3b:02.1"}}}`},
		},
		{
			name:  "pod unknown: the pod's claims share",
			wantA: sameValue, wnB: sameValue,
		},
		{
			name:  "a claim shared by two containers lists both containers' devices",
			pods:  map[types.UID]*corev1.Pod{"pod-a-uid": pod([]string{"a"}, []string{"a", "b"})},
			wantA: sameValue, wnB: sameValue,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{a, b}, Pods: tc.pods})
			require.NoError(t, out[0].Err)
			require.NoError(t, out[1].Err)
			assert.Equal(t, tc.wantA, out[0].Env)
			assert.Equal(t, tc.wnB, out[1].Env)
		})
	}
}

func TestPlanTemplateAndExtendedResourceClaims(t *testing.T) {
	a, b := claim("pod-a-net-xyz", "vfs", netVF0.Name), claim("pod-a-extended-resources-abc", "ext", netVF1.Name)
	p := pod()
	p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "net", ResourceClaimTemplateName: ptr.To("tmpl")}}
	p.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "net"}}}}}
	p.Status.ResourceClaimStatuses = []corev1.PodResourceClaimStatus{{Name: "net", ResourceClaimName: ptr.To("pod-a-net-xyz")}}
	p.Status.ExtendedResourceClaimStatus = &corev1.PodExtendedResourceClaimStatus{ResourceClaimName: "pod-a-extended-resources-abc"}
	out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{a, b}, Pods: map[types.UID]*corev1.Pod{"pod-a-uid": p}})
	assert.Equal(t, []string{"PCIDEVICE_VFS=0000:3b:02.0", `PCIDEVICE_VFS_INFO={"0000:3b:02.0":{"generic":{"deviceID":"0000:3b:02.0"}}}`}, out[0].Env,
		"the template's claim is found through the pod's status and kept apart from the extended-resource claim")
	assert.Equal(t, []string{"PCIDEVICE_INTEL_COM_SRIOV_EXT=0000:3b:02.1", `PCIDEVICE_INTEL_COM_SRIOV_EXT_INFO={"0000:3b:02.1":{"generic":{"deviceID":"0000:3b:02.1"}}}`}, out[1].Env)
}

func TestPlanResourceNames(t *testing.T) {
	first := claim("first", "vfs", netVF0.Name)
	first.Spec.Devices.Requests = []resourceapi.DeviceRequest{{Name: "vf", FirstAvailable: []resourceapi.DeviceSubRequest{
		{Name: "fast", DeviceClassName: "ext"}, {Name: "slow", DeviceClassName: "vfs"}}}}
	first.Status.Allocation.Devices.Results[0].Request = "vf/slow"
	tests := []struct {
		name, want string
		claim      *resourceapi.ResourceClaim
	}{
		{"class name", "PCIDEVICE_VFS", claim("c1", "vfs", netVF0.Name)},
		{"class extendedResourceName (KEP-5004)", "PCIDEVICE_INTEL_COM_SRIOV_EXT", claim("c2", "ext", netVF0.Name)},
		{"config resourceName wins", "PCIDEVICE_ACME_IO_NET_A", withConfig(claim("c3", "ext", netVF0.Name),
			opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"resourceName":"acme.io/net-a"`)))},
		{"firstAvailable subrequest takes its own class", "PCIDEVICE_VFS", first},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{tc.claim}})
			require.NoError(t, out[0].Err)
			assert.True(t, strings.HasPrefix(out[0].Env[0], tc.want+"="), out[0].Env[0])
		})
	}
}

func TestPlanClassicPoolOptions(t *testing.T) {
	cfg, err := classic.Parse([]byte(`{"resourceList":[{"resourceName":"pool_a","selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},
		"additionalInfo":{"*":{"token":"all"},"0000:5e:00.2":{"token":"mine","extra":"x"}}}]}`), "")
	require.NoError(t, err)
	inv := discovery.NewInventory(nodeDevices)
	pools, err := selector.Select(cfg, inv)
	require.NoError(t, err)
	out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{claim("p", "vfs", rdmaVF.Name)}, Inventory: inv, Pools: pools})
	require.NoError(t, out[0].Err)
	assert.Equal(t, `PCIDEVICE_VFS_INFO={"0000:5e:00.2":{"extra":{"extra":"x","token":"mine"},"generic":{"deviceID":"0000:5e:00.2"},`+
		`"rdma":{"issm":"/dev/infiniband/issm2","rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_2","umad":"/dev/infiniband/umad2","uverbs":"/dev/infiniband/uverbs2"},`+
		`"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}}}`, out[0].Env[1],
		"the pool's isRdma, needVhostNet and additionalInfo reach the container")
}

func TestPlanRebind(t *testing.T) {
	c := withConfig(claim("bind", "vfs", netVF1.Name), opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"driver":"vfio-pci"`)))
	in := prepare.Input{DriverName: driverName, PoolName: "node", Claims: []*resourceapi.ResourceClaim{c}, Inventory: discovery.NewInventory(nodeDevices), Classes: classes,
		AllowedDrivers: vfioOnly}
	plans := prepare.Resolve(in)
	require.NoError(t, plans[0].Err)
	driver, ok := plans[0].Devices[0].Rebind()
	assert.True(t, ok)
	assert.Equal(t, "vfio-pci", driver)

	// After the bind the device has no netdev and sits in vfio group 11.
	bound := netVF1
	bound.Driver, bound.IfName, bound.HardwareAddress = "vfio-pci", "", ""
	after := discovery.NewInventory([]discovery.Device{netVF0, bound})
	r := prepare.Render(driverName, plans, after, devRoot(nil, "vfio/vfio", "vfio/11"))[0]
	require.NoError(t, r.Err)
	assert.Equal(t, [][]string{{"/dev/vfio/vfio", "/dev/vfio/11"}}, containerPaths(r))
	assert.Empty(t, r.Status, "a device on vfio-pci has no netdev to report")

	// Render follows the inventory it is given, not the plan's snapshot:
	// on the pre-bind state the device would get no vfio nodes at all.
	stale := prepare.Render(driverName, plans, in.Inventory, nodeDev)[0]
	require.NoError(t, stale.Err)
	assert.Equal(t, [][]string{nil}, containerPaths(stale))
}

func TestPlanErrors(t *testing.T) {
	otherPool := claim("other", "vfs", netVF0.Name)
	otherPool.Status.Allocation.Devices.Results[0].Pool = "node-b"
	unallocated := claim("unalloc", "vfs")
	unallocated.Status.Allocation = nil
	admin := withConfig(claim("admin", "vfs", netVF1.Name), opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"driver":"vfio-pci"`)))
	admin.Status.Allocation.Devices.Results[0].AdminAccess = ptr.To(true)
	tests := []struct {
		name   string
		claim  *resourceapi.ResourceClaim
		want   string
		uplink bool
	}{
		{"bad claim config names it", withConfig(claim("bad", "vfs", netVF0.Name),
			opaque(resourceapi.AllocationConfigSourceClaim, []string{"vf"}, netConfig(`,"needVhostNet":"yes"`))), "claim ns/bad: claim config[0]: decode NetConfig", false},
		{"bad class config names the class", withConfig(claim("badclass", "vfs", netVF0.Name),
			opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(``)),
			opaque(resourceapi.AllocationConfigSourceClass, []string{"vf"}, netConfig(`,"rdma":1`))), "class vfs config[1]: decode NetConfig", false},
		{"unknown device", claim("gone", "vfs", "pci-0000-3b-0f-0"), "device pci-0000-3b-0f-0: device is not on this node", false},
		{"another node's pool", otherPool, `device pci-0000-3b-02-0 is in pool "node-b", not this node's "node"`, false},
		{"not allocated", unallocated, "claim ns/unalloc: not allocated", false},
		{"missing class", claim("noclass", "deleted", netVF0.Name), "device class deleted not found", false},
		{"subfunction rebind", withConfig(claim("sfbind", "vfs", sf2.Name),
			opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"driver":"vfio-pci"`))), "is a subfunction", false},
		{"uplink rebind", withConfig(claim("up", "vfs", uplinkVF.Name),
			opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"driver":"vfio-pci"`))), "pci-0000-3b-02-2 carries the default route (interface ens1f0v2); refusing to bind it to vfio-pci", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := prepare.Input{DriverName: driverName, PoolName: "node", Claims: []*resourceapi.ResourceClaim{tc.claim, claim("fine", "vfs", netVF0.Name)},
				Inventory: discovery.NewInventory(nodeDevices), Classes: classes, AllowedDrivers: vfioOnly}
			if tc.uplink {
				in.Uplinks = discovery.Uplinks{Functions: map[string]string{uplinkVF.PCIAddress: "carries the default route (interface ens1f0v2)"}}
			}
			out := prepare.Render(driverName, prepare.Resolve(in), in.Inventory, nodeDev)
			require.Error(t, out[0].Err)
			assert.Contains(t, out[0].Err.Error(), tc.want)
			assert.NoError(t, out[1].Err, "another claim in the same call is unaffected")
		})
	}
	t.Run("an uplink that cannot be traced keeps every PF from being rebound, not VFs", func(t *testing.T) {
		pf := discovery.Device{Name: "pci-0000-5b-00-0", FunctionType: discovery.FunctionPF, DeviceType: discovery.DeviceTypeNet,
			PCIAddress: "0000:5b:00.0", Driver: "ice", PFName: "ens2f0", RootDevice: "0000:5b:00.0", VFIndex: -1, SFNum: -1, IfName: "ens2f0", IOMMUGroup: 70}
		bind := opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"driver":"vfio-pci"`))
		in := prepare.Input{DriverName: driverName, PoolName: "node", Classes: classes,
			Claims:    []*resourceapi.ResourceClaim{withConfig(claim("pf", "vfs", pf.Name), bind), withConfig(claim("vf", "vfs", netVF1.Name), bind)},
			Inventory: discovery.NewInventory(append([]discovery.Device{pf}, nodeDevices...)),
			Uplinks:   discovery.Uplinks{Unresolved: []string{"wg0"}}, AllowedDrivers: vfioOnly}
		plans := prepare.Resolve(in)
		require.ErrorContains(t, plans[0].Err, "default-route interface wg0 cannot be traced to a device, so any PF may be the uplink")
		assert.NoError(t, plans[1].Err)
	})
	t.Run("admin access never rebinds", func(t *testing.T) {
		in := prepare.Input{DriverName: driverName, PoolName: "node", Claims: []*resourceapi.ResourceClaim{admin}, Inventory: discovery.NewInventory(nodeDevices), Classes: classes}
		plans := prepare.Resolve(in)
		require.NoError(t, plans[0].Err)
		_, rebind := plans[0].Devices[0].Rebind()
		assert.False(t, rebind)
	})
	t.Run("a missing node fails the claim and names the node", func(t *testing.T) {
		in := prepare.Input{DriverName: driverName, PoolName: "node", Claims: []*resourceapi.ResourceClaim{withConfig(claim("vh", "vfs", netVF0.Name),
			opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"needVhostNet":true`)))}, Inventory: discovery.NewInventory(nodeDevices), Classes: classes}
		out := prepare.Render(driverName, prepare.Resolve(in), in.Inventory, devRoot(nil, "net/tun"))
		require.ErrorContains(t, out[0].Err, "/host/dev/vhost-net does not exist on the host")
	})
}

func TestPlanInfoJSONIsValid(t *testing.T) {
	out := plan(t, prepare.Input{Claims: []*resourceapi.ResourceClaim{claim("j", "vfs", vfioVF6.Name, netVF0.Name)}})
	require.NoError(t, out[0].Err)
	info := strings.TrimPrefix(out[0].Env[1], "PCIDEVICE_VFS_INFO=")
	var parsed map[string]map[string]map[string]string
	require.NoError(t, json.Unmarshal([]byte(info), &parsed))
	assert.Len(t, parsed, 2)
	assert.Equal(t, "PCIDEVICE_VFS=0000:3b:02.6,0000:3b:02.0", out[0].Env[0], "devices in allocation order")
}

// TestPoolPlanMatchesClaimPlan: a device gets the same environment, nodes
// and device-info file from the device-plugin path as from a claim whose
// config names the same classic pool.
func TestPoolPlanMatchesClaimPlan(t *testing.T) {
	cfg, err := classic.Parse([]byte(`{"resourceList":[{"resourceName":"pool_a","resourcePrefix":"mellanox.com","selectors":{"pfNames":["ens2f0np0"],"isRdma":true,"needVhostNet":true},
		"additionalInfo":{"*":{"token":"all"}}}]}`), "")
	require.NoError(t, err)
	inv := discovery.NewInventory(nodeDevices)
	pools, err := selector.Select(cfg, inv)
	require.NoError(t, err)
	viaClaim := plan(t, prepare.Input{Inventory: inv, Pools: pools, Claims: []*resourceapi.ResourceClaim{withConfig(claim("c", "vfs", rdmaVF.Name),
		opaque(resourceapi.AllocationConfigSourceClass, nil, netConfig(`,"resourceName":"mellanox.com/pool_a"`)))}})[0]
	require.NoError(t, viaClaim.Err)
	viaPool := prepare.Render(driverName, []prepare.ClaimPlan{prepare.PoolPlan("legacy", &pools.Pools[0], []discovery.Device{rdmaVF})}, inv, nodeDev)[0]
	require.NoError(t, viaPool.Err)
	assert.Equal(t, viaClaim.Env, viaPool.Env)
	assert.Equal(t, viaClaim.Devices[0].Edits, viaPool.Devices[0].Edits)
	assert.Equal(t, viaClaim.InfoFiles, viaPool.InfoFiles)
	assert.Equal(t, "PCIDEVICE_MELLANOX_COM_POOL_A=0000:5e:00.2", viaPool.Env[0])
}
