package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrLinkGone marks a netdev found neither in a pod's network namespace nor
// in the host's: a virtual one destroyed with the namespace, or a device
// removed.
var ErrLinkGone = errors.New("netdev not found")

// LinkState is what a netdev looked like on the host before it went into a
// pod, to put it back as it was.
type LinkState struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu"`
	Up    bool   `json:"up"`
}

// PodLink is how a netdev is set up in a pod's network namespace.
type PodLink struct {
	// NetNS is the namespace's path (as the runtime gives it).
	NetNS string
	Name  string
	MAC   string
	// MACOnPF says MAC was set on the VF through its PF: a VF driver that
	// refuses to change the netdev's MAC itself (igbvf) takes it at its
	// next reset.
	MACOnPF   bool
	MTU       int
	Addresses []netip.Prefix
	Routes    []PodRoute
}

// PodRoute is a route through the pod's interface; a zero Gateway routes
// onto the link.
type PodRoute struct {
	Destination netip.Prefix
	Gateway     netip.Addr
}

// StepError names the step of moving a netdev that failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return &StepError{Step: name, Err: err}
}

// handleAt opens a netlink handle in the namespace at path (empty: the
// host's).
func (h *Host) handleAt(path string) (*netlink.Handle, netns.NsHandle, error) {
	if path == "" {
		path = h.netNS
	}
	if path == "" {
		path = "/proc/self/ns/net"
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(ns), &fs); err == nil && fs.Type != unix.NSFS_MAGIC {
		ns.Close()
		// The runtime's bind mount did not reach this mount namespace.
		return nil, 0, fmt.Errorf("%s is not a network namespace here: is the runtime's netns directory mounted into the driver's container with HostToContainer propagation (chart value nri.netnsDir)?", path)
	}
	// Only rtnetlink: a kernel without XFRM refuses the other families.
	hd, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, 0, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return hd, ns, nil
}

// withHostLink calls fn with the host's netdev name; what names it in an
// error ("netdev", "PF").
func (h *Host) withHostLink(name, what string, fn func(*netlink.Handle, netlink.Link) error) error {
	hd, ns, err := h.handleAt("")
	if err != nil {
		return err
	}
	defer closeBoth(hd, ns)
	l, err := hd.LinkByName(name)
	if _, gone := errors.AsType[netlink.LinkNotFoundError](err); gone {
		return fmt.Errorf("%s %s: %w", what, name, ErrLinkGone)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	}
	return fn(hd, l)
}

// HostLink reads a netdev of the host's namespace.
func (h *Host) HostLink(name string) (st LinkState, err error) {
	err = h.withHostLink(name, "netdev", func(_ *netlink.Handle, l netlink.Link) error {
		st = stateOf(l)
		return nil
	})
	return st, err
}

func stateOf(l netlink.Link) LinkState {
	a := l.Attrs()
	return LinkState{Index: a.Index, Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
}

func closeBoth(hd *netlink.Handle, ns netns.NsHandle) {
	hd.Close()
	ns.Close()
}

// MoveLinkToPod moves the host's netdev hostName into the pod's namespace,
// renames it, sets its MAC, MTU, addresses and routes and brings it up. It
// returns the netdev's state before. On failure the netdev is put back on
// the host as it was, and the error names the step.
func (h *Host) MoveLinkToPod(hostName string, p PodLink) (LinkState, error) {
	hostH, hostNS, err := h.handleAt("")
	if err != nil {
		return LinkState{}, err
	}
	defer closeBoth(hostH, hostNS)
	l, err := hostH.LinkByName(hostName)
	if err != nil {
		return LinkState{}, step("find netdev "+hostName, err)
	}
	orig := stateOf(l)
	podH, podNS, err := h.handleAt(p.NetNS)
	if err != nil {
		return orig, step("open the pod's network namespace", err)
	}
	defer closeBoth(podH, podNS)
	if err := hostH.LinkSetNsFd(l, int(podNS)); err != nil {
		return orig, step("move into the pod's network namespace", err)
	}
	if current, err := configureInPod(podH, hostName, p); err != nil {
		if rerr := h.MoveLinkToHost(p.NetNS, current, orig); rerr != nil {
			return orig, errors.Join(err, fmt.Errorf("putting %s back: %w", hostName, rerr))
		}
		return orig, err
	}
	return orig, nil
}

// configureInPod sets the netdev up in the pod; it returns the name the
// netdev has there, also on failure.
func configureInPod(hd *netlink.Handle, hostName string, p PodLink) (string, error) {
	name, err := renameInPod(hd, hostName, p.Name)
	if err != nil {
		return name, err
	}
	return name, setUpInPod(hd, name, p)
}

func renameInPod(hd *netlink.Handle, hostName, podName string) (string, error) {
	l, err := hd.LinkByName(hostName)
	if err != nil {
		return hostName, step("find netdev in the pod", err)
	}
	if podName == "" || podName == hostName {
		return hostName, nil
	}
	if err := hd.LinkSetName(l, podName); err != nil {
		return hostName, step("rename to "+podName, err)
	}
	return podName, nil
}

func setUpInPod(hd *netlink.Handle, name string, p PodLink) error {
	l, err := hd.LinkByName(name)
	if err != nil {
		return step("find netdev in the pod", err)
	}
	if err := setMAC(hd, l, p.MAC, p.MACOnPF); err != nil {
		return step("set MAC "+p.MAC, err)
	}
	if p.MTU != 0 {
		if err := hd.LinkSetMTU(l, p.MTU); err != nil {
			return step(fmt.Sprintf("set MTU %d", p.MTU), err)
		}
	}
	for _, a := range p.Addresses {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			// No duplicate address detection: a static address is usable at once.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := hd.AddrAdd(l, addr); err != nil {
			return step("add address "+a.String(), err)
		}
	}
	if err := hd.LinkSetUp(l); err != nil {
		return step("bring up", err)
	}
	for _, r := range p.Routes {
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: r.Destination.Addr().AsSlice(), Mask: net.CIDRMask(r.Destination.Bits(), r.Destination.Addr().BitLen())}}
		if r.Gateway.IsValid() {
			rt.Gw = r.Gateway.AsSlice()
		}
		if err := hd.RouteAdd(rt); err != nil {
			return step("add route "+r.Destination.String(), err)
		}
	}
	return nil
}

// setMAC sets the netdev's MAC; with viaReset, a refusal (the VF driver
// defers to the PF's setting) is answered by a reset of the VF, which takes
// the PF's MAC, and is an error only if that is not want.
func setMAC(hd *netlink.Handle, l netlink.Link, want string, viaReset bool) error {
	if want == "" || l.Attrs().HardwareAddr.String() == want {
		return nil
	}
	mac, err := net.ParseMAC(want)
	if err != nil {
		return err
	}
	err = hd.LinkSetHardwareAddr(l, mac)
	if err == nil || !viaReset {
		return err
	}
	// The VF's driver resets when its netdev goes down, and asks the PF
	// for its MAC then.
	if uerr := hd.LinkSetUp(l); uerr != nil {
		return errors.Join(err, uerr)
	}
	if derr := hd.LinkSetDown(l); derr != nil {
		return errors.Join(err, derr)
	}
	now, lerr := hd.LinkByIndex(l.Attrs().Index)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	if got := now.Attrs().HardwareAddr.String(); got != want {
		return fmt.Errorf("%w; after a reset the netdev still has %s", err, got)
	}
	return nil
}

// MoveLinkToHost puts a netdev that MoveLinkToPod moved back on the host
// under its original name, MAC, MTU and up state; put back the VF's
// settings on its PF first. It looks in the pod's
// namespace (when it still exists) under podName, then on the host (a
// physical netdev returns there when its namespace is destroyed) under
// either name. A netdev found nowhere is ErrLinkGone. Doing it twice is
// harmless.
func (h *Host) MoveLinkToHost(netNS, podName string, orig LinkState) error {
	hostH, hostNS, err := h.handleAt("")
	if err != nil {
		return err
	}
	defer closeBoth(hostH, hostNS)
	if err := h.leavePod(hostH, hostNS, netNS, podName, orig); err != nil {
		return err
	}
	l := findLink(hostH, orig.Index, orig.Name, podName)
	if l == nil {
		return fmt.Errorf("%s (%s in the pod): %w", orig.Name, podName, ErrLinkGone)
	}
	return restoreOnHost(hostH, l, orig)
}

// leavePod moves the netdev from the pod's namespace to the host's when
// both it and the namespace are still there.
func (h *Host) leavePod(hostH *netlink.Handle, hostNS netns.NsHandle, netNS, podName string, orig LinkState) error {
	if netNS == "" {
		return nil
	}
	if _, err := os.Stat(netNS); err != nil {
		return nil
	}
	podH, podNS, err := h.handleAt(netNS)
	if err != nil {
		// Unmounted while we looked: the kernel returns a physical netdev.
		return nil
	}
	defer closeBoth(podH, podNS)
	if same, err := sameNamespace(hostNS, podNS); err != nil || same {
		return err
	}
	l := findLink(podH, orig.Index, podName, orig.Name)
	if l == nil {
		return nil
	}
	if err := podH.LinkSetDown(l); err != nil {
		return step("take down in the pod", err)
	}
	if l.Attrs().Name != orig.Name {
		// Renamed first: the pod's name may be taken on the host.
		if err := podH.LinkSetName(l, orig.Name); err != nil {
			return step("rename back to "+orig.Name, err)
		}
	}
	return step("move back to the host's network namespace", podH.LinkSetNsFd(l, int(hostNS)))
}

func sameNamespace(a, b netns.NsHandle) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a), &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(int(b), &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// findLink finds the netdev that went into a pod by one of its names,
// preferring the one that kept its index (a move keeps it when free): a
// pod can hold a netdev of its own under a name it was to get.
func findLink(hd *netlink.Handle, index int, names ...string) netlink.Link {
	if l, err := hd.LinkByIndex(index); err == nil && slices.Contains(names, l.Attrs().Name) {
		return l
	}
	for _, n := range names {
		if n == "" {
			continue
		}
		if l, err := hd.LinkByName(n); err == nil {
			return l
		}
	}
	return nil
}

func restoreOnHost(hd *netlink.Handle, l netlink.Link, orig LinkState) error {
	a := l.Attrs()
	if a.Name != orig.Name {
		if err := hd.LinkSetDown(l); err != nil {
			return step("take down", err)
		}
		if err := hd.LinkSetName(l, orig.Name); err != nil {
			return step("rename back to "+orig.Name, err)
		}
	}
	// The PF's settings are put back first: a VF driver that refuses to
	// change its MAC takes the original from the PF at a reset.
	if err := setMAC(hd, l, orig.MAC, true); err != nil {
		return step("restore MAC "+orig.MAC, err)
	}
	if orig.MTU != 0 && a.MTU != orig.MTU {
		if err := hd.LinkSetMTU(l, orig.MTU); err != nil {
			return step(fmt.Sprintf("restore MTU %d", orig.MTU), err)
		}
	}
	if orig.Up {
		return step("bring up", hd.LinkSetUp(l))
	}
	return nil
}

// PodLinkAddrs lists the addresses of a netdev in a pod's namespace (for
// the claim's status, as the kernel shows them).
func (h *Host) PodLinkAddrs(netNS, name string) (mac string, addrs []string, err error) {
	hd, ns, err := h.handleAt(netNS)
	if err != nil {
		return "", nil, err
	}
	defer closeBoth(hd, ns)
	l, err := hd.LinkByName(name)
	if err != nil {
		return "", nil, fmt.Errorf("netdev %s in %s: %w", name, filepath.Base(netNS), err)
	}
	list, err := hd.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return "", nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, a := range list {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		addrs = append(addrs, fmt.Sprintf("%s/%d", a.IP, ones))
	}
	return l.Attrs().HardwareAddr.String(), addrs, nil
}
