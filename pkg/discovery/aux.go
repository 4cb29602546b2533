package discovery

import (
	"fmt"
	"path"
	"strings"
)

type vdpaInfo struct {
	kind     string // vhost or virtio
	vhostDev string // vhost-vdpa-N
}

// vdpaDrivers maps the vDPA bus driver to the classic vdpaType.
var vdpaDrivers = map[string]string{
	"vhost_vdpa":  "vhost",
	"virtio_vdpa": "virtio",
}

// readVDPA indexes vDPA devices by their parent (a VF's PCI address or an
// SF's auxiliary name) with one pass over the vdpa bus.
func (s *scan) readVDPA() map[string]vdpaInfo {
	out := map[string]vdpaInfo{}
	names, err := s.h.ListSys(vdpaDevicesDir)
	if err != nil {
		s.logger.Error(err, "Listing vDPA devices failed")
		return out
	}
	for _, n := range names {
		target, err := s.h.ResolveSysLink(path.Join(vdpaDevicesDir, n))
		if err != nil {
			s.skipAttr(n, AttrVDPAType, err)
			continue
		}
		parent := path.Base(path.Dir(target))
		drv, err := s.h.ReadSysLink(path.Join(target, "driver"))
		if err != nil {
			s.skipAttr(parent, AttrVDPAType, fmt.Errorf("vDPA device %s has no driver", n))
			continue
		}
		kind, ok := vdpaDrivers[path.Base(drv)]
		if !ok {
			s.skipAttr(parent, AttrVDPAType, fmt.Errorf("vDPA device %s: unknown driver %q", n, path.Base(drv)))
			continue
		}
		v := vdpaInfo{kind: kind}
		if kind == "vhost" {
			entries, _ := s.h.ListSys(target)
			for _, e := range entries {
				if strings.HasPrefix(e, "vhost-vdpa-") {
					v.vhostDev = e
				}
			}
		}
		out[parent] = v
	}
	return out
}

// auxDevices discovers subfunctions: auxiliary devices with an sfnum, whose
// parent is a known PCI function.
func (s *scan) auxDevices() []Device {
	names, err := s.h.ListSys(auxDevicesDir)
	if err != nil {
		s.logger.Error(err, "Listing auxiliary devices failed")
		return nil
	}
	var devs []Device
	for _, n := range names {
		dir, err := s.h.ResolveSysLink(path.Join(auxDevicesDir, n))
		if err != nil {
			s.skipDevice(n, err)
			continue
		}
		if !s.h.SysExists(path.Join(dir, "sfnum")) {
			continue // not a subfunction (e.g. mlx5_core.eth.0, mlx5_core.rdma.0)
		}
		parent := s.funcs[path.Base(path.Dir(dir))]
		if parent == nil {
			s.skipDevice(n, fmt.Errorf("parent %s is not a known network PCI function", path.Base(path.Dir(dir))))
			continue
		}
		d, err := s.auxDevice(n, dir, parent)
		if err != nil {
			s.skipDevice(n, err)
			continue
		}
		devs = append(devs, d)
	}
	return devs
}

func (s *scan) auxDevice(name, dir string, parent *pciFunc) (Device, error) {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return Device{}, fmt.Errorf("auxiliary device name %q is not <driver>.<type>.<id>", name)
	}
	sfnum, err := s.h.ReadSysIntAt(dir, "sfnum")
	if err != nil {
		return Device{}, fmt.Errorf("read sfnum: %w", err)
	}
	if sfnum < 0 {
		return Device{}, fmt.Errorf("sfnum %d is negative", sfnum)
	}
	d := Device{
		Name:         AuxDeviceName(name),
		FunctionType: FunctionSF,
		DeviceType:   DeviceTypeAuxNet,
		PCIAddress:   parent.addr,
		AuxName:      name,
		AuxType:      parts[len(parts)-2],
		SFNum:        sfnum,
		Vendor:       parent.vendor,
		DeviceID:     parent.device,
		Driver:       parent.driver,
		RootDevice:   parent.addr,
		PFName:       first(parent.netdevs),
		VFIndex:      -1,
		NUMANode:     -1,
		IOMMUGroup:   -1,
	}
	st := s.devlinkOf(parent)
	d.EswitchMode = st.EswitchMode
	d.PFLinkDown = s.pfLinkDown(parent)
	netdev := ""
	if netdevs, _ := s.h.ListSysAt(dir, "net"); len(netdevs) > 0 {
		netdev = path.Join(dir, "net", netdevs[0])
	}
	s.fillNetdev(&d, netdev, parent)
	s.fillRDMA(&d, dir)
	if n, err := s.h.ReadSysIntAt(parent.dir, "numa_node"); err == nil && n >= 0 {
		d.NUMANode = n
	}
	if v, ok := s.vdpa[name]; ok {
		d.VDPAType, d.VDPADevice = v.kind, v.vhostDev
	}
	return d, nil
}
