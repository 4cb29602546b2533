package discovery

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/dynamic-resource-allocation/deviceattribute"
)

// linkTypes maps ARPHRD_* numbers (net/<if>/type) to the names the classic
// linkTypes selector uses.
var linkTypes = map[int]string{
	1:     "ether",
	24:    "ieee1394",
	32:    "infiniband",
	512:   "ppp",
	772:   "loopback",
	776:   "sit",
	65534: "none",
}

// fillNetdev sets the netdev attributes from the device's own netdev (its
// sysfs directory, "" when it has none), or, when that is not visible (moved
// into a pod's network namespace, or bound to a userspace driver), derives
// link type and state from its PF.
func (s *scan) fillNetdev(d *Device, dir string, pf *pciFunc) {
	id := d.ID()
	if dir != "" {
		d.IfName = path.Base(dir)
		if v, err := s.h.ReadSysStringAt(dir, "address"); err == nil {
			d.HardwareAddress = v
		}
		if v, err := s.h.ReadSysStringAt(dir, "operstate"); err == nil {
			d.OperState = v
		}
		if lt, err := s.readLinkType(dir); err != nil {
			s.skipAttr(id, AttrLinkType, err)
		} else {
			d.LinkType = lt
		}
		return
	}
	if pf == nil || len(pf.netdevs) == 0 || d.FunctionType == FunctionPF {
		return
	}
	dir = pf.netdevDir
	if lt, err := s.readLinkType(dir); err == nil {
		d.LinkType = lt
	}
	if v, err := s.h.ReadSysStringAt(dir, "operstate"); err == nil {
		d.OperState = v
	}
}

func (s *scan) readLinkType(netdevDir string) (string, error) {
	n, err := s.h.ReadSysIntAt(netdevDir, "type")
	if err != nil {
		return "", err
	}
	if lt, ok := linkTypes[n]; ok {
		return lt, nil
	}
	return "", fmt.Errorf("unknown link type %d", n)
}

// fillCommonPCI sets what every PCI-backed device has: NUMA node, IOMMU
// group, RDMA and uio devices, and the standard PCI attributes.
func (s *scan) fillCommonPCI(d *Device, f *pciFunc) {
	d.NUMANode, d.IOMMUGroup = -1, -1
	if f.has("numa_node") {
		n, err := s.h.ReadSysIntAt(f.dir, "numa_node")
		switch {
		case err != nil:
			s.skipAttr(f.addr, AttrNUMANode, err)
		case n < -1:
			s.skipAttr(f.addr, AttrNUMANode, fmt.Errorf("negative NUMA node %d", n))
		default:
			d.NUMANode = n
		}
	}
	if f.has("iommu_group") {
		s.fillIOMMU(d, f)
	}
	if f.has("acpi_index") {
		if v, err := s.h.ReadSysStringAt(f.dir, "acpi_index"); err == nil {
			d.AcpiIndex = v
		}
	}
	if f.has("infiniband") {
		s.fillRDMA(d, f.dir)
	}
	if f.has("uio") {
		if uio, _ := s.h.ListSysAt(f.dir, "uio"); len(uio) > 0 {
			d.UIODevice = uio[0]
		}
	}
	if pciAddressRE.MatchString(f.addr) {
		d.PCIBusID = f.addr
	} else {
		s.skipAttr(f.addr, AttrPCIBusID, fmt.Errorf("%q is not a PCI bus ID", f.addr))
	}
	d.PCIeRoot = s.pcieRoot(f)
}

// pciAddressRE is the extended BDF form deviceattribute accepts for pciBusID.
var pciAddressRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$`)

// pcieRoot asks deviceattribute once per parent bridge: functions behind the
// same bridge share their root complex, and the helper compiles a regexp
// and follows a link on every call.
func (s *scan) pcieRoot(f *pciFunc) string {
	parent := path.Dir(f.dir)
	s.mu.Lock()
	root, ok := s.roots[parent]
	s.mu.Unlock()
	if ok {
		return root
	}
	if a, err := deviceattribute.GetPCIeRootAttributeByPCIBusID(f.addr, s.attrOpts...); err == nil {
		root = *a.Value.StringValue
	} else {
		s.skipAttr(f.addr, AttrPCIeRoot, err)
	}
	s.mu.Lock()
	s.roots[parent] = root
	s.mu.Unlock()
	return root
}

func (s *scan) fillIOMMU(d *Device, f *pciFunc) {
	target, err := s.h.ReadSysLinkAt(f.dir, "iommu_group")
	if err != nil {
		s.skipAttr(f.addr, AttrIOMMUGroup, err)
		return
	}
	g, err := strconv.Atoi(path.Base(target))
	if err != nil {
		s.skipAttr(f.addr, AttrIOMMUGroup, fmt.Errorf("iommu_group link %q does not end in a number", target))
		return
	}
	d.IOMMUGroup = g
	if f.driver == "vfio-pci" {
		// Only a vfio device node depends on the group being a no-IOMMU one.
		name, _ := s.h.ReadSysString(path.Join("kernel/iommu_groups", path.Base(target), "name"))
		d.IOMMUNoIOMMU = name == "vfio-noiommu"
	}
}

// fillRDMA finds RDMA devices under a PCI or auxiliary device directory and
// the char devices that belong to them.
func (s *scan) fillRDMA(d *Device, devDir string) {
	ib, _ := s.h.ListSys(path.Join(devDir, "infiniband"))
	if len(ib) == 0 {
		return
	}
	d.RDMA = true
	d.RDMADevices = ib
	d.PKeys = s.pkeys(devDir, ib)
	for _, class := range []string{"infiniband_verbs", "infiniband_mad"} {
		names, _ := s.h.ListSys(path.Join(devDir, class))
		for _, n := range names {
			if strings.HasPrefix(n, "uverbs") || strings.HasPrefix(n, "umad") || strings.HasPrefix(n, "issm") {
				d.RDMACharDevices = append(d.RDMACharDevices, "infiniband/"+n)
			}
		}
	}
}

// pkeys reads the InfiniBand partition keys of the RDMA devices' ports
// (<dev>/infiniband/<ib>/ports/<n>/pkeys/<slot>), lower case, without the
// empty 0x0000 slots, sorted and each once.
func (s *scan) pkeys(devDir string, ibs []string) []string {
	seen := map[string]bool{}
	for _, ib := range ibs {
		dir := path.Join(devDir, "infiniband", ib, "ports")
		ports, _ := s.h.ListSys(dir)
		for _, port := range ports {
			slots, _ := s.h.ListSys(path.Join(dir, port, "pkeys"))
			for _, slot := range slots {
				v, err := s.h.ReadSysString(path.Join(dir, port, "pkeys", slot))
				if v = strings.ToLower(strings.TrimSpace(v)); err == nil && v != "" && v != "0x0000" {
					seen[v] = true
				}
			}
		}
	}
	if len(seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
