package host

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// DevlinkState is what discovery needs from a PCI device's devlink instance.
type DevlinkState struct {
	// EswitchMode is "legacy" or "switchdev"; empty when unknown.
	EswitchMode string `json:"eswitchMode,omitempty"`
	// DDPProfile is the loaded Dynamic Device Personalization package
	// (devlink info "fw.app.name"); empty when none is reported.
	DDPProfile string `json:"ddpProfile,omitempty"`
}

// ErrNoDevlink means the device has no devlink instance (or this host
// cannot be asked), which is normal for most NICs.
var ErrNoDevlink = errors.New("no devlink instance")

// Devlink returns the devlink state of a PCI device. Only the running
// kernel is asked; a tree under another root has no devlink instances.
func (h *Host) Devlink(pciAddress string) (DevlinkState, error) {
	if !h.kernelDevlink {
		return DevlinkState{}, ErrNoDevlink
	}
	dev, err := netlink.DevLinkGetDeviceByName("pci", pciAddress)
	if err != nil {
		return DevlinkState{}, fmt.Errorf("devlink pci/%s: %w: %w", pciAddress, ErrNoDevlink, err)
	}
	var s DevlinkState
	if m := dev.Attrs.Eswitch.Mode; m == "legacy" || m == "switchdev" {
		s.EswitchMode = m
	}
	// Not every driver implements devlink info; a missing DDP name is normal.
	if info, err := netlink.DevlinkGetDeviceInfoByNameAsMap("pci", pciAddress); err == nil {
		s.DDPProfile = info["fw.app.name"]
	}
	return s, nil
}
