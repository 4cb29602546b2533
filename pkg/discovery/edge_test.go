package discovery_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// e810 is a small host: one PF with four VFs.
func e810(mod func(*simhost.PF)) simhost.Spec {
	pf := simhost.PF{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4}
	if mod != nil {
		mod(&pf)
	}
	return simhost.Spec{PFs: []simhost.PF{pf}}
}

// devDir returns the real directory of a PCI function in a simulated host.
func devDir(t *testing.T, root, addr string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(filepath.Join(root, "sys/bus/pci/devices", addr))
	require.NoError(t, err)
	return p
}

func problemsFor(inv *discovery.Inventory, dev string) []string {
	var out []string
	for _, p := range inv.Problems() {
		if p.Device == dev {
			out = append(out, p.String())
		}
	}
	return out
}

func TestVFInPodNetns(t *testing.T) {
	h, _ := simhosttest.NewHost(t, e810(func(pf *simhost.PF) {
		pf.VFs = []simhost.VF{{Index: 2, InPodNetns: true}}
	}))
	inv := discover(t, h)
	d := get(t, inv, "pci-0000-3b-02-2")
	assert.Empty(t, d.IfName, "netdev is in the pod's namespace")
	assert.Equal(t, "iavf", d.Driver)
	assert.Equal(t, "ens1f0", d.PFName)
	assert.Equal(t, 2, d.VFIndex)
	assert.Equal(t, "ether", d.LinkType, "derived from the PF")
	assert.Equal(t, "up", d.OperState, "derived from the PF")
	assert.Equal(t, 4, inv.Len())
}

func TestDefaultRoute(t *testing.T) {
	t.Run("PF with the IPv4 and IPv6 default route is excluded", func(t *testing.T) {
		h, _ := simhosttest.NewProfileHost(t, "mgmt", "fpga")
		inv := discover(t, h)
		assert.Equal(t, []string{"pci-0000-d8-00-0"}, names(inv))
	})
	t.Run("IPv6 default route alone excludes", func(t *testing.T) {
		h, root := simhosttest.NewProfileHost(t, "mgmt")
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/route"), []byte("Iface\tDestination\n"), 0o644))
		assert.Empty(t, names(discover(t, h)))
	})
	t.Run("no default route keeps the NIC", func(t *testing.T) {
		h, root := simhosttest.NewProfileHost(t, "mgmt")
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/route"), []byte("Iface\tDestination\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/ipv6_route"), nil, 0o644))
		assert.Equal(t, []string{"pci-0000-06-00-0", "pci-0000-07-00-0", "pci-0000-08-00-0", "pci-0000-09-00-0"}, names(discover(t, h)),
			"the profile's I210, virtio NIC and the bond's two I210 ports")
	})
	t.Run("a non-default route does not exclude", func(t *testing.T) {
		h, root := simhosttest.NewProfileHost(t, "mgmt")
		route := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nens1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/route"), []byte(route), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/ipv6_route"), nil, 0o644))
		assert.Len(t, names(discover(t, h)), 4)
	})
	t.Run("a VF carrying the default route is excluded", func(t *testing.T) {
		h, root := simhosttest.NewHost(t, e810(nil))
		route := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nens1f0v1\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n"
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/net/route"), []byte(route), 0o644))
		inv := discover(t, h)
		assert.NotContains(t, names(inv), "pci-0000-3b-02-1")
		assert.Equal(t, 3, inv.Len())
	})
}

func TestPFWithoutVFsIsADevice(t *testing.T) {
	h, _ := simhosttest.NewHost(t, e810(func(pf *simhost.PF) { pf.NumVFs = 0 }))
	inv := discover(t, h)
	require.Equal(t, []string{"pci-0000-3b-00-0"}, names(inv))
	d := get(t, inv, "pci-0000-3b-00-0")
	assert.Equal(t, discovery.FunctionPF, d.FunctionType)
	assert.Equal(t, "ens1f0", d.PFName, "a PF's pfName is its own")
	assert.Equal(t, "0000:3b:00.0", d.RootDevice, "a PF's rootDevice is its own")
	assert.Equal(t, "ens1f0", d.IfName)
	assert.Equal(t, -1, d.VFIndex)
}

func TestMalformedInput(t *testing.T) {
	tests := []struct {
		name   string
		spec   simhost.Spec
		break_ func(t *testing.T, root string)
		// device that must be skipped entirely
		skipped string
		// device kept, with attribute left out
		kept, attr string
		// devices expected in the end
		count int
	}{
		{
			name: "missing vendor file", spec: e810(nil), count: 3, skipped: "0000:3b:02.1",
			break_: func(t *testing.T, root string) {
				require.NoError(t, os.Remove(filepath.Join(devDir(t, root, "0000:3b:02.1"), "vendor")))
			},
		},
		{
			name: "garbage vendor", spec: e810(nil), count: 3, skipped: "0000:3b:02.1",
			break_: func(t *testing.T, root string) { write(t, devDir(t, root, "0000:3b:02.1"), "vendor", "0xzz86\x00") },
		},
		{
			name: "garbage class", spec: e810(nil), count: 3, skipped: "0000:3b:02.3",
			break_: func(t *testing.T, root string) { write(t, devDir(t, root, "0000:3b:02.3"), "class", "network") },
		},
		{
			name: "garbage numa_node", spec: e810(nil), count: 4, kept: "0000:3b:02.0", attr: "numaNode",
			break_: func(t *testing.T, root string) { write(t, devDir(t, root, "0000:3b:02.0"), "numa_node", "zero") },
		},
		{
			name: "garbage net type", spec: e810(nil), count: 4, kept: "0000:3b:02.0", attr: "linkType",
			break_: func(t *testing.T, root string) {
				write(t, filepath.Join(devDir(t, root, "0000:3b:02.0"), "net/ens1f0v0"), "type", "9999")
			},
		},
		{
			name: "dangling physfn link", spec: e810(nil), count: 4, kept: "0000:3b:02.2", attr: "rootDevice",
			break_: func(t *testing.T, root string) {
				dir := devDir(t, root, "0000:3b:02.2")
				require.NoError(t, os.Remove(filepath.Join(dir, "physfn")))
				require.NoError(t, os.Symlink("../0000:3b:07.0", filepath.Join(dir, "physfn")))
			},
		},
		{
			name: "virtfn loop through a VF", spec: e810(nil), count: 3, skipped: "0000:3b:02.0",
			break_: func(t *testing.T, root string) {
				pf, vf := devDir(t, root, "0000:3b:00.0"), devDir(t, root, "0000:3b:02.0")
				require.NoError(t, os.Symlink("../0000:3b:00.0", filepath.Join(vf, "virtfn0")))
				_ = pf
			},
		},
		{
			name: "virtfn pointing at the PF itself", spec: e810(nil), count: 4, kept: "0000:3b:00.0", attr: "virtfn9",
			break_: func(t *testing.T, root string) {
				require.NoError(t, os.Symlink("../0000:3b:00.0", filepath.Join(devDir(t, root, "0000:3b:00.0"), "virtfn9")))
			},
		},
		{
			name: "garbage iommu_group", spec: e810(nil), count: 4, kept: "0000:3b:02.0", attr: "iommuGroup",
			break_: func(t *testing.T, root string) {
				link := filepath.Join(devDir(t, root, "0000:3b:02.0"), "iommu_group")
				require.NoError(t, os.Remove(link))
				require.NoError(t, os.Symlink("../../kernel/iommu_groups/x", link))
			},
		},
		{
			name: "SF without a parent network function", spec: simhost.Spec{PFs: simhosttest.Profiles(t, "bf2").PFs}, count: 3,
			skipped: "mlx5_core.sf.9",
			break_: func(t *testing.T, root string) {
				dir := filepath.Join(root, "sys/devices/platform/mlx5_core.sf.9")
				write(t, dir, "sfnum", "9")
				require.NoError(t, os.Symlink("../../../devices/platform/mlx5_core.sf.9", filepath.Join(root, "sys/bus/auxiliary/devices/mlx5_core.sf.9")))
				require.NoError(t, os.Remove(filepath.Join(devDir(t, root, "0000:03:00.0"), "mlx5_core.sf.2", "sfnum")))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, root := simhosttest.NewHost(t, tc.spec)
			tc.break_(t, root)
			inv := discover(t, h)
			assert.Equal(t, tc.count, inv.Len(), "devices: %v", names(inv))
			if tc.skipped != "" {
				probs := problemsFor(inv, tc.skipped)
				require.NotEmpty(t, probs, "the skip must be recorded: %v", inv.Problems())
				assert.Contains(t, probs[0], "device "+tc.skipped+" skipped")
				for d := range inv.All() {
					assert.NotEqual(t, tc.skipped, d.ID())
				}
			}
			if tc.kept != "" {
				probs := problemsFor(inv, tc.kept)
				require.NotEmpty(t, probs, "the skipped attribute must be recorded: %v", inv.Problems())
				assert.Contains(t, strings.Join(probs, "\n"), "attribute "+tc.attr+" skipped")
				if d, ok := inv.Get(discovery.PCIDeviceName(tc.kept)); ok {
					assert.NotContains(t, d.PlainAttributes(), tc.attr)
				}
			}
		})
	}
}

func TestLinkDownPFCarrierUnreadable(t *testing.T) {
	// The kernel answers EINVAL for a down PF's carrier; discovery must not
	// need it and must report the VFs and a VF-less PF with state down.
	h, _ := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2, LinkDown: true},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0", LinkDown: true},
	}})
	inv := discover(t, h)
	require.Equal(t, 3, inv.Len())
	assert.Equal(t, "down", get(t, inv, "pci-0000-3b-02-0").OperState)
	assert.Equal(t, "down", get(t, inv, "pci-0000-5b-00-0").OperState)
	assert.Empty(t, inv.Problems())
}

func TestNoIOMMU(t *testing.T) {
	h, _ := simhosttest.NewHost(t, e810(func(pf *simhost.PF) {
		pf.VFs = []simhost.VF{{Index: 1, Driver: "vfio-pci", NoIOMMU: true}}
	}))
	d := get(t, discover(t, h), "pci-0000-3b-02-1")
	assert.True(t, d.IOMMUNoIOMMU)
}

func TestUnreadablePCIDeviceList(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sys/bus/pci"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sys/bus/pci/devices"), []byte("x"), 0o644))
	_, err := discovery.Discover(t.Context(), host.UnderRoot(dir))
	require.ErrorContains(t, err, "list PCI devices")
}

func TestEmptyHost(t *testing.T) {
	inv := discover(t, host.UnderRoot(t.TempDir()))
	assert.Zero(t, inv.Len())
}

// TestRealHostCapture runs discovery on a sysfs capture of a real server
// (hwloc's dual-socket Xeon with X722 and ConnectX-4 NICs and NEC vector
// engines behind PLX switches).
func TestRealHostCapture(t *testing.T) {
	fixture := "testdata/hwloc-xeon-x722-cx4.tar.bz2" // see testdata/README.md
	dir := t.TempDir()
	out, err := exec.Command("tar", "-xjf", fixture, "-C", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	roots, err := filepath.Glob(filepath.Join(dir, "*", "sys"))
	require.NoError(t, err)
	require.Len(t, roots, 1)
	h := host.New(host.Options{SysfsRoot: roots[0], ProcRoot: filepath.Join(filepath.Dir(roots[0]), "proc")})
	inv := discover(t, h)
	require.Equal(t, []string{"pci-0000-1a-00-0", "pci-0000-3e-00-0", "pci-0000-60-00-0", "pci-0000-60-00-1"}, names(inv))
	for i, ifName := range []string{"enp96s0f0", "enp96s0f1"} {
		d := get(t, inv, names(inv)[2+i])
		assert.Equal(t, "i40e", d.Driver)
		assert.Equal(t, "8086", d.Vendor)
		assert.Equal(t, "37d2", d.DeviceID)
		assert.Equal(t, ifName, d.IfName)
		assert.Equal(t, ifName, d.PFName)
		assert.Equal(t, 0, d.NUMANode)
		assert.Equal(t, discovery.FunctionPF, d.FunctionType)
	}
	for _, n := range names(inv)[:2] {
		d := get(t, inv, n)
		assert.Equal(t, "15b3", d.Vendor)
		assert.Equal(t, "1013", d.DeviceID)
		assert.Equal(t, "mlx5_core", d.Driver)
	}
	// Three root complexes, from the capture's device paths.
	pcieRoots := map[string]string{}
	for d := range inv.All() {
		pcieRoots[d.PCIAddress] = d.PCIeRoot
	}
	assert.Equal(t, map[string]string{"0000:1a:00.0": "pci0000:17", "0000:3e:00.0": "pci0000:3a",
		"0000:60:00.0": "pci0000:5d", "0000:60:00.1": "pci0000:5d"}, pcieRoots)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}
