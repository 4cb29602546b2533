// Package host is the only code in sriov-dra that touches the operating
// system: sysfs, /dev, /proc and netlink. Every path it reads is relative to
// a configurable root so that the same code runs against a real host, a
// captured sysfs tree or one written for tests.
package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// SysPath turns a sysfs-relative path ("bus/pci/devices") into a real one.
// The paths discovery builds are clean already; for those it only
// concatenates, saving filepath.Join's second copy on every attribute read.
func (h *Host) SysPath(rel string) string {
	if isCleanLocal(rel) {
		return h.sysPrefix + rel
	}
	return filepath.Join(h.sysfsRoot, rel)
}

// isCleanLocal reports whether filepath.Join(root, rel) is root + "/" + rel:
// rel is clean (filepath.Clean does not allocate for a clean path), not
// absolute and does not climb out.
func isCleanLocal(rel string) bool {
	return rel != "" && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") &&
		!filepath.IsAbs(rel) && filepath.Clean(rel) == rel
}

// DevPath turns a /dev-relative path ("vfio/12") into a real one.
func (h *Host) DevPath(rel string) string { return filepath.Join(h.devRoot, rel) }

// ReadSysString reads a sysfs attribute and trims the trailing newline.
func (h *Host) ReadSysString(rel string) (string, error) {
	var buf [maxAttrSize]byte
	b, err := readSmallFile(h.SysPath(rel), &buf)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// maxAttrSize bounds a sysfs attribute read; the kernel serves at most a
// page per attribute.
const maxAttrSize = 4096

// readSmallFile reads a sysfs attribute into buf with open, read and close
// only, and returns the part read. os.ReadFile adds an fstat and a second
// read per file, and discovery reads tens of thousands of attributes on a
// large host; the caller's buffer (on its stack) spares a copy of each.
func readSmallFile(path string, buf *[maxAttrSize]byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	for {
		n, err := syscall.Read(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		return buf[:n], nil
	}
}

// ReadSysInt reads a decimal integer sysfs attribute.
func (h *Host) ReadSysInt(rel string) (int, error) {
	var buf [maxAttrSize]byte
	p := h.SysPath(rel)
	b, err := readSmallFile(p, &buf)
	if err != nil {
		return 0, err
	}
	b = bytes.TrimSpace(b)
	// The conversion does not escape (strconv copies what its errors
	// quote), so parsing allocates nothing.
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %q is not an integer", p, string(b))
	}
	return n, nil
}

// ReadSysLink returns the raw target of a sysfs symlink.
func (h *Host) ReadSysLink(rel string) (string, error) {
	p := h.SysPath(rel)
	// sysfs link targets are short; os.Readlink would allocate a buffer per
	// call before the string.
	var buf [512]byte
	for {
		n, err := syscall.Readlink(p, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		return os.Readlink(p) // longer than any sysfs link: let os size it
	}
}

// ResolveSysLink returns the sysfs-relative path a symlink points to. It
// resolves lexically and does not check that the target exists (callers
// that care look it up), which saves a syscall per link on large hosts.
func (h *Host) ResolveSysLink(rel string) (string, error) {
	target, err := h.ReadSysLink(rel)
	if err != nil {
		return "", err
	}
	if filepath.IsAbs(target) {
		return "", fmt.Errorf("link %s: absolute target %q", h.SysPath(rel), target)
	}
	resolved := filepath.Clean(filepath.Join(filepath.Dir(rel), target))
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return "", fmt.Errorf("link %s: target %q leaves sysfs", h.SysPath(rel), target)
	}
	return resolved, nil
}

// ListSys lists a sysfs directory's entry names, sorted. A missing
// directory is not an error: it yields no entries.
func (h *Host) ListSys(rel string) ([]string, error) {
	names, err := readDirNames(h.SysPath(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

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
