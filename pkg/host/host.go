// Package host is the only code in sriov-dra that touches the operating
// system: sysfs, /dev, /proc and netlink. Every path it reads is relative to
// a configurable root so that the same code runs against a real host, a
// captured sysfs tree or one written for tests.
package host

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Default roots of a real host.
const (
	DefaultSysfsRoot = "/sys"
	DefaultDevRoot   = "/dev"
	DefaultProcRoot  = "/proc"
)

// Options selects the roots a Host reads from.
type Options struct {
	SysfsRoot string
	DevRoot   string
	ProcRoot  string
	// NetNS is the host's network namespace (a path like
	// /proc/1/ns/net or /run/netns/x), where netdevs return from pods;
	// empty: the process's own.
	NetNS string
}

// Host reads and changes one host's device state.
type Host struct {
	sysfsRoot string
	// sysPrefix is the cleaned sysfs root with a trailing slash, to which
	// SysPath appends a clean relative path without cleaning it again.
	sysPrefix string
	devRoot   string
	procRoot  string
	netNS     string
	// kernelDevlink is set when sysfs is the running kernel's /sys.
	kernelDevlink bool
}

// New returns a Host over the given roots; empty roots take the real host's.
// Devlink is asked over netlink only when sysfs is the real /sys, since a
// tree under another root does not describe the running kernel.
func New(o Options) *Host {
	h := &Host{
		sysfsRoot: orDefault(o.SysfsRoot, DefaultSysfsRoot),
		devRoot:   orDefault(o.DevRoot, DefaultDevRoot),
		procRoot:  orDefault(o.ProcRoot, DefaultProcRoot),
		netNS:     o.NetNS,
	}
	h.kernelDevlink = filepath.Clean(h.sysfsRoot) == DefaultSysfsRoot
	h.sysPrefix = strings.TrimSuffix(filepath.Clean(h.sysfsRoot), "/") + "/"
	return h
}

// UnderRoot returns a Host over a directory laid out like a root file
// system: DIR/sys, DIR/dev and DIR/proc.
func UnderRoot(dir string) *Host {
	return New(Options{
		SysfsRoot: filepath.Join(dir, "sys"),
		DevRoot:   filepath.Join(dir, "dev"),
		ProcRoot:  filepath.Join(dir, "proc"),
	})
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// DevRoot is the directory that stands for /dev.
func (h *Host) DevRoot() string { return h.devRoot }

// DevPath turns a /dev-relative path ("vfio/12") into a real one.
func (h *Host) DevPath(rel string) string { return filepath.Join(h.devRoot, rel) }

// SysExists reports whether a sysfs path exists (without following a final link).
func (h *Host) SysExists(rel string) bool {
	_, err := os.Lstat(h.SysPath(rel))
	return err == nil
}

// DevExists reports whether a /dev path exists.
func (h *Host) DevExists(rel string) bool {
	_, err := os.Stat(h.DevPath(rel))
	return err == nil
}

// SysFS exposes sysfs as an fs.FS for libraries that take one
// (k8s.io/dynamic-resource-allocation/deviceattribute).
func (h *Host) SysFS() fs.ReadLinkFS {
	return os.DirFS(h.sysfsRoot).(fs.ReadLinkFS)
}

// WithSiblingRoots fills empty dev and proc roots from directories beside a
// non-default sysfs root (DIR/dev and DIR/proc for --sysfs-root DIR/sys), the
// layout of a captured or written tree. On the real /sys it changes nothing.
func (o Options) WithSiblingRoots() Options {
	if o.SysfsRoot == "" || filepath.Clean(o.SysfsRoot) == DefaultSysfsRoot {
		return o
	}
	parent := filepath.Dir(filepath.Clean(o.SysfsRoot))
	sibling := func(dst *string, name string) {
		if *dst != "" {
			return
		}
		if st, err := os.Stat(filepath.Join(parent, name)); err == nil && st.IsDir() {
			*dst = filepath.Join(parent, name)
		}
	}
	sibling(&o.DevRoot, "dev")
	sibling(&o.ProcRoot, "proc")
	return o
}
