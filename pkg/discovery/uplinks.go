package discovery

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Uplinks are the PCI functions that carry the host's own traffic: those
// under an interface with a default route. They are never offered and never
// rebound.
type Uplinks struct {
	// Functions maps the PCI address of each uplink function to why it is
	// one. A VF that carries a default route brings its PF along: rebinding
	// the PF would take the VF down.
	Functions map[string]string
	// Unresolved lists default-route interfaces that could not be traced to
	// a PCI function (a tunnel, or a sysfs that does not say). While there
	// are any, no PF may be rebound: the uplink could be any of them.
	Unresolved []string
}

// Protects reports why a device must not be rebound, if it must not.
func (u Uplinks) Protects(d *Device) (string, bool) {
	if why, ok := u.Functions[d.PCIAddress]; ok && d.FunctionType != FunctionSF {
		return why, true
	}
	if len(u.Unresolved) > 0 && d.FunctionType == FunctionPF {
		return fmt.Sprintf("default-route interface %s cannot be traced to a device, so any PF may be the uplink", strings.Join(u.Unresolved, ", ")), true
	}
	return "", false
}

// maxUpperDepth bounds the walk from a bond, bridge or VLAN to its lower
// devices; real stacks are a few levels deep, a loop would be endless.
const maxUpperDepth = 8

var pciAddressComponentRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// FindUplinks traces every interface with an IPv4 or IPv6 default route to
// the PCI functions beneath it. It goes from the route to the hardware, so
// that whatever sits between them — a virtio device, a bond, team, bridge or
// VLAN — cannot hide the uplink.
func FindUplinks(_ context.Context, h Host) (Uplinks, error) {
	u := Uplinks{Functions: map[string]string{}}
	routes, err := h.DefaultRouteInterfaces()
	if err != nil {
		return u, fmt.Errorf("read default routes: %w", err)
	}
	names := make([]string, 0, len(routes))
	for n := range routes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, ifName := range names {
		found := map[string]bool{}
		traceNetdev(h, ifName, 0, found)
		if len(found) == 0 {
			u.Unresolved = append(u.Unresolved, ifName)
			continue
		}
		for addr := range found {
			u.add(addr, fmt.Sprintf("carries the default route (interface %s)", ifName))
			if pf, err := h.ResolveSysLink(path.Join("bus/pci/devices", addr, "physfn")); err == nil {
				u.add(path.Base(pf), fmt.Sprintf("is the PF of %s, which carries the default route (interface %s)", addr, ifName))
			}
		}
	}
	return u, nil
}

func (u *Uplinks) add(addr, why string) {
	if _, ok := u.Functions[addr]; !ok {
		u.Functions[addr] = why
	}
}

// traceNetdev adds to found the PCI functions beneath a network interface:
// its own device's function, or those of its lower devices.
func traceNetdev(h Host, ifName string, depth int, found map[string]bool) {
	if depth > maxUpperDepth {
		return
	}
	dir, err := h.ResolveSysLink(path.Join("class/net", ifName))
	if err != nil {
		return
	}
	if addr := pciFunctionOf(dir); addr != "" {
		found[addr] = true
		return
	}
	// A bond, team, bridge, VLAN or macvlan lists what it sits on as
	// lower_<name> links.
	entries, _ := h.ListSys(dir)
	for _, e := range entries {
		if lower, ok := strings.CutPrefix(e, "lower_"); ok {
			traceNetdev(h, lower, depth+1, found)
		}
	}
}

// pciFunctionOf returns the innermost PCI function on a sysfs device path
// ("devices/pci0000:00/0000:00:03.0/virtio2/net/eth0" -> "0000:00:03.0").
func pciFunctionOf(devPath string) string {
	parts := strings.Split(devPath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if pciAddressComponentRE.MatchString(parts[i]) {
			return parts[i]
		}
	}
	return ""
}
