package host

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// VFConfig is a VF's administrative settings held by its PF; nil fields are
// left as they are.
type VFConfig struct {
	MAC      *string `json:"mac,omitempty"`
	VLAN     *int    `json:"vlan,omitempty"`
	QoS      *int    `json:"qos,omitempty"`
	Trust    *bool   `json:"trust,omitempty"`
	SpoofChk *bool   `json:"spoofChk,omitempty"`
}

// Empty reports whether c sets nothing.
func (c VFConfig) Empty() bool {
	return c.MAC == nil && c.VLAN == nil && c.QoS == nil && c.Trust == nil && c.SpoofChk == nil
}

// VFState is all of a VF's settings on its PF.
type VFState struct {
	MAC      string `json:"mac"`
	VLAN     int    `json:"vlan"`
	QoS      int    `json:"qos"`
	Trust    bool   `json:"trust"`
	SpoofChk bool   `json:"spoofChk"`
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
	return s
}

// VF reads VF index's settings from its PF over netlink.
func (h *Host) VF(pf string, index int) (st VFState, err error) {
	err = h.withHostLink(pf, "PF", func(_ *netlink.Handle, l netlink.Link) error {
		for _, v := range l.Attrs().Vfs {
			if v.ID == index {
				st = VFState{MAC: v.Mac.String(), VLAN: v.Vlan, QoS: v.Qos, Trust: v.Trust != 0, SpoofChk: v.Spoofchk}
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
	return errors.Join(errs...)
}
