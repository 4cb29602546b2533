package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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

type devlinkReader interface {
	state(pciAddress string) (DevlinkState, error)
}

// Devlink returns the devlink state of a PCI device.
func (h *Host) Devlink(pciAddress string) (DevlinkState, error) {
	return h.devlink.state(pciAddress)
}

type noDevlink struct{}

func (noDevlink) state(string) (DevlinkState, error) { return DevlinkState{}, ErrNoDevlink }

// fileDevlink serves simulated hosts: DIR/<pciAddress>.json holds a DevlinkState.
type fileDevlink struct{ dir string }

func (f fileDevlink) state(pciAddress string) (DevlinkState, error) {
	path := filepath.Join(f.dir, pciAddress+".json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DevlinkState{}, ErrNoDevlink
	}
	if err != nil {
		return DevlinkState{}, fmt.Errorf("read %s: %w", path, err)
	}
	var s DevlinkState
	if err := json.Unmarshal(b, &s); err != nil {
		return DevlinkState{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return s, nil
}

type netlinkDevlink struct{}

func (netlinkDevlink) state(pciAddress string) (DevlinkState, error) {
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
