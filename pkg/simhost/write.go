package simhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Combine merges profiles (by name) into one spec.
func Combine(names ...string) (Spec, error) {
	var out Spec
	for _, n := range names {
		p, ok := Profile(n)
		if !ok {
			return Spec{}, fmt.Errorf("unknown profile %q (known: %s)", n, strings.Join(ProfileNames(), ", "))
		}
		out.PFs = append(out.PFs, p.PFs...)
		out.Uppers = append(out.Uppers, p.Uppers...)
	}
	return out, nil
}

// WriteOptions tune how a host is written.
type WriteOptions struct {
	// CharDevices makes /dev entries real character devices (with the
	// numbers of /dev/null), as container runtimes require for device
	// nodes; it needs root. Without it they are empty files.
	CharDevices bool
}

// Write lays out the host described by spec under dir: dir/sys, dir/dev,
// dir/proc and dir/devlink (the simulated devlink answers).
func Write(dir string, spec Spec, opts ...WriteOptions) error {
	w := &writer{root: dir, bridges: map[string]string{}, auxIDs: map[string]int{}, drivers: map[string]bool{}, netdevDirs: map[string]string{}}
	for _, o := range opts {
		w.charDevices = w.charDevices || o.CharDevices
	}
	seen := map[string]bool{}
	pfs := make([]PF, len(spec.PFs))
	for i := range spec.PFs {
		pf, err := resolve(spec.PFs[i])
		if err != nil {
			return fmt.Errorf("pfs[%d]: %w", i, err)
		}
		for _, a := range pf.addresses() {
			if seen[a] {
				return fmt.Errorf("pfs[%d]: PCI address %s is used twice", i, a)
			}
			seen[a] = true
		}
		pfs[i] = pf
	}
	// The kernel numbers IOMMU groups in enumeration order: bridges and PFs
	// at boot, in bus order, VFs only when they are created. Do the same.
	byAddr := make([]int, len(pfs))
	for i := range byAddr {
		byAddr[i] = i
	}
	slices.SortStableFunc(byAddr, func(a, b int) int { return strings.Compare(pfs[a].Address, pfs[b].Address) })
	for _, i := range byAddr {
		a, _ := parseAddr(pfs[i].Address)
		if _, err := w.bridge(a, pfs[i].Root); err != nil {
			return fmt.Errorf("pfs[%d] %s: %w", i, pfs[i].Address, err)
		}
	}
	for _, i := range byAddr {
		if err := w.pf(pfs[i]); err != nil {
			return fmt.Errorf("pfs[%d] %s: %w", i, pfs[i].Address, err)
		}
	}
	for i := range pfs {
		if err := w.children(pfs[i]); err != nil {
			return fmt.Errorf("pfs[%d] %s: %w", i, pfs[i].Address, err)
		}
	}
	for i, u := range spec.Uppers {
		if err := w.upper(u); err != nil {
			return fmt.Errorf("uppers[%d] %s: %w", i, u.Name, err)
		}
	}
	return w.finish()
}

// resolve applies the model's presets and checks the result.
func resolve(pf PF) (PF, error) {
	if pf.Model != "" {
		m, ok := Model(pf.Model)
		if !ok {
			return pf, fmt.Errorf("unknown model %q", pf.Model)
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&pf.Vendor, m.Vendor)
		fill(&pf.Device, m.Device)
		fill(&pf.Class, m.Class)
		fill(&pf.Driver, m.Driver)
		fill(&pf.LinkType, m.LinkType)
		fill(&pf.EswitchMode, m.EswitchMode)
		fill(&pf.DDPProfile, m.DDPProfile)
		fill(&pf.VFDevice, m.VFDevice)
		fill(&pf.VFDriver, m.VFDriver)
		pf.RDMA = pf.RDMA || m.RDMA
		pf.VFRDMA = pf.VFRDMA || m.VFRDMA
		if pf.TotalVFs == 0 {
			pf.TotalVFs = m.TotalVFs
		}
		if pf.VFOffset == 0 {
			pf.VFOffset, pf.VFStride = m.VFOffset, m.VFStride
		}
	}
	if pf.Class == "" {
		pf.Class = "0x020000"
	}
	if pf.LinkType == "" {
		pf.LinkType = "ether"
	}
	if pf.VFStride == 0 {
		pf.VFStride = 1
	}
	if pf.NumVFs > pf.TotalVFs {
		return pf, fmt.Errorf("numVFs %d exceeds totalVFs %d", pf.NumVFs, pf.TotalVFs)
	}
	if _, err := parseAddr(pf.Address); err != nil {
		return pf, err
	}
	if pf.Vendor == "" || pf.Device == "" {
		return pf, errors.New("vendor and device are required without a model")
	}
	return pf, nil
}

func (pf PF) addresses() []string {
	a, _ := parseAddr(pf.Address)
	out := []string{pf.Address}
	for i := 0; i < pf.NumVFs; i++ {
		out = append(out, pf.vfAddr(a, i))
	}
	return out
}

func (pf PF) vfAddr(a pciAddr, i int) string {
	return a.plus(pf.VFOffset + i*pf.VFStride).String()
}

func (pf PF) vf(i int) VF {
	for _, v := range pf.VFs {
		if v.Index == i {
			if v.Driver == "" {
				v.Driver = pf.VFDriver
			}
			return v
		}
	}
	return VF{Index: i, Driver: pf.VFDriver}
}

type writer struct {
	root        string
	bridges     map[string]string // "<domain>:<bus>" -> bridge dir
	iommuGroup  int
	ifIndex     int
	vfioDev     int
	uverbs      int
	rdmaDev     int
	vdpaDev     int
	uioDev      int
	auxIDs      map[string]int
	drivers     map[string]bool
	charDevices bool
	routes      []string
	devlink     map[string]any
	// netdevDirs maps each interface written to its sysfs directory.
	netdevDirs map[string]string
	virtioDev  int
}

func (w *writer) sys(rel string) string { return filepath.Join(w.root, "sys", rel) }

func (w *writer) write(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// files writes name -> content pairs into a directory.
func (w *writer) files(dir string, kv ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, kv[i]), []byte(kv[i+1]+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// link makes a relative symlink at link pointing to target, both absolute.
func (w *writer) link(link, target string) error {
	rel, err := filepath.Rel(filepath.Dir(link), target)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	return os.Symlink(rel, link)
}

// bridge returns the directory of the root port a bus hangs off, creating
// the root complex and bridge the first time.
func (w *writer) bridge(a pciAddr, root string) (string, error) {
	if root == "" {
		root = fmt.Sprintf("pci%04x:00", a.domain)
	}
	key := fmt.Sprintf("%s/%04x:%02x", root, a.domain, a.bus)
	if dir, ok := w.bridges[key]; ok {
		return dir, nil
	}
	addr := pciAddr{domain: a.domain, devfn: (len(w.bridges) + 1) << 3}.String()
	dir := w.sys(filepath.Join("devices", root, addr))
	w.bridges[key] = dir
	if err := w.files(dir, "vendor", "0x8086", "device", "0x2030", "class", "0x060400", "numa_node", "-1"); err != nil {
		return "", err
	}
	if err := w.link(w.sys("bus/pci/devices/"+addr), dir); err != nil {
		return "", err
	}
	return dir, w.iommu(dir, addr, false)
}

func (w *writer) driverLink(devDir, bus, driver, name string) error {
	drvDir := w.sys(filepath.Join("bus", bus, "drivers", driver))
	if !w.drivers[drvDir] {
		if err := w.files(drvDir, "bind", "", "unbind", "", "new_id", "", "remove_id", ""); err != nil {
			return err
		}
		w.drivers[drvDir] = true
	}
	if err := w.link(filepath.Join(devDir, "driver"), drvDir); err != nil {
		return err
	}
	return w.link(filepath.Join(drvDir, name), devDir)
}

func (w *writer) pf(pf PF) error {
	a, _ := parseAddr(pf.Address)
	parent, err := w.bridge(a, pf.Root)
	if err != nil {
		return err
	}
	numa := "-1"
	if pf.NUMANode != nil {
		numa = strconv.Itoa(*pf.NUMANode)
	}
	dir := filepath.Join(parent, pf.Address)
	if err := w.pciFunc(dir, pf.Address, pf.Vendor, pf.Device, pf.Class, pf.Driver, numa, false); err != nil {
		return err
	}
	if pf.TotalVFs > 0 {
		if err := w.files(dir, "sriov_totalvfs", strconv.Itoa(pf.TotalVFs), "sriov_numvfs", strconv.Itoa(pf.NumVFs),
			"sriov_offset", strconv.Itoa(pf.VFOffset), "sriov_stride", strconv.Itoa(pf.VFStride),
			"sriov_vf_device", pf.VFDevice, "sriov_drivers_autoprobe", "1"); err != nil {
			return err
		}
	}
	if pf.IfName != "" {
		netParent, err := w.netdevParent(dir, pf)
		if err != nil {
			return err
		}
		if err := w.netdev(netParent, pf.IfName, pf.LinkType, !pf.LinkDown, true, pf.EswitchMode == "switchdev"); err != nil {
			return err
		}
		if pf.DefaultRoute {
			w.routes = append(w.routes, pf.IfName)
		}
	}
	if pf.RDMA {
		if err := w.rdma(dir, nil); err != nil {
			return err
		}
	}
	if pf.EswitchMode != "" || pf.DDPProfile != "" {
		if w.devlink == nil {
			w.devlink = map[string]any{}
		}
		w.devlink[pf.Address] = map[string]string{"eswitchMode": pf.EswitchMode, "ddpProfile": pf.DDPProfile}
	}
	return nil
}

// children writes a PF's VFs, auxiliary devices and SFs.
func (w *writer) children(pf PF) error {
	a, _ := parseAddr(pf.Address)
	parent, err := w.bridge(a, pf.Root)
	if err != nil {
		return err
	}
	dir := filepath.Join(parent, pf.Address)
	numa := "-1"
	if pf.NUMANode != nil {
		numa = strconv.Itoa(*pf.NUMANode)
	}
	for i := 0; i < pf.NumVFs; i++ {
		if err := w.vfFunc(pf, a, parent, dir, numa, pf.vf(i)); err != nil {
			return fmt.Errorf("vf %d: %w", i, err)
		}
	}
	if strings.HasPrefix(pf.Driver, "mlx5") && pf.IfName != "" {
		// mlx5 PFs also carry eth/rdma auxiliary devices that are not SFs.
		for _, kind := range []string{"eth", "rdma"} {
			// Auxiliary IDs are allocated host-wide by the kernel.
			name := fmt.Sprintf("mlx5_core.%s.%d", kind, w.auxIDs[kind])
			w.auxIDs[kind]++
			if err := w.auxDev(dir, name, "mlx5_core."+kind); err != nil {
				return err
			}
		}
	}
	for _, sf := range pf.SFs {
		if err := w.sf(dir, pf, sf); err != nil {
			return fmt.Errorf("sf %d: %w", sf.ID, err)
		}
	}
	return nil
}

func (w *writer) pciFunc(dir, addr, vendor, device, class, driver, numa string, vf bool) error {
	if err := w.files(dir, "vendor", hex4(vendor), "device", hex4(device), "class", class, "numa_node", numa,
		"subsystem_vendor", hex4(vendor), "subsystem_device", "0x0000", "driver_override", "(null)",
		"enable", "1", "uevent", "PCI_SLOT_NAME="+addr); err != nil {
		return err
	}
	if err := w.link(w.sys("bus/pci/devices/"+addr), dir); err != nil {
		return err
	}
	if driver != "" {
		if err := w.driverLink(dir, "pci", driver, addr); err != nil {
			return err
		}
	}
	return w.iommu(dir, addr, false)
}

func (w *writer) iommu(dir, addr string, noIOMMU bool) error {
	g := strconv.Itoa(w.iommuGroup)
	w.iommuGroup++
	gdir := w.sys("kernel/iommu_groups/" + g)
	if err := w.files(gdir, "type", "DMA"); err != nil {
		return err
	}
	if noIOMMU {
		if err := w.files(gdir, "name", "vfio-noiommu"); err != nil {
			return err
		}
	}
	if err := w.link(filepath.Join(gdir, "devices", addr), dir); err != nil {
		return err
	}
	return w.link(filepath.Join(dir, "iommu_group"), gdir)
}

func (w *writer) vfFunc(pf PF, pfAddr pciAddr, parent, pfDir, numa string, vf VF) error {
	addr := pf.vfAddr(pfAddr, vf.Index)
	dir := filepath.Join(parent, addr)
	if err := w.pciFunc(dir, addr, pf.Vendor, pf.VFDevice, pf.Class, vf.Driver, numa, true); err != nil {
		return err
	}
	if vf.NoIOMMU {
		// Re-home the VF into a vfio-noiommu group.
		if err := os.Remove(filepath.Join(dir, "iommu_group")); err != nil {
			return err
		}
		if err := w.iommu(dir, addr, true); err != nil {
			return err
		}
	}
	if err := w.link(filepath.Join(dir, "physfn"), pfDir); err != nil {
		return err
	}
	if err := w.link(filepath.Join(pfDir, "virtfn"+strconv.Itoa(vf.Index)), dir); err != nil {
		return err
	}
	switch {
	case vf.Driver == "vfio-pci":
		return w.vfio(dir)
	case vf.Driver == "igb_uio" || vf.Driver == "uio_pci_generic":
		return w.uio(dir)
	case vf.Driver == "" || vf.InPodNetns:
	default:
		ifName := ""
		if pf.IfName != "" {
			ifName = fmt.Sprintf("%sv%d", pf.IfName, vf.Index)
		}
		if ifName != "" {
			if err := w.netdev(dir, ifName, pf.LinkType, !pf.LinkDown, false, false); err != nil {
				return err
			}
			if vf.DefaultRoute {
				w.routes = append(w.routes, ifName)
			}
		}
		if pf.VFRDMA {
			if err := w.rdma(dir, vf.PKeys); err != nil {
				return err
			}
		}
	}
	if vf.VDPA != "" {
		return w.vdpa(dir, vf.VDPA)
	}
	return nil
}

func (w *writer) vfio(dir string) error {
	g, err := os.Readlink(filepath.Join(dir, "iommu_group"))
	if err != nil {
		return err
	}
	group := filepath.Base(g)
	node := group
	if _, err := os.Stat(w.sys("kernel/iommu_groups/" + group + "/name")); err == nil {
		node = "noiommu-" + group
	}
	if err := os.MkdirAll(filepath.Join(dir, "vfio-dev", "vfio"+strconv.Itoa(w.vfioDev)), 0o755); err != nil {
		return err
	}
	w.vfioDev++
	if err := w.devNode("vfio/vfio"); err != nil {
		return err
	}
	return w.devNode("vfio/" + node)
}

func (w *writer) uio(dir string) error {
	n := "uio" + strconv.Itoa(w.uioDev)
	w.uioDev++
	if err := w.files(filepath.Join(dir, "uio", n), "name", "igb_uio"); err != nil {
		return err
	}
	return w.devNode(n)
}

func (w *writer) rdma(devDir string, pkeys []string) error {
	ib := "mlx5_" + strconv.Itoa(w.rdmaDev)
	w.rdmaDev++
	if err := w.files(filepath.Join(devDir, "infiniband", ib), "node_type", "1: CA"); err != nil {
		return err
	}
	if len(pkeys) > 0 {
		// The partition key table of port 1: one file per slot, unused
		// slots 0x0000, as the kernel shows it.
		for i, k := range append(slices.Clone(pkeys), "0x0000") {
			if err := w.files(filepath.Join(devDir, "infiniband", ib, "ports", "1", "pkeys"), strconv.Itoa(i), k); err != nil {
				return err
			}
		}
	}
	if err := w.link(w.sys("class/infiniband/"+ib), filepath.Join(devDir, "infiniband", ib)); err != nil {
		return err
	}
	n := strconv.Itoa(w.uverbs)
	w.uverbs++
	for class, names := range map[string][]string{"infiniband_verbs": {"uverbs" + n}, "infiniband_mad": {"umad" + n, "issm" + n}} {
		for _, name := range names {
			if err := w.files(filepath.Join(devDir, class, name), "ibdev", ib); err != nil {
				return err
			}
			if err := w.devNode("infiniband/" + name); err != nil {
				return err
			}
		}
	}
	return w.devNode("infiniband/rdma_cm")
}

func (w *writer) vdpa(parentDir, kind string) error {
	name := "vdpa" + strconv.Itoa(w.vdpaDev)
	dir := filepath.Join(parentDir, name)
	drv := map[string]string{"vhost": "vhost_vdpa", "virtio": "virtio_vdpa"}[kind]
	if drv == "" {
		return fmt.Errorf("unknown vDPA type %q (want vhost or virtio)", kind)
	}
	if err := w.files(dir, "uevent", "DRIVER="+drv); err != nil {
		return err
	}
	if err := w.driverLink(dir, "vdpa", drv, name); err != nil {
		return err
	}
	if kind == "vhost" {
		dev := "vhost-vdpa-" + strconv.Itoa(w.vdpaDev)
		if err := w.files(filepath.Join(dir, dev), "dev", "511:"+strconv.Itoa(w.vdpaDev)); err != nil {
			return err
		}
		if err := w.devNode(dev); err != nil {
			return err
		}
	}
	w.vdpaDev++
	return w.link(w.sys("bus/vdpa/devices/"+name), dir)
}

func (w *writer) auxDev(parentDir, name, driver string) error {
	dir := filepath.Join(parentDir, name)
	if err := w.files(dir, "uevent", "MODALIAS=auxiliary:"+strings.Join(strings.Split(name, ".")[:2], ".")); err != nil {
		return err
	}
	if err := w.driverLink(dir, "auxiliary", driver, name); err != nil {
		return err
	}
	return w.link(w.sys("bus/auxiliary/devices/"+name), dir)
}

func (w *writer) sf(pfDir string, pf PF, sf SF) error {
	name := fmt.Sprintf("mlx5_core.sf.%d", sf.ID)
	if err := w.auxDev(pfDir, name, "mlx5_core.sf"); err != nil {
		return err
	}
	dir := filepath.Join(pfDir, name)
	if err := w.files(dir, "sfnum", strconv.Itoa(sf.SFNum)); err != nil {
		return err
	}
	ifName := sf.IfName
	if ifName == "" {
		ifName = fmt.Sprintf("enp3s0f0s%d", sf.SFNum)
	}
	if err := w.netdev(dir, ifName, pf.LinkType, !pf.LinkDown, false, false); err != nil {
		return err
	}
	if sf.RDMA {
		if err := w.rdma(dir, nil); err != nil {
			return err
		}
	}
	if sf.VDPA != "" {
		return w.vdpa(dir, sf.VDPA)
	}
	return nil
}

// finish writes what spans devices: routes and devlink answers.
func (w *writer) finish() error {
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	v6 := ""
	slices.Sort(w.routes)
	for _, r := range w.routes {
		route += r + "\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
		route += r + "\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
		v6 += "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 " + r + "\n"
	}
	v6 += "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001 lo\n"
	if err := w.write(filepath.Join(w.root, "proc/net/route"), route); err != nil {
		return err
	}
	if err := w.write(filepath.Join(w.root, "proc/net/ipv6_route"), v6); err != nil {
		return err
	}
	for addr, st := range w.devlink {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := w.write(filepath.Join(w.root, "devlink", addr+".json"), string(b)); err != nil {
			return err
		}
	}
	for _, d := range []string{"bus/pci/devices", "bus/auxiliary/devices", "bus/vdpa/devices", "class/net"} {
		if err := os.MkdirAll(w.sys(d), 0o755); err != nil {
			return err
		}
	}
	for _, n := range []string{"vhost-net", "net/tun"} {
		if err := w.devNode(n); err != nil {
			return err
		}
	}
	if err := w.write(filepath.Join(w.root, Marker), "written by sriov-dra simulate\n"); err != nil {
		return err
	}
	return w.write(w.sys("bus/pci/drivers_probe"), "")
}

// devNode creates a /dev entry: a char device or an empty file.
func (w *writer) devNode(rel string) error {
	p := filepath.Join(w.root, "dev", rel)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if w.charDevices {
		// 1:3 is /dev/null: harmless if a test container opens it.
		return syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|3)
	}
	return os.WriteFile(p, nil, 0o644)
}

func itoa(i int) string { return strconv.Itoa(i) }
