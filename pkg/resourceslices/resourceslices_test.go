package resourceslices_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

func inventory(t testing.TB, spec simhost.Spec) *discovery.Inventory {
	h, _ := simhosttest.NewHost(t, spec)
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	return inv
}

// placement maps each device to its slice index.
func placement(pool resourceslice.Pool) map[string]int {
	out := map[string]int{}
	for i, s := range pool.Slices {
		for _, d := range s.Devices {
			out[d.Name] = i
		}
	}
	return out
}

func TestBuildSplitsValidSlices(t *testing.T) {
	spec, err := simhost.Combine("large", "bf2", "fpga", "e810")
	require.NoError(t, err)
	inv := inventory(t, spec)
	pool, problems := resourceslices.Build(inv, resourceslices.Options{})
	assert.Empty(t, problems)
	seen := map[string]bool{}
	for _, s := range pool.Slices {
		require.LessOrEqual(t, len(s.Devices), resourceapi.ResourceSliceMaxDevices)
		for _, d := range s.Devices {
			require.False(t, seen[d.Name], "device %s twice", d.Name)
			seen[d.Name] = true
			assert.LessOrEqual(t, len(d.Attributes), resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice)
		}
	}
	assert.Len(t, seen, inv.Len(), "every device exactly once")
	// 16 large PFs, 2 e810 PFs, the BF2 PF (with its SFs) and the FPGA.
	assert.Len(t, pool.Slices, 20)
}

func TestBuildPlacementIsStable(t *testing.T) {
	base := simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 8},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0", NumVFs: 8},
		{Address: "0000:7b:00.0", Model: "e810", IfName: "ens3f0", NumVFs: 8},
	}}
	before := placement(first(resourceslices.Build(inventory(t, base), resourceslices.Options{})))
	changed := base
	changed.PFs = append([]simhost.PF(nil), base.PFs...)
	changed.PFs[1].NumVFs = 12
	changed.PFs[1].VFs = []simhost.VF{{Index: 0, Driver: "vfio-pci"}}
	after := placement(first(resourceslices.Build(inventory(t, changed), resourceslices.Options{})))
	for name, i := range before {
		assert.Equal(t, i, after[name], "device %s moved between slices", name)
	}
	assert.Len(t, after, 28)
}

func first(p resourceslice.Pool, _ []resourceslices.Problem) resourceslice.Pool { return p }

func TestBuildEmptyHostPublishesEmptyPool(t *testing.T) {
	pool, _ := resourceslices.Build(discovery.NewInventory(nil), resourceslices.Options{})
	require.Len(t, pool.Slices, 1)
	assert.Empty(t, pool.Slices[0].Devices)
}

func TestDeviceMultusAttributesAndLimits(t *testing.T) {
	inv := inventory(t, simhost.Spec{PFs: simhosttest.Profiles(t, "bf2").PFs})
	sf, ok := inv.Get("aux-mlx5-core-sf-2")
	require.True(t, ok)
	dev, problems := resourceslices.Device(&sf, func(name string) string {
		if name == sf.Name {
			return "nvidia.com/bf2_sf"
		}
		return ""
	})
	assert.Empty(t, problems)
	assert.Equal(t, "mlx5_core.sf.2", *dev.Attributes[resourceslices.AttrMultusDeviceID].StringValue)
	assert.Equal(t, "nvidia.com/bf2_sf", *dev.Attributes[resourceslices.AttrMultusResourceName].StringValue)

	pf, _ := inv.Get("pci-0000-03-00-0")
	dev, _ = resourceslices.Device(&pf, func(string) string { return "" })
	assert.Equal(t, "0000:03:00.0", *dev.Attributes[resourceslices.AttrMultusDeviceID].StringValue)
	assert.NotContains(t, dev.Attributes, resourceapi.QualifiedName(resourceslices.AttrMultusResourceName), "no pool, no resourceName")

	long := pf
	long.DDPProfile = strings.Repeat("x", 65)
	dev, problems = resourceslices.Device(&long, nil)
	require.Len(t, problems, 1)
	assert.Equal(t, "ddpProfile", problems[0].Attribute)
	assert.NotContains(t, dev.Attributes, resourceapi.QualifiedName("ddpProfile"))

	odd := pf
	odd.IfName, odd.PFName = "p\xff0", "p\xff0"
	dev, problems = resourceslices.Device(&odd, nil)
	require.Len(t, problems, 2)
	assert.Contains(t, problems[0].String()+problems[1].String(), `"p\xff0" is not valid UTF-8`)
	assert.NotContains(t, dev.Attributes, resourceapi.QualifiedName("ifName"))
	assert.NotContains(t, dev.Attributes, resourceapi.QualifiedName("pfName"))
	assert.Contains(t, dev.Attributes, resourceapi.QualifiedName("pciAddress"), "the rest of the device stays")
}

func TestResourceSlicesRender(t *testing.T) {
	pool, _ := resourceslices.Build(inventory(t, simhost.Spec{PFs: simhosttest.Profiles(t, "fpga").PFs}), resourceslices.Options{})
	out := resourceslices.ResourceSlices(pool, "sriov.dra.dev", "node-a")
	require.Len(t, out, 1)
	assert.Equal(t, "node-a-sriov-dra-dev-0", out[0].Name)
	assert.Equal(t, "node-a", *out[0].Spec.NodeName)
	assert.Equal(t, int64(1), out[0].Spec.Pool.ResourceSliceCount)
	assert.Equal(t, "pci-0000-d8-00-0", out[0].Spec.Devices[0].Name)
}

func BenchmarkBuildLarge(b *testing.B) {
	h, _ := simhosttest.NewProfileHost(b, "large")
	inv, err := discovery.Discover(context.Background(), h)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pool, _ := resourceslices.Build(inv, resourceslices.Options{ResourceNameOf: func(string) string { return "intel.com/sriov" }})
		if len(pool.Slices) != 16 {
			b.Fatalf("%d slices", len(pool.Slices))
		}
	}
}

// TestBuildSplitsAPFOfMoreThan128Devices: an E810 port with 200 VFs (it
// allows 256) needs two slices: 128 devices, the API's limit, then 72.
func TestBuildSplitsAPFOfMoreThan128Devices(t *testing.T) {
	inv := inventory(t, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 200},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0", NumVFs: 3},
	}})
	pool, problems := resourceslices.Build(inv, resourceslices.Options{})
	assert.Empty(t, problems)
	var sizes []int
	for _, s := range pool.Slices {
		sizes = append(sizes, len(s.Devices))
	}
	assert.Equal(t, []int{128, 72, 3}, sizes)
	seen := map[string]bool{}
	for _, s := range pool.Slices[:2] {
		for _, d := range s.Devices {
			assert.Equal(t, "0000:3b:00.0", *d.Attributes["rootDevice"].StringValue, "one PF's devices per slice")
			seen[d.Name] = true
		}
	}
	assert.Len(t, seen, 200)
}

// TestLinkDownTaints: devices of a PF whose link is down carry the taint,
// valued with the PF's name; their slices hold at most 64 devices, as the
// API requires of slices with taints; the other PFs' slices keep 128.
func TestLinkDownTaints(t *testing.T) {
	h, _ := simhosttest.NewProfileHost(t, "large")
	require.NoError(t, h.SetLink("ens10f0", false))
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	taint := &resourceapi.DeviceTaint{Key: resourceslices.LinkDownTaintKey("example.com"), Effect: resourceapi.DeviceTaintEffectNoExecute}
	pool, problems := resourceslices.Build(inv, resourceslices.Options{LinkDown: taint})
	assert.Empty(t, problems)
	var sizes []int
	tainted := 0
	for _, s := range pool.Slices {
		sizes = append(sizes, len(s.Devices))
		for _, d := range s.Devices {
			if len(d.Taints) == 0 {
				continue
			}
			tainted++
			assert.Equal(t, []resourceapi.DeviceTaint{{Key: "example.com/link-down", Value: "ens10f0", Effect: resourceapi.DeviceTaintEffectNoExecute}}, d.Taints)
			assert.LessOrEqual(t, len(s.Devices), resourceapi.ResourceSliceMaxDevicesWithAdvancedFeatures)
		}
	}
	assert.Equal(t, 128, tainted, "ens10f0's 128 VFs")
	assert.Equal(t, append([]int{64, 64}, slices.Repeat([]int{128}, 15)...), sizes, "the first PF (bus c0) splits in two")

	require.NoError(t, h.SetLink("ens10f0", true))
	inv, err = discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	pool, _ = resourceslices.Build(inv, resourceslices.Options{LinkDown: taint})
	assert.Len(t, pool.Slices, 16, "recovered: no taint, 128 a slice again")
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			assert.Empty(t, d.Taints)
		}
	}
}

// TestNUMAAttributes: a device with a NUMA node publishes it under our name
// and the standard resource.kubernetes.io/numaNode (for alignment with CPU
// and GPU drivers); a classic pool with excludeTopology publishes neither.
func TestNUMAAttributes(t *testing.T) {
	one := 1
	inv := inventory(t, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NUMANode: &one, NumVFs: 2},
		{Address: "0000:5e:00.0", Model: "e810", IfName: "ens2f0", NUMANode: &one, NumVFs: 2},
	}})
	cfg, err := classic.Parse([]byte(`{"resourceList":[
		{"resourceName":"aligned","selectors":{"pfNames":["ens1f0"]}},
		{"resourceName":"anywhere","excludeTopology":true,"selectors":{"pfNames":["ens2f0"]}}]}`), "")
	require.NoError(t, err)
	pool, _, _, err := resourceslices.DesiredPool(inv, cfg, resourceslices.PoolOptions{})
	require.NoError(t, err)
	seen := 0
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			pf := *d.Attributes[discovery.AttrPFName].StringValue
			numa, ours := d.Attributes[discovery.AttrNUMANode]
			std, standard := d.Attributes[resourceapi.QualifiedName(discovery.AttrStdNUMANode)]
			switch pf {
			case "ens1f0":
				require.True(t, ours && standard, "%s: both NUMA attributes", d.Name)
				assert.Equal(t, int64(1), *numa.IntValue, d.Name)
				assert.Equal(t, int64(1), *std.IntValue, d.Name)
			case "ens2f0":
				assert.False(t, ours || standard, "%s: excludeTopology leaves both out", d.Name)
			}
			seen++
		}
	}
	assert.Equal(t, 4, seen, "the four VFs")
}

// TestDevicesHeldThroughDevicePluginsAreLeftOut: a device a pod holds
// through the device-plugin API (its pool moved from the shim to DRA) is not
// published until released; the rest of its pool is.
func TestDevicesHeldThroughDevicePluginsAreLeftOut(t *testing.T) {
	inv := inventory(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 3}}})
	cfg, err := classic.Parse([]byte(`{"resourceList":[{"resourceName":"net","selectors":{"pfNames":["ens1f0"]}}]}`), "")
	require.NoError(t, err)
	names := func(inUse map[string]bool) []string {
		pool, _, _, err := resourceslices.DesiredPool(inv, cfg, resourceslices.PoolOptions{InUse: inUse})
		require.NoError(t, err)
		var out []string
		for _, s := range pool.Slices {
			for _, d := range s.Devices {
				out = append(out, d.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	// The PF's VFs 0-2 are 0000:3b:02.0-2 (e810: VF offset 16, stride 1).
	assert.Equal(t, []string{"pci-0000-3b-02-0", "pci-0000-3b-02-2"}, names(map[string]bool{"0000:3b:02.1": true}))
	assert.Equal(t, []string{"pci-0000-3b-02-0", "pci-0000-3b-02-1", "pci-0000-3b-02-2"}, names(nil), "released: back")
}

// TestBuildAttributesPerDevice: Build shares attribute values between
// devices; each device must still carry its own. The expected values come
// from the e810 profile's spec: ens1f0 (0000:3b:00.0, VF offset 16) has 8
// VFs at 0000:3b:02.0-7, VFs 6 and 7 on vfio-pci; ens1f1 (0000:3b:00.1,
// offset 135) has 4 at 0000:3b:11.0-3; both on NUMA node 0, every function
// in an IOMMU group of its own.
func TestBuildAttributesPerDevice(t *testing.T) {
	inv := inventory(t, simhosttest.Profiles(t, "e810"))
	pool, problems := resourceslices.Build(inv, resourceslices.Options{ResourceNameOf: func(name string) string {
		if strings.HasPrefix(name, "pci-0000-3b-11-") {
			return "intel.com/f1"
		}
		return "intel.com/f0"
	}})
	require.Empty(t, problems)
	type want struct {
		pf, root, addr, driver, resource string
		index                            int64
	}
	wants := map[string]want{}
	for i := range 8 {
		driver := "iavf"
		if i >= 6 {
			driver = "vfio-pci"
		}
		wants[fmt.Sprintf("pci-0000-3b-02-%d", i)] = want{"ens1f0", "0000:3b:00.0", fmt.Sprintf("0000:3b:02.%d", i), driver, "intel.com/f0", int64(i)}
	}
	for i := range 4 {
		wants[fmt.Sprintf("pci-0000-3b-11-%d", i)] = want{"ens1f1", "0000:3b:00.1", fmt.Sprintf("0000:3b:11.%d", i), "iavf", "intel.com/f1", int64(i)}
	}
	groups := map[int64]string{}
	seen := 0
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			w, ok := wants[d.Name]
			require.True(t, ok, "unexpected device %s", d.Name)
			seen++
			str := func(name string) string {
				v, ok := d.Attributes[resourceapi.QualifiedName(name)]
				require.True(t, ok && v.StringValue != nil, "%s: no %s", d.Name, name)
				return *v.StringValue
			}
			assert.Equal(t, w.pf, str(discovery.AttrPFName), d.Name)
			assert.Equal(t, w.root, str(discovery.AttrRootDevice), d.Name)
			assert.Equal(t, w.addr, str(discovery.AttrPCIAddress), d.Name)
			assert.Equal(t, w.addr, str(discovery.AttrPCIBusID), d.Name)
			assert.Equal(t, w.addr, str(resourceslices.AttrMultusDeviceID), d.Name)
			assert.Equal(t, w.driver, str(discovery.AttrDriver), d.Name)
			assert.Equal(t, w.resource, str(resourceslices.AttrMultusResourceName), d.Name)
			assert.Equal(t, "8086", str(discovery.AttrVendor), d.Name)
			assert.Equal(t, "1889", str(discovery.AttrDeviceID), d.Name)
			assert.Equal(t, w.index, *d.Attributes[discovery.AttrVFIndex].IntValue, d.Name)
			assert.Equal(t, int64(0), *d.Attributes[discovery.AttrNUMANode].IntValue, d.Name)
			assert.False(t, *d.Attributes[discovery.AttrRDMA].BoolValue, d.Name)
			g := *d.Attributes[discovery.AttrIOMMUGroup].IntValue
			assert.NotContains(t, groups, g, "%s shares IOMMU group %d", d.Name, g)
			groups[g] = d.Name
		}
	}
	assert.Equal(t, len(wants), seen)
}
