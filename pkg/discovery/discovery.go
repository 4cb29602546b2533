package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// Host is what discovery reads; *host.Host implements it.
type Host interface {
	ReadSysString(rel string) (string, error)
	ReadSysInt(rel string) (int, error)
	ReadSysLink(rel string) (string, error)
	ResolveSysLink(rel string) (string, error)
	ListSys(rel string) ([]string, error)
	// The ...At forms take the directory and the name in it apart, so
	// that the thousands of attribute reads of a large host join no paths.
	ReadSysStringAt(dir, name string) (string, error)
	ReadSysIntAt(dir, name string) (int, error)
	ReadSysLinkAt(dir, name string) (string, error)
	ResolveSysLinkAt(dir, name string) (string, error)
	ListSysAt(dir, name string) ([]string, error)
	SysExists(rel string) bool
	DefaultRouteInterfaces() (map[string]bool, error)
	Devlink(pciAddress string) (host.DevlinkState, error)
	SysFS() fs.ReadLinkFS
}

const (
	pciDevicesDir  = "bus/pci/devices"
	auxDevicesDir  = "bus/auxiliary/devices"
	vdpaDevicesDir = "bus/vdpa/devices"

	classNetwork     = 0x02
	classAccelerator = 0x12
)

// pciFunc is what discovery learns about one PCI function before deciding
// whether it is a device.
type pciFunc struct {
	addr    string
	dir     string // sysfs-relative real path (devices/pci.../<addr>)
	class   int
	vendor  string
	device  string
	driver  string
	sriovPF bool // has sriov_totalvfs
	numVFs  int
	hasVF   bool // at least one valid virtfn link
	physfn  string
	// physfnErr is set when the function has a physfn link that cannot be followed.
	physfnErr error
	netdevs   []string
	// netdevDir is the sysfs directory of the first netdev, or "": under
	// dir/net, or under a child device (dir/virtio2/net) for a virtio NIC.
	netdevDir string
	entries   []string // sorted names in dir
	devlink   *host.DevlinkState
	// linkDown caches the PF's link state for this run (nil: not read yet).
	linkDown *bool
}

// scan holds one discovery run's working state.
type scan struct {
	ctx      context.Context
	logger   klog.Logger
	h        Host
	funcs    map[string]*pciFunc
	vfIndex  map[string]int
	vdpa     map[string]vdpaInfo // parent name -> vdpa device
	uplinks  Uplinks
	attrOpts []deviceattribute.MachineModifier
	// mu guards problems, roots and the PFs' devlink cache, which the
	// parallel per-device workers share.
	mu       sync.Mutex
	roots    map[string]string // parent dir -> PCIe root
	problems []Problem
	excluded []Exclusion
}

// Discover reads the host once and returns its inventory. Devices or
// attributes that cannot be read are skipped, logged and listed in the
// inventory's Problems; only an unreadable PCI device list fails the call.
func Discover(ctx context.Context, h Host) (*Inventory, error) {
	s := &scan{
		ctx:      ctx,
		logger:   klog.FromContext(ctx),
		h:        h,
		roots:    map[string]string{},
		attrOpts: []deviceattribute.MachineModifier{deviceattribute.WithFS(h.SysFS())},
	}
	uplinks, err := FindUplinks(ctx, h)
	if err != nil {
		// Fail closed: nothing can be known to be safe to rebind.
		uplinks.Unresolved = append(uplinks.Unresolved, "(route table unreadable)")
		s.problems = append(s.problems, Problem{Device: "host", Err: err})
	}
	for _, ifName := range uplinks.Unresolved {
		s.problems = append(s.problems, Problem{Device: "host", Attribute: "uplink",
			Err: fmt.Errorf("default-route interface %s cannot be traced to a PCI device; no PF will be rebound until it can", ifName)})
	}
	s.uplinks = uplinks

	addrs, err := h.ListSys(pciDevicesDir)
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	found := make([]*pciFunc, len(addrs))
	parallel(len(addrs), func(i int) { found[i] = s.readFunc(addrs[i]) })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Sized once: on a large host these maps hold thousands of functions,
	// and growing them copies each several times.
	n := 0
	for _, f := range found {
		if f != nil {
			n++
		}
	}
	s.funcs, s.vfIndex = make(map[string]*pciFunc, n), make(map[string]int, n)
	for _, f := range found {
		if f != nil {
			s.funcs[f.addr] = f
		}
	}
	s.indexVFs()
	s.vdpa = s.readVDPA()

	devs := make([]Device, len(found))
	kept := make([]bool, len(found))
	parallel(len(found), func(i int) {
		if f := found[i]; f != nil && s.funcs[f.addr] == f {
			devs[i], kept[i] = s.pciDevice(f)
		}
	})
	n = 0
	for i := range devs {
		if kept[i] {
			devs[n] = devs[i]
			n++
		}
	}
	devs = devs[:n]
	devs = append(devs, s.auxDevices()...)
	slices.SortStableFunc(s.problems, func(a, b Problem) int { return strings.Compare(a.Device, b.Device) })
	slices.SortFunc(s.excluded, func(a, b Exclusion) int { return strings.Compare(a.PCIAddress, b.PCIAddress) })
	inv := newInventory(devs, s.problems)
	inv.excluded, inv.uplinks = s.excluded, s.uplinks
	return inv, nil
}

func (s *scan) skipDevice(dev string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, Problem{Device: dev, Err: err})
	s.logger.V(4).Info("Skipping device", "device", dev, "err", err)
}

func (s *scan) exclude(f *pciFunc, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.excluded = append(s.excluded, Exclusion{PCIAddress: f.addr, IfName: first(f.netdevs), Reason: reason})
}

func (s *scan) skipAttr(dev, attr string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, Problem{Device: dev, Attribute: attr, Err: err})
	s.logger.V(4).Info("Skipping device attribute", "device", dev, "attribute", attr, "err", err)
}

// readFunc reads the identity of one PCI function, or returns nil when it is
// not a network or accelerator function or cannot be identified.
func (s *scan) readFunc(addr string) *pciFunc {
	link := path.Join(pciDevicesDir, addr)
	class, err := s.h.ReadSysStringAt(link, "class")
	if err != nil {
		s.skipDevice(addr, fmt.Errorf("read class: %w", err))
		return nil
	}
	c, err := strconv.ParseUint(strings.TrimPrefix(class, "0x"), 16, 32)
	if err != nil {
		s.skipDevice(addr, fmt.Errorf("class %q is not hexadecimal", class))
		return nil
	}
	base := int(c >> 16)
	if base != classNetwork && base != classAccelerator {
		return nil
	}
	f := &pciFunc{addr: addr, class: base}
	if f.dir, err = s.h.ResolveSysLinkAt(pciDevicesDir, addr); err != nil {
		s.skipDevice(addr, err)
		return nil
	}
	// One listing of the device directory answers every "does it have X"
	// question below without a failed lookup per absent attribute.
	if f.entries, err = s.h.ListSys(f.dir); err != nil {
		s.skipDevice(addr, fmt.Errorf("list %s: %w", f.dir, err))
		return nil
	}
	if f.vendor, err = s.readHexID(f.dir, "vendor"); err != nil {
		s.skipDevice(addr, err)
		return nil
	}
	if f.device, err = s.readHexID(f.dir, "device"); err != nil {
		s.skipDevice(addr, err)
		return nil
	}
	if f.has("driver") {
		if drv, err := s.h.ReadSysLinkAt(f.dir, "driver"); err == nil {
			f.driver = path.Base(drv)
		}
	}
	if f.has("sriov_totalvfs") {
		f.sriovPF = true
		if n, err := s.h.ReadSysIntAt(f.dir, "sriov_numvfs"); err == nil {
			f.numVFs = n
		} else {
			s.skipAttr(addr, "sriov_numvfs", err)
		}
	}
	if f.has("physfn") {
		pf, err := s.h.ResolveSysLinkAt(f.dir, "physfn")
		if err != nil {
			f.physfnErr = err
		} else {
			f.physfn = path.Base(pf)
		}
	}
	f.findNetdevs(s.h)
	return f
}

// findNetdevs finds the function's netdevs: under net/, or for a virtio
// NIC under its virtio child device (virtioN/net/).
func (f *pciFunc) findNetdevs(h Host) {
	for _, e := range f.entries {
		dir := ""
		switch {
		case e == "net":
			dir = "net"
		case strings.HasPrefix(e, "virtio"):
			dir = path.Join(e, "net")
		default:
			continue
		}
		if names, _ := h.ListSysAt(f.dir, dir); len(names) > 0 {
			f.netdevs, f.netdevDir = names, path.Join(f.dir, dir, names[0])
			return
		}
	}
}

// has reports whether the function's sysfs directory has an entry.
func (f *pciFunc) has(name string) bool {
	_, ok := slices.BinarySearch(f.entries, name)
	return ok
}

// readHexID reads a vendor or device ID file ("0x8086") as "8086".
func (s *scan) readHexID(dir, file string) (string, error) {
	v, err := s.h.ReadSysStringAt(dir, file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	id := strings.ToLower(strings.TrimPrefix(v, "0x"))
	if _, err := strconv.ParseUint(id, 16, 16); err != nil || len(id) != 4 {
		return "", fmt.Errorf("%s %q is not a 16-bit hexadecimal ID", file, v)
	}
	return id, nil
}

// indexVFs follows every PF's virtfn links once, keeping only links whose
// target points back through physfn, so a corrupt or looping tree cannot
// make a function the VF of the wrong PF (or of itself).
func (s *scan) indexVFs() {
	for _, f := range s.funcs {
		if f.physfn != "" && (f.numVFs > 0 || s.hasVirtfn(f)) {
			s.skipDevice(f.addr, errors.New("function has both a physfn link and VFs of its own (virtfn loop)"))
			delete(s.funcs, f.addr)
		}
	}
	for _, f := range s.funcs {
		if !f.sriovPF && f.numVFs == 0 {
			continue
		}
		for _, e := range f.entries {
			idx, ok := strings.CutPrefix(e, "virtfn")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(idx)
			if err != nil {
				continue
			}
			// Any virtfn link makes the PF a VF parent, as in the classic
			// plugin, even if the VF itself turns out unusable.
			f.hasVF = true
			target, err := s.h.ResolveSysLinkAt(f.dir, e)
			if err != nil {
				s.skipAttr(f.addr, e, err)
				continue
			}
			vf := s.funcs[path.Base(target)]
			if vf == nil {
				continue // not a network/accelerator function, or skipped already
			}
			if vf.physfn != f.addr {
				s.skipAttr(f.addr, e, fmt.Errorf("virtfn target %s does not point back (physfn %q)", vf.addr, vf.physfn))
				continue
			}
			s.vfIndex[vf.addr] = n
		}
	}
}

func (s *scan) hasVirtfn(f *pciFunc) bool {
	for _, e := range f.entries {
		if strings.HasPrefix(e, "virtfn") {
			return true
		}
	}
	return false
}

// pciDevice turns a PCI function into a device, or says why it is none.
func (s *scan) pciDevice(f *pciFunc) (Device, bool) {
	isVF := f.physfn != "" || f.physfnErr != nil
	if why, ok := s.uplinks.Functions[f.addr]; ok {
		s.exclude(f, "uplink: "+why)
		return Device{}, false
	}
	if !isVF && (f.hasVF || f.numVFs > 0) {
		s.exclude(f, fmt.Sprintf("PF with %d VFs enabled: its VFs are offered", f.numVFs))
		return Device{}, false
	}
	d := Device{
		Name:       PCIDeviceName(f.addr),
		PCIAddress: f.addr,
		Vendor:     f.vendor,
		DeviceID:   f.device,
		Driver:     f.driver,
		VFIndex:    -1,
		SFNum:      -1,
		DeviceType: DeviceTypeNet,
	}
	if f.class == classAccelerator {
		d.DeviceType = DeviceTypeAccelerator
	}
	var pf *pciFunc
	if isVF {
		d.FunctionType = FunctionVF
		if f.physfnErr != nil {
			s.skipAttr(f.addr, AttrRootDevice, f.physfnErr)
		} else if pf = s.funcs[f.physfn]; pf == nil {
			s.skipAttr(f.addr, AttrRootDevice, fmt.Errorf("physfn %s is not a known network PCI function (dangling link?)", f.physfn))
		} else if idx, ok := s.vfIndex[f.addr]; ok {
			d.VFIndex = idx
		} else {
			s.skipAttr(f.addr, AttrVFIndex, fmt.Errorf("PF %s has no virtfn link to it", f.physfn))
		}
	} else {
		d.FunctionType = FunctionPF
		pf = f
	}
	if pf != nil {
		d.RootDevice = pf.addr
		d.PFName = first(pf.netdevs)
		st := s.devlinkOf(pf)
		d.EswitchMode = st.EswitchMode
		d.DDPProfile = st.DDPProfile
		if d.DeviceType == DeviceTypeNet {
			d.PFLinkDown = s.pfLinkDown(pf)
		}
	}
	s.fillNetdev(&d, f.netdevDir, pf)
	s.fillCommonPCI(&d, f)
	if v, ok := s.vdpa[f.addr]; ok {
		d.VDPAType, d.VDPADevice = v.kind, v.vhostDev
	}
	return d, true
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// devlinkOf asks devlink about a PF once per run.
func (s *scan) devlinkOf(pf *pciFunc) host.DevlinkState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pf.devlink != nil {
		return *pf.devlink
	}
	st, err := s.h.Devlink(pf.addr)
	if err != nil && !errors.Is(err, host.ErrNoDevlink) {
		s.problems = append(s.problems, Problem{Device: pf.addr, Attribute: AttrEswitchMode, Err: err})
		s.logger.V(4).Info("Skipping device attribute", "device", pf.addr, "attribute", AttrEswitchMode, "err", err)
	}
	pf.devlink = &st
	return st
}

// pfLinkDown reads a PF's link state once per run: down when its netdev's
// operstate says so, or its carrier is 0 or cannot be read (the kernel
// refuses to read carrier while the interface is administratively down). A
// PF without a visible netdev has no known link, and is not down.
func (s *scan) pfLinkDown(pf *pciFunc) bool {
	s.mu.Lock()
	cached := pf.linkDown
	s.mu.Unlock()
	if cached != nil {
		return *cached
	}
	down := false
	if dir := pf.netdevDir; dir != "" {
		switch op, _ := s.h.ReadSysStringAt(dir, "operstate"); op {
		case "down", "lowerlayerdown", "notpresent":
			down = true
		default:
			carrier, err := s.h.ReadSysStringAt(dir, "carrier")
			down = err != nil || carrier == "0"
		}
	}
	s.mu.Lock()
	pf.linkDown = &down
	s.mu.Unlock()
	return down
}

// parallel runs fn for 0..n-1 on a few workers. Discovery is bound by
// sysfs syscalls, which run in parallel on every core.
func parallel(n int, fn func(i int)) {
	workers := min(2*runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
