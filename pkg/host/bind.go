package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// SimulatedMarker is the file the simulator writes at a host's root; a Host
// over such a root emulates what the kernel does on a driver bind.
const SimulatedMarker = "simulated-host"

// BootID identifies the running boot (/proc/sys/kernel/random/boot_id); a
// host without one (a simulated or captured tree) reports "unknown".
func (h *Host) BootID() string {
	b, err := os.ReadFile(filepath.Join(h.procRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// CurrentDriver is the driver a PCI device is bound to, or "" when unbound.
func (h *Host) CurrentDriver(pciAddress string) (string, error) {
	target, err := h.ReadSysLink(path.Join("bus/pci/devices", pciAddress, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		if !h.SysExists(path.Join("bus/pci/devices", pciAddress)) {
			return "", fmt.Errorf("PCI device %s does not exist", pciAddress)
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
	if h.simulated {
		return prev, h.simulateBind(pciAddress, prev, driver)
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

// simulateBind does to a simulated tree what a bind does on a real kernel:
// the driver link moves, a netdev disappears while vfio-pci holds the device
// (and comes back after), and the vfio group node appears.
func (h *Host) simulateBind(pciAddress, prev, driver string) error {
	dir, err := h.ResolveSysLink(path.Join("bus/pci/devices", pciAddress))
	if err != nil {
		return err
	}
	link := h.SysPath(path.Join(dir, "driver"))
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if driver != "" {
		drvDir := h.SysPath(path.Join("bus/pci/drivers", driver))
		if err := os.MkdirAll(drvDir, 0o755); err != nil {
			return err
		}
		rel, err := filepath.Rel(h.SysPath(dir), drvDir)
		if err != nil {
			return err
		}
		if err := os.Symlink(rel, link); err != nil {
			return err
		}
	}
	netDir, hidden := h.SysPath(path.Join(dir, "net")), h.SysPath(path.Join(dir, ".simulated-net"))
	if driver == "vfio-pci" {
		if _, err := os.Stat(netDir); err == nil {
			if err := os.Rename(netDir, hidden); err != nil {
				return err
			}
		}
		group, err := h.ReadSysLink(path.Join(dir, "iommu_group"))
		if err != nil {
			return fmt.Errorf("vfio-pci needs an IOMMU group: %w", err)
		}
		// Loading vfio-pci brings the container node; binding, the group node.
		if err := h.makeNodeLike("vfio/vfio", "net/tun"); err != nil {
			return err
		}
		return h.makeNodeLike(path.Join("vfio", path.Base(group)), "vfio/vfio")
	}
	if prev == "vfio-pci" {
		if _, err := os.Stat(hidden); err == nil {
			return os.Rename(hidden, netDir)
		}
	}
	return nil
}

// makeNodeLike creates a /dev node of the same kind as an existing one (a
// char device where the simulator made char devices).
func (h *Host) makeNodeLike(rel, like string) error {
	p := h.DevPath(rel)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(h.DevPath(like), &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFCHR {
		return syscall.Mknod(p, syscall.S_IFCHR|0o666, int(st.Rdev))
	}
	return os.WriteFile(p, nil, 0o644)
}
