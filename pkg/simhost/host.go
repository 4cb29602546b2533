package simhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// Marker is the file Write leaves at a simulated host's root. Open refuses a
// directory without it, so a captured or real tree is never edited as if it
// were a simulation.
const Marker = "simulated-host"

// Host is a simulated host: the real host code reading the written tree,
// with the kernel's part played by the simulator where a tree of files
// cannot answer by itself — devlink queries and driver binds.
type Host struct {
	*host.Host
	root string
	// pollInterval overrides PollInterval (tests).
	pollInterval time.Duration
	// links orders this process's SetLink and link polls: a link's two
	// files change one after the other, and a poll between them would
	// report a state the link never had.
	links sync.Mutex
}

// Open returns the simulated host written under root (root/sys, root/dev,
// root/proc, root/devlink).
func Open(root string) (*Host, error) {
	return OpenWith(root, host.Options{})
}

// OpenWith is Open with some roots placed elsewhere; empty roots in o take
// the simulated host's own.
func OpenWith(root string, o host.Options) (*Host, error) {
	if _, err := os.Stat(filepath.Join(root, Marker)); err != nil {
		return nil, fmt.Errorf("%s is not a simulated host written by `sriov-dra simulate` (no %s file): %w", root, Marker, err)
	}
	fill := func(dst *string, name string) {
		if *dst == "" {
			*dst = filepath.Join(root, name)
		}
	}
	fill(&o.SysfsRoot, "sys")
	fill(&o.DevRoot, "dev")
	fill(&o.ProcRoot, "proc")
	return &Host{Host: host.New(o), root: root}, nil
}

// SetPollInterval changes how often WatchEvents reads the links.
func (h *Host) SetPollInterval(d time.Duration) { h.pollInterval = d }

// Root is the directory the host was written to.
func (h *Host) Root() string { return h.root }

// Devlink answers from root/devlink/<pciAddress>.json, where Write records
// each PF's eswitch mode and DDP profile.
func (h *Host) Devlink(pciAddress string) (host.DevlinkState, error) {
	p := filepath.Join(h.root, "devlink", pciAddress+".json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return host.DevlinkState{}, host.ErrNoDevlink
	}
	if err != nil {
		return host.DevlinkState{}, fmt.Errorf("read %s: %w", p, err)
	}
	var s host.DevlinkState
	if err := json.Unmarshal(b, &s); err != nil {
		return host.DevlinkState{}, fmt.Errorf("decode %s: %w", p, err)
	}
	return s, nil
}

// BindDriver does to the tree what a bind does on a real kernel: the driver
// link moves, a netdev disappears while vfio-pci holds the device (and comes
// back after), and the vfio group node appears. It returns the previous
// driver, as host.Host's does.
func (h *Host) BindDriver(pciAddress, driver string) (string, error) {
	prev, err := h.CurrentDriver(pciAddress)
	if err != nil || prev == driver {
		return prev, err
	}
	return prev, h.bind(pciAddress, prev, driver)
}

func (h *Host) bind(pciAddress, prev, driver string) error {
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
		return syscall.Mknod(p, syscall.S_IFCHR|0o666, int(st.Rdev)) //nolint:gosec // G115: a device number fits an int on Linux
	}
	return os.WriteFile(p, nil, 0o644)
}
