package discovery

import (
	"fmt"
	"path"
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

// fillNetdev sets the netdev attributes from the device's own netdev, or,
// when that is not visible (moved into a pod's network namespace, or bound to
// a userspace driver), derives link type and state from its PF.
func (s *scan) fillNetdev(d *Device, devDir, ifName string, pf *pciFunc) {
	id := d.ID()
	if ifName != "" {
		dir := path.Join(devDir, "net", ifName)
		d.IfName = ifName
		if v, err := s.h.ReadSysString(path.Join(dir, "address")); err == nil {
			d.HardwareAddress = v
		}
		if v, err := s.h.ReadSysString(path.Join(dir, "operstate")); err == nil {
			d.OperState = v
		}
		if lt, err := s.readLinkType(dir); err != nil {
			s.skipAttr(id, AttrLinkType, err)
		} else {
			d.LinkType = lt
		}
		return
	}
	if pf == nil || len(pf.netdevs) == 0 || pf.dir == devDir {
		return
	}
	dir := path.Join(pf.dir, "net", pf.netdevs[0])
	if lt, err := s.readLinkType(dir); err == nil {
		d.LinkType = lt
	}
	if v, err := s.h.ReadSysString(path.Join(dir, "operstate")); err == nil {
		d.OperState = v
	}
}

func (s *scan) readLinkType(netdevDir string) (string, error) {
	n, err := s.h.ReadSysInt(path.Join(netdevDir, "type"))
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
	if n, err := s.h.ReadSysInt(path.Join(f.dir, "numa_node")); err == nil {
		d.NUMANode = n
	} else if s.h.SysExists(path.Join(f.dir, "numa_node")) {
		s.skipAttr(f.addr, AttrNUMANode, err)
	}
	if d.NUMANode < -1 {
		s.skipAttr(f.addr, AttrNUMANode, fmt.Errorf("negative NUMA node %d", d.NUMANode))
		d.NUMANode = -1
	}
	if target, err := s.h.ReadSysLink(path.Join(f.dir, "iommu_group")); err == nil {
		if g, err := strconv.Atoi(path.Base(target)); err == nil {
			d.IOMMUGroup = g
			name, _ := s.h.ReadSysString(path.Join("kernel/iommu_groups", path.Base(target), "name"))
			d.IOMMUNoIOMMU = name == "vfio-noiommu"
		} else {
			s.skipAttr(f.addr, AttrIOMMUGroup, fmt.Errorf("iommu_group link %q does not end in a number", target))
		}
	}
	if v, err := s.h.ReadSysString(path.Join(f.dir, "acpi_index")); err == nil {
		d.AcpiIndex = v
	}
	s.fillRDMA(d, f.dir)
	if uio, _ := s.h.ListSys(path.Join(f.dir, "uio")); len(uio) > 0 {
		d.UIODevice = uio[0]
	}
	if a, err := deviceattribute.GetPCIBusIDAttribute(f.addr); err == nil {
		d.PCIBusID = *a.Value.StringValue
	} else {
		s.skipAttr(f.addr, AttrPCIBusID, err)
	}
	if a, err := deviceattribute.GetPCIeRootAttributeByPCIBusID(f.addr, s.attrOpts...); err == nil {
		d.PCIeRoot = *a.Value.StringValue
	} else {
		s.skipAttr(f.addr, AttrPCIeRoot, err)
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
	for _, class := range []string{"infiniband_verbs", "infiniband_mad"} {
		names, _ := s.h.ListSys(path.Join(devDir, class))
		for _, n := range names {
			if strings.HasPrefix(n, "uverbs") || strings.HasPrefix(n, "umad") || strings.HasPrefix(n, "issm") {
				d.RDMACharDevices = append(d.RDMACharDevices, "infiniband/"+n)
			}
		}
	}
}
