package v1alpha1

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Network configures the device's network. On a device with a kernel
// netdev it asks for the netdev to be moved into the pod's network
// namespace and configured there (the driver's --nri mode): the path that
// needs no Multus; a config without it leaves the netdev on the host for a
// CNI to take, as the classic plugin did. On a VF without a netdev
// (vfio-pci, uio: a DPDK pod, a VM) only the VF settings its PF holds apply
// (mac, vlan, vlanQoS, trust, spoofChk, minTxRate, maxTxRate, linkState),
// set when the claim is prepared and put back when it is unprepared.
type Network struct {
	// InterfaceName is the netdev's name in the pod; default net1, net2, ...
	// in the order of the pod's devices.
	InterfaceName string `json:"interfaceName,omitempty"`
	// MAC is set on the VF through its PF and on the netdev.
	MAC string `json:"mac,omitempty"`
	// VLAN (1-4094; 0 clears) and VLANQoS (0-7) are set on the VF through its PF.
	VLAN    *int `json:"vlan,omitempty"`
	VLANQoS *int `json:"vlanQoS,omitempty"`
	// MTU of the netdev in the pod.
	MTU *int `json:"mtu,omitempty"`
	// Trust and SpoofChk are the VF's trust and spoof-check settings on its PF.
	Trust    *bool `json:"trust,omitempty"`
	SpoofChk *bool `json:"spoofChk,omitempty"`
	// MinTxRate and MaxTxRate bound the VF's transmit rate in Mbps, set on
	// its PF (0: no bound).
	MinTxRate *int `json:"minTxRate,omitempty"`
	MaxTxRate *int `json:"maxTxRate,omitempty"`
	// LinkState is the VF's link as its PF reports it to the VF: auto
	// (follows the PF's), enable or disable.
	LinkState string `json:"linkState,omitempty"`
	// Addresses are static addresses with their prefix length ("10.1.0.5/24").
	Addresses []string `json:"addresses,omitempty"`
	// Routes are added in the pod through this interface.
	Routes []Route `json:"routes,omitempty"`
}

// Route is one route in the pod's network namespace.
type Route struct {
	// Destination is a prefix ("10.2.0.0/16", "0.0.0.0/0").
	Destination string `json:"destination"`
	// Gateway is the next hop; empty routes the prefix onto the link.
	Gateway string `json:"gateway,omitempty"`
}

// LinkStates are the values of linkState, as ip-link(8) names them.
var LinkStates = []string{"auto", "enable", "disable"}

// VFSettingsOnly reports whether n sets nothing but VF settings held by the
// PF: what a VF without a netdev can take.
func (n *Network) VFSettingsOnly() bool {
	return n.InterfaceName == "" && n.MTU == nil && n.Addresses == nil && n.Routes == nil
}

// Limits of the values the kernel takes.
const (
	maxIfNameLen = 15
	maxVLAN      = 4094
	maxVLANQoS   = 7
	minMTU       = 68
	maxMTU       = 65535
)

// Validate names the field and value of every problem; prefix is the
// section's path ("network").
func (n *Network) Validate(prefix string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, field, fmt.Sprintf(format, args...)))
	}
	if n.InterfaceName != "" {
		if why := ifNameProblem(n.InterfaceName); why != "" {
			bad("interfaceName", "%q %s", n.InterfaceName, why)
		}
	}
	if n.MAC != "" {
		if why := macProblem(n.MAC); why != "" {
			bad("mac", "%q %s", n.MAC, why)
		}
	}
	if n.VLAN != nil && (*n.VLAN < 0 || *n.VLAN > maxVLAN) {
		bad("vlan", "%d is not a VLAN ID (0-%d)", *n.VLAN, maxVLAN)
	}
	if n.VLANQoS != nil && (*n.VLANQoS < 0 || *n.VLANQoS > maxVLANQoS) {
		bad("vlanQoS", "%d is not a priority (0-%d)", *n.VLANQoS, maxVLANQoS)
	}
	if n.VLANQoS != nil && *n.VLANQoS != 0 && (n.VLAN == nil || *n.VLAN == 0) {
		bad("vlanQoS", "%d needs a vlan", *n.VLANQoS)
	}
	for field, v := range map[string]*int{"minTxRate": n.MinTxRate, "maxTxRate": n.MaxTxRate} {
		if v != nil && *v < 0 {
			bad(field, "%d is negative (Mbps; 0 is no bound)", *v)
		}
	}
	if n.MinTxRate != nil && n.MaxTxRate != nil && *n.MaxTxRate > 0 && *n.MinTxRate > *n.MaxTxRate {
		bad("minTxRate", "%d is above maxTxRate %d", *n.MinTxRate, *n.MaxTxRate)
	}
	if n.LinkState != "" && !slices.Contains(LinkStates, n.LinkState) {
		bad("linkState", "%q is not one of %s", n.LinkState, strings.Join(LinkStates, ", "))
	}
	if n.MTU != nil && (*n.MTU < minMTU || *n.MTU > maxMTU) {
		bad("mtu", "%d is out of range (%d-%d)", *n.MTU, minMTU, maxMTU)
	}
	for i, a := range n.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			bad(fmt.Sprintf("addresses[%d]", i), "%q is not an address with a prefix length like 10.1.0.5/24", a)
		}
	}
	for i, r := range n.Routes {
		dst, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			bad(fmt.Sprintf("routes[%d].destination", i), "%q is not a prefix like 10.2.0.0/16", r.Destination)
			continue
		}
		if r.Gateway == "" {
			continue
		}
		gw, err := netip.ParseAddr(r.Gateway)
		switch {
		case err != nil:
			bad(fmt.Sprintf("routes[%d].gateway", i), "%q is not an IP address", r.Gateway)
		case gw.Is4() != dst.Addr().Is4():
			bad(fmt.Sprintf("routes[%d].gateway", i), "%q is not of the destination's family (%s)", r.Gateway, r.Destination)
		}
	}
	return errors.Join(errs...)
}

func ifNameProblem(s string) string {
	switch {
	case len(s) > maxIfNameLen:
		return fmt.Sprintf("is longer than %d characters", maxIfNameLen)
	case s == "." || s == "..":
		return "is not an interface name"
	case s == "lo":
		return "is the pod's loopback interface"
	case strings.ContainsAny(s, "/: \t\n"):
		return "holds a character an interface name cannot (/, :, white space)"
	}
	return ""
}

func macProblem(s string) string {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil || len(hw) != 6:
		return "is not a MAC address like 02:00:00:00:00:01"
	case hw[0]&1 == 1:
		return "is a multicast address"
	case hw.String() == "00:00:00:00:00:00":
		return "is the zero address"
	}
	return ""
}

// merge returns n with the fields set in later overriding it; lists are
// replaced whole.
func (n *Network) merge(later *Network) *Network {
	if later == nil {
		return n
	}
	if n == nil {
		c := *later
		return &c
	}
	out := *n
	if later.InterfaceName != "" {
		out.InterfaceName = later.InterfaceName
	}
	if later.MAC != "" {
		out.MAC = later.MAC
	}
	setIf(&out.VLAN, later.VLAN)
	setIf(&out.VLANQoS, later.VLANQoS)
	setIf(&out.MTU, later.MTU)
	setIf(&out.Trust, later.Trust)
	setIf(&out.SpoofChk, later.SpoofChk)
	setIf(&out.MinTxRate, later.MinTxRate)
	setIf(&out.MaxTxRate, later.MaxTxRate)
	if later.LinkState != "" {
		out.LinkState = later.LinkState
	}
	if later.Addresses != nil {
		out.Addresses = later.Addresses
	}
	if later.Routes != nil {
		out.Routes = later.Routes
	}
	return &out
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// NormalizedMAC is MAC in the kernel's lower-case form ("" when unset).
func (n *Network) NormalizedMAC() string {
	if n == nil || n.MAC == "" {
		return ""
	}
	hw, err := net.ParseMAC(n.MAC)
	if err != nil {
		return n.MAC
	}
	return hw.String()
}
