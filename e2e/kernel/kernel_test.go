//go:build kernel

// Package kernel runs inside a QEMU VM (make e2e-kernel) against a real
// kernel's /sys: emulated Intel 82576 PFs with real igb/igbvf VFs.
package kernel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

func realHost() *host.Host { return host.New(host.Options{}) }

func discoverReal(t *testing.T) *discovery.Inventory {
	t.Helper()
	inv, err := discovery.Discover(context.Background(), realHost())
	require.NoError(t, err)
	for _, p := range inv.Problems() {
		t.Logf("discovery problem: %s", p)
	}
	return inv
}

func vfsOf(inv *discovery.Inventory, pf string) []discovery.Device {
	var out []discovery.Device
	for d := range inv.All() {
		if d.FunctionType == discovery.FunctionVF && d.RootDevice == pf {
			out = append(out, *d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VFIndex < out[j].VFIndex })
	return out
}

// igbPFs are the igb PFs, by address.
func igbPFs(t *testing.T) []string {
	t.Helper()
	pfs, err := filepath.Glob("/sys/bus/pci/drivers/igb/0000:*")
	require.NoError(t, err)
	require.Len(t, pfs, 2, "two emulated 82576 PFs")
	for i := range pfs {
		pfs[i] = filepath.Base(pfs[i])
	}
	sort.Strings(pfs)
	return pfs
}

func TestDiscoveryFindsRealVFs(t *testing.T) {
	inv := discoverReal(t)
	for _, pf := range igbPFs(t) {
		vfs := vfsOf(inv, pf)
		require.Len(t, vfs, 4, "PF %s", pf)
		pfNet, err := os.ReadDir("/sys/bus/pci/devices/" + pf + "/net")
		require.NoError(t, err)
		for i, d := range vfs {
			assert.Equal(t, "8086", d.Vendor)
			assert.Equal(t, "10ca", d.DeviceID)
			assert.Equal(t, "igbvf", d.Driver)
			assert.Equal(t, pfNet[0].Name(), d.PFName)
			assert.Equal(t, i, d.VFIndex)
			assert.GreaterOrEqual(t, d.IOMMUGroup, 0, "every VF in its own IOMMU group")
			assert.NotEmpty(t, d.IfName)
			assert.Equal(t, "ether", d.LinkType)
			assert.Equal(t, discovery.FunctionVF, d.FunctionType)
			assert.Regexp(t, `^0000:0[0-9a-f]:10\.[0246]$`, d.PCIAddress)
		}
		_, ok := inv.Get(discovery.PCIDeviceName(pf))
		assert.False(t, ok, "a PF with VFs is not a device")
	}
	t.Logf("%d devices discovered", inv.Len())
}

// comparable is a device's attributes without what depends on addresses
// or on how the kernel named interfaces.
func comparable(d *discovery.Device) map[string]any {
	a := d.PlainAttributes()
	for _, k := range []string{"pciAddress", "rootDevice", "resource.kubernetes.io/pciBusID", "resource.kubernetes.io/pcieRoot",
		"iommuGroup", "ifName", "pfName"} {
		if _, ok := a[k]; ok {
			a[k] = "<present>"
		}
	}
	return a
}

// TestSimulatedProfileMatchesKernel compares discovery on the simulator's igb
// profile with discovery on this kernel: the same devices, the same
// attributes, apart from addresses and interface names.
func TestSimulatedProfileMatchesKernel(t *testing.T) {
	real := discoverReal(t)
	h, _ := simhosttest.NewProfileHost(t, "igb")
	sim, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	require.Equal(t, real.Len(), sim.Len(), "device count")
	realDevs, simDevs := real.Devices(), sim.Devices()
	for i := range realDevs {
		assert.Equal(t, comparable(&realDevs[i]), comparable(&simDevs[i]), "device %d: real %s, simulated %s", i, realDevs[i].Name, simDevs[i].Name)
	}
	out, err := exec.Command("/bin/sriov-dra", "discover", "-o", "json").CombinedOutput()
	require.NoError(t, err, string(out))
	fmt.Printf("real discover -o json:\n%s\n", out)
}

func TestClassicSelectorsMatchSimulated(t *testing.T) {
	pfs := igbPFs(t)
	real := discoverReal(t)
	realPF := vfsOf(real, pfs[0])[0].PFName
	h, _ := simhosttest.NewProfileHost(t, "igb")
	sim, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	simPF := "enp1s0"
	poolsOf := func(inv *discovery.Inventory, pf string) map[string][]int {
		cfg, err := classic.Decode([]byte(`{"resourceList":[
			{"resourceName":"range","selectors":{"pfNames":["` + pf + `#1-2"]}},
			{"resourceName":"ids","selectors":{"vendors":["8086"],"devices":["10ca"],"drivers":["igbvf"]}}]}`))
		require.NoError(t, err)
		cfg.Default("")
		require.NoError(t, cfg.Validate())
		res, err := selector.Select(cfg, inv)
		require.NoError(t, err)
		out := map[string][]int{}
		for _, p := range res.Pools {
			for _, d := range p.Devices {
				out[p.Name()] = append(out[p.Name()], d.VFIndex)
			}
			sort.Ints(out[p.Name()])
		}
		return out
	}
	want := poolsOf(sim, simPF)
	assert.Equal(t, []int{1, 2}, want["intel.com/range"])
	assert.Equal(t, want, poolsOf(real, realPF))
}

// TestRebindToVFIOAndBack binds a real VF to vfio-pci the way prepare does,
// opens its group node, and restores igbvf.
func TestRebindToVFIOAndBack(t *testing.T) {
	h := realHost()
	vf := vfsOf(discoverReal(t), igbPFs(t)[1])[3]
	prev, err := h.BindDriver(vf.PCIAddress, "vfio-pci")
	require.NoError(t, err)
	assert.Equal(t, "igbvf", prev)
	d, ok := discoverReal(t).Get(vf.Name)
	require.True(t, ok)
	assert.Equal(t, "vfio-pci", d.Driver)
	assert.Empty(t, d.IfName, "no netdev on vfio-pci")
	// The prepare path's edits for the rebound device name real, openable nodes.
	edits, err := prepare.ForDevice(&d, prepare.Options{}, h)
	require.NoError(t, err)
	require.Len(t, edits.Nodes, 2)
	assert.Equal(t, fmt.Sprintf("/dev/vfio/%d", d.IOMMUGroup), edits.Nodes[1].Path)
	for _, n := range edits.Nodes {
		f, err := os.OpenFile(n.HostPath, os.O_RDWR, 0)
		require.NoError(t, err, "%s is usable", n.HostPath)
		f.Close()
	}
	_, err = h.BindDriver(vf.PCIAddress, "igbvf")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, ok := discoverReal(t).Get(vf.Name)
		return ok && d.Driver == "igbvf" && d.IfName != ""
	}, 10*time.Second, 200*time.Millisecond, "igbvf and its netdev are back")
}

func TestPFLinkDownSeenOnVFs(t *testing.T) {
	pf := igbPFs(t)[0]
	vfs := vfsOf(discoverReal(t), pf)
	pfName := vfs[0].PFName
	require.NoError(t, exec.Command("ip", "link", "set", pfName, "down").Run())
	defer exec.Command("ip", "link", "set", pfName, "up").Run()
	require.Eventually(t, func() bool {
		for _, d := range vfsOf(discoverReal(t), pf) {
			if d.OperState != "down" {
				return false
			}
		}
		return true
	}, 10*time.Second, 200*time.Millisecond, "VFs follow their PF down")
	_, err := os.ReadFile("/sys/class/net/" + pfName + "/carrier")
	assert.Error(t, err, "a down PF's carrier cannot be read")
	require.NoError(t, exec.Command("ip", "link", "set", pfName, "up").Run())
}

func TestNumVFsChangeSeenByRescan(t *testing.T) {
	pf := igbPFs(t)[0]
	numvfs := "/sys/bus/pci/devices/" + pf + "/sriov_numvfs"
	write := func(n string) { require.NoError(t, os.WriteFile(numvfs, []byte(n), 0o644), "sriov_numvfs=%s", n) }
	err := os.WriteFile(numvfs, []byte("2"), 0o644)
	assert.Error(t, err, "changing a non-zero VF count directly is EBUSY")
	write("0")
	inv := discoverReal(t)
	assert.Empty(t, vfsOf(inv, pf))
	pfDev, ok := inv.Get(discovery.PCIDeviceName(pf))
	if !ok {
		r, err := realHost().DefaultRouteInterfaces()
		t.Logf("PF %s is not a device; interfaces with a default route: %v (%v)", pf, r, err)
	}
	require.True(t, ok, "a PF without VFs is a device")
	assert.Equal(t, discovery.FunctionPF, pfDev.FunctionType)
	write("2")
	require.Eventually(t, func() bool { return len(vfsOf(discoverReal(t), pf)) == 2 }, 15*time.Second, 200*time.Millisecond)
	write("0")
	write("4")
	require.Eventually(t, func() bool { return len(vfsOf(discoverReal(t), pf)) == 4 }, 15*time.Second, 200*time.Millisecond)
}

// TestSimulatedSysfsLayoutMatchesKernel compares the raw sysfs the simulator
// writes for the first igb PF and its VF 1 with the kernel's: link targets,
// attribute formats and which entries exist.
func TestSimulatedSysfsLayoutMatchesKernel(t *testing.T) {
	_, simRoot := simhosttest.NewProfileHost(t, "igb")
	pf := igbPFs(t)[0]
	vf := vfsOf(discoverReal(t), pf)[1].PCIAddress
	roots := map[string]string{"kernel": "/sys", "simulated": filepath.Join(simRoot, "sys")}
	layout := func(root string) map[string]string {
		out := map[string]string{}
		for _, dev := range []struct{ role, addr string }{{"pf", pf}, {"vf", vf}} {
			dir := filepath.Join(root, "bus/pci/devices", dev.addr)
			for _, link := range []string{"driver", "iommu_group", "physfn", "virtfn1", "subsystem"} {
				if target, err := os.Readlink(filepath.Join(dir, link)); err == nil {
					// Compare the shape: depth and the last two elements.
					parts := strings.Split(target, "/")
					out[dev.role+"/"+link] = fmt.Sprintf("%d ../ then %s", strings.Count(target, "../"), strings.Join(parts[max(0, len(parts)-2):], "/"))
				}
			}
			for _, file := range []string{"vendor", "device", "class", "numa_node", "sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device", "driver_override"} {
				if b, err := os.ReadFile(filepath.Join(dir, file)); err == nil {
					out[dev.role+"/"+file] = strings.TrimSpace(string(b))
				}
			}
		}
		return out
	}
	real, sim := layout(roots["kernel"]), layout(roots["simulated"])
	// Group numbers depend on how many other devices the machine has (the
	// VM's host bridge, LPC, SATA...); what must match is the order: the VF's
	// group comes after both PFs', as VFs are created after boot.
	for _, m := range []map[string]string{real, sim} {
		var pfGroup, vfGroup int
		_, err := fmt.Sscanf(m["pf/iommu_group"], "4 ../ then iommu_groups/%d", &pfGroup)
		require.NoError(t, err, "PF iommu_group link %q", m["pf/iommu_group"])
		_, err = fmt.Sscanf(m["vf/iommu_group"], "4 ../ then iommu_groups/%d", &vfGroup)
		require.NoError(t, err, "VF iommu_group link %q", m["vf/iommu_group"])
		m["vf/iommu_group"] = fmt.Sprintf("PF group + %d", vfGroup-pfGroup)
		m["pf/iommu_group"] = strings.TrimRight(m["pf/iommu_group"], "0123456789") + "N"
	}
	// The simulator has no subsystem links; the kernel's are not read by sriov-dra.
	delete(real, "pf/subsystem")
	delete(real, "vf/subsystem")
	assert.Equal(t, real, sim)
}

// uplinkNIC is the virtio-net NIC init.sh gave the default route: its
// interface and PCI function, read from the real /sys.
func uplinkNIC(t *testing.T) (ifName, pci string) {
	t.Helper()
	nics, err := filepath.Glob("/sys/bus/pci/drivers/virtio-pci/0000:*")
	require.NoError(t, err)
	require.Len(t, nics, 1, "one virtio-net NIC in the VM")
	pci = filepath.Base(nics[0])
	netdevs, err := filepath.Glob(nics[0] + "/virtio*/net/*")
	require.NoError(t, err)
	require.Len(t, netdevs, 1, "the virtio NIC's netdev sits under its virtio child device")
	return filepath.Base(netdevs[0]), pci
}

// TestUplinkNotOffered: the virtio-net NIC with the guest's default route is
// not offered, on its own and enslaved to a bond; the igb VFs stay offered.
func TestUplinkNotOffered(t *testing.T) {
	ifName, pci := uplinkNIC(t)
	check := func(via string) {
		t.Helper()
		inv := discoverReal(t)
		_, offered := inv.Get(discovery.PCIDeviceName(pci))
		assert.False(t, offered, "the uplink %s (%s) is offered", pci, ifName)
		assert.Equal(t, "carries the default route (interface "+via+")", inv.Uplinks().Functions[pci])
		assert.Empty(t, inv.Uplinks().Unresolved)
		for _, pf := range igbPFs(t) {
			assert.Len(t, vfsOf(inv, pf), 4, "the igb VFs of %s stay offered", pf)
		}
	}
	check(ifName)

	// The same NIC as the only member of a bond that carries the route.
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %v: %s", args, out)
	}
	run("link", "add", "upbond0", "type", "bond")
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", "upbond0").Run()
		_ = exec.Command("ip", "link", "set", ifName, "up").Run()
		_ = exec.Command("ip", "addr", "add", "10.0.2.15/24", "dev", ifName).Run()
		_ = exec.Command("ip", "route", "replace", "default", "via", "10.0.2.2", "dev", ifName).Run()
	})
	run("link", "set", ifName, "down")
	run("link", "set", ifName, "master", "upbond0")
	run("link", "set", "upbond0", "up")
	run("addr", "add", "10.0.2.15/24", "dev", "upbond0")
	run("route", "replace", "default", "via", "10.0.2.2", "dev", "upbond0")
	check("upbond0")
}
