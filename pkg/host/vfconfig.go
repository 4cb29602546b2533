package host

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// VFConfig is a VF's administrative settings held by its PF; nil fields are
// left as they are.
type VFConfig struct {
	MAC      *string `json:"mac,omitempty"`
	VLAN     *int    `json:"vlan,omitempty"`
	QoS      *int    `json:"qos,omitempty"`
	Trust    *bool   `json:"trust,omitempty"`
	SpoofChk *bool   `json:"spoofChk,omitempty"`
	// MinTxRate and MaxTxRate are in Mbps (0: no bound); the kernel sets
	// the two together.
	MinTxRate *int `json:"minTxRate,omitempty"`
	MaxTxRate *int `json:"maxTxRate,omitempty"`
	// LinkState is auto, enable or disable.
	LinkState *string `json:"linkState,omitempty"`
}

// Empty reports whether c sets nothing.
func (c VFConfig) Empty() bool {
	return c.MAC == nil && c.VLAN == nil && c.QoS == nil && c.Trust == nil && c.SpoofChk == nil &&
		c.MinTxRate == nil && c.MaxTxRate == nil && c.LinkState == nil
}

// The kernel's VF link states (IFLA_VF_LINK_STATE_*), as ip-link(8) names them.
var vfLinkStates = []string{"auto", "enable", "disable"}

// VFState is all of a VF's settings on its PF.
type VFState struct {
	MAC      string `json:"mac"`
	VLAN     int    `json:"vlan"`
	QoS      int    `json:"qos"`
	Trust    bool   `json:"trust"`
	SpoofChk bool   `json:"spoofChk"`
	// MinTxRate and MaxTxRate: zero values are left out, so that a
	// simulated VF's file written before they existed reads the same.
	MinTxRate int    `json:"minTxRate,omitempty"`
	MaxTxRate int    `json:"maxTxRate,omitempty"`
	LinkState string `json:"linkState,omitempty"`
}

// Normalized is s with the kernel's defaults filled in (link state auto).
func (s VFState) Normalized() VFState {
	if s.LinkState == "" {
		s.LinkState = "auto"
	}
	return s
}

// Restore is the config that puts back, from s, the settings c changes.
func (s VFState) Restore(c VFConfig) VFConfig {
	var r VFConfig
	if c.MAC != nil {
		r.MAC = &s.MAC
	}
	if c.VLAN != nil || c.QoS != nil {
		r.VLAN, r.QoS = &s.VLAN, &s.QoS
	}
	if c.Trust != nil {
		r.Trust = &s.Trust
	}
	if c.SpoofChk != nil {
		r.SpoofChk = &s.SpoofChk
	}
	if c.MinTxRate != nil || c.MaxTxRate != nil {
		r.MinTxRate, r.MaxTxRate = &s.MinTxRate, &s.MaxTxRate
	}
	if c.LinkState != nil {
		ls := s.Normalized().LinkState
		r.LinkState = &ls
	}
	return r
}

// Apply is s with c's settings.
func (s VFState) Apply(c VFConfig) VFState {
	if c.MAC != nil {
		s.MAC = *c.MAC
	}
	if c.VLAN != nil {
		s.VLAN = *c.VLAN
	}
	if c.QoS != nil {
		s.QoS = *c.QoS
	}
	if c.Trust != nil {
		s.Trust = *c.Trust
	}
	if c.SpoofChk != nil {
		s.SpoofChk = *c.SpoofChk
	}
	if c.MinTxRate != nil {
		s.MinTxRate = *c.MinTxRate
	}
	if c.MaxTxRate != nil {
		s.MaxTxRate = *c.MaxTxRate
	}
	if c.LinkState != nil {
		s.LinkState = *c.LinkState
	}
	return s
}

// Changes is c without the settings s already shows: putting back only
// what did change leaves alone a setting the PF's driver refused (igb has
// no link state to set at all) and a MAC never changed (igb pins a MAC set
// on the PF, even to its old value).
func (s VFState) Changes(c VFConfig) VFConfig {
	have := s.Normalized()
	if c.MAC != nil && strings.EqualFold(*c.MAC, have.MAC) {
		c.MAC = nil
	}
	if (c.VLAN == nil || *c.VLAN == have.VLAN) && (c.QoS == nil || *c.QoS == have.QoS) {
		c.VLAN, c.QoS = nil, nil
	}
	if c.Trust != nil && *c.Trust == have.Trust {
		c.Trust = nil
	}
	if c.SpoofChk != nil && *c.SpoofChk == have.SpoofChk {
		c.SpoofChk = nil
	}
	if (c.MinTxRate == nil || *c.MinTxRate == have.MinTxRate) && (c.MaxTxRate == nil || *c.MaxTxRate == have.MaxTxRate) {
		c.MinTxRate, c.MaxTxRate = nil, nil
	}
	if c.LinkState != nil && *c.LinkState == have.LinkState {
		c.LinkState = nil
	}
	return c
}

// Differs lists the settings c asks for that s does not show: what a PF's
// driver took without an error and did not apply.
func (s VFState) Differs(c VFConfig) []string {
	// What is still to change is what the PF did not apply.
	left, want, have := s.Changes(c), s.Apply(c).Normalized(), s.Normalized()
	var out []string
	if left.MAC != nil {
		out = append(out, fmt.Sprintf("mac %s (the PF shows %s)", want.MAC, have.MAC))
	}
	if left.VLAN != nil || left.QoS != nil {
		out = append(out, fmt.Sprintf("vlan %d qos %d (the PF shows %d, %d)", want.VLAN, want.QoS, have.VLAN, have.QoS))
	}
	if left.Trust != nil {
		out = append(out, fmt.Sprintf("trust %t", want.Trust))
	}
	if left.SpoofChk != nil {
		out = append(out, fmt.Sprintf("spoof check %t", want.SpoofChk))
	}
	if left.MinTxRate != nil || left.MaxTxRate != nil {
		out = append(out, fmt.Sprintf("tx rate %d-%d Mbps (the PF shows %d-%d)", want.MinTxRate, want.MaxTxRate, have.MinTxRate, have.MaxTxRate))
	}
	if left.LinkState != nil {
		out = append(out, fmt.Sprintf("link state %s (the PF shows %s)", want.LinkState, have.LinkState))
	}
	return out
}

// VF reads VF index's settings from its PF over netlink.
func (h *Host) VF(pf string, index int) (st VFState, err error) {
	err = h.withHostLink(pf, "PF", func(_ *netlink.Handle, l netlink.Link) error {
		for _, v := range l.Attrs().Vfs {
			if v.ID == index {
				st = VFState{MAC: v.Mac.String(), VLAN: v.Vlan, QoS: v.Qos, Trust: v.Trust != 0, SpoofChk: v.Spoofchk,
					MinTxRate: int(v.MinTxRate), MaxTxRate: int(v.MaxTxRate), LinkState: "auto"}
				if int(v.LinkState) < len(vfLinkStates) {
					st.LinkState = vfLinkStates[v.LinkState]
				}
				return nil
			}
		}
		return fmt.Errorf("PF %s reports no VF %d", pf, index)
	})
	return st, err
}

// SetVF changes VF index's settings on its PF over netlink.
func (h *Host) SetVF(pf string, index int, c VFConfig) error {
	if c.Empty() {
		return nil
	}
	return h.withHostLink(pf, "PF", func(hd *netlink.Handle, l netlink.Link) error {
		return setVF(hd, l, index, c)
	})
}

func setVF(hd *netlink.Handle, l netlink.Link, index int, c VFConfig) error {
	pf := l.Attrs().Name
	var errs []error
	if c.MAC != nil {
		mac, err := net.ParseMAC(*c.MAC)
		if err == nil {
			err = hd.LinkSetVfHardwareAddr(l, index, mac)
		}
		errs = append(errs, step(fmt.Sprintf("set VF %d MAC %s on %s", index, *c.MAC, pf), err))
	}
	if c.VLAN != nil || c.QoS != nil {
		vlan, qos := 0, 0
		if c.VLAN != nil {
			vlan = *c.VLAN
		}
		if c.QoS != nil {
			qos = *c.QoS
		}
		errs = append(errs, step(fmt.Sprintf("set VF %d VLAN %d QoS %d on %s", index, vlan, qos, pf), hd.LinkSetVfVlanQos(l, index, vlan, qos)))
	}
	if c.Trust != nil {
		errs = append(errs, step(fmt.Sprintf("set VF %d trust %t on %s", index, *c.Trust, pf), hd.LinkSetVfTrust(l, index, *c.Trust)))
	}
	if c.SpoofChk != nil {
		errs = append(errs, step(fmt.Sprintf("set VF %d spoof check %t on %s", index, *c.SpoofChk, pf), hd.LinkSetVfSpoofchk(l, index, *c.SpoofChk)))
	}
	if c.MinTxRate != nil || c.MaxTxRate != nil {
		// The kernel sets both: the one not asked for stays as it is.
		lo, hi := 0, 0
		for _, v := range l.Attrs().Vfs {
			if v.ID == index {
				lo, hi = int(v.MinTxRate), int(v.MaxTxRate)
			}
		}
		if c.MinTxRate != nil {
			lo = *c.MinTxRate
		}
		if c.MaxTxRate != nil {
			hi = *c.MaxTxRate
		}
		errs = append(errs, step(fmt.Sprintf("set VF %d tx rate %d-%d Mbps on %s", index, lo, hi, pf), hd.LinkSetVfRate(l, index, lo, hi)))
	}
	if c.LinkState != nil {
		var err error
		switch *c.LinkState {
		case "auto":
			err = hd.LinkSetVfState(l, index, nl.IFLA_VF_LINK_STATE_AUTO)
		case "enable":
			err = hd.LinkSetVfState(l, index, nl.IFLA_VF_LINK_STATE_ENABLE)
		case "disable":
			err = hd.LinkSetVfState(l, index, nl.IFLA_VF_LINK_STATE_DISABLE)
		default:
			err = fmt.Errorf("%q is not one of %s", *c.LinkState, strings.Join(vfLinkStates, ", "))
		}
		errs = append(errs, step(fmt.Sprintf("set VF %d link state %s on %s", index, *c.LinkState, pf), err))
	}
	return errors.Join(errs...)
}
