package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// BootID identifies the running boot (/proc/sys/kernel/random/boot_id); a
// host without one (a captured or written tree) reports "unknown".
func (h *Host) BootID() string {
	b, err := os.ReadFile(filepath.Join(h.procRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// ErrNoDevice means a PCI device is not on the host (any more).
var ErrNoDevice = errors.New("no such PCI device")

// CurrentDriver is the driver a PCI device is bound to, or "" when unbound.
func (h *Host) CurrentDriver(pciAddress string) (string, error) {
	target, err := h.ReadSysLink(path.Join("bus/pci/devices", pciAddress, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		if !h.SysExists(path.Join("bus/pci/devices", pciAddress)) {
			return "", fmt.Errorf("PCI device %s: %w", pciAddress, ErrNoDevice)
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return path.Base(target), nil
}

// BindDriver binds a PCI device to driver ("" leaves it unbound) the way
// the kernel documents it: driver_override, unbind from the current driver,
// drivers_probe, then clear the override. It returns the previous driver.
func (h *Host) BindDriver(pciAddress, driver string) (string, error) {
	prev, err := h.CurrentDriver(pciAddress)
	if err != nil {
		return "", err
	}
	if prev == driver {
		return prev, nil
	}
	dev := path.Join("bus/pci/devices", pciAddress)
	override := driver
	if override == "" {
		override = "\n"
	}
	if err := h.writeSys(path.Join(dev, "driver_override"), override); err != nil {
		return prev, err
	}
	defer func() { _ = h.writeSys(path.Join(dev, "driver_override"), "\n") }()
	if prev != "" {
		if err := h.writeSys(path.Join(dev, "driver/unbind"), pciAddress); err != nil {
			return prev, err
		}
	}
	if driver != "" {
		if err := h.writeSys("bus/pci/drivers_probe", pciAddress); err != nil {
			return prev, err
		}
	}
	now, err := h.CurrentDriver(pciAddress)
	if err != nil {
		return prev, err
	}
	if now != driver {
		return prev, fmt.Errorf("bind %s to %q: device is bound to %q (is the %s module loaded?)", pciAddress, driver, now, driver)
	}
	return prev, nil
}

func (h *Host) writeSys(rel, value string) error {
	p := h.SysPath(rel)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("write %q to %s: %w", strings.TrimSpace(value), p, err)
	}
	return nil
}
