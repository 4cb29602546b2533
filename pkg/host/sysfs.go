package host

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading sysfs costs no garbage per path: discovery reads a dozen
// attributes of each of thousands of functions on every rescan. A path is
// built NUL-terminated in a buffer on the caller's stack and handed to the
// system call as is; syscall.Open and its kin would copy it to the heap to
// terminate it, and joining the parts first would allocate once more.
//
// Each method has an ...At form that names the file by its directory and
// its name in it, so that callers need not join them.

// maxAttrSize bounds a sysfs attribute read; the kernel serves at most a
// page per attribute.
const maxAttrSize = 4096

// cpathSize fits any sysfs path under a reasonable root; a longer one is
// built on the heap.
const cpathSize = 512

// SysPath turns a sysfs-relative path ("bus/pci/devices") into a real one.
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

// cpath returns the real path of dir/name ("" for dir itself), as
// SysPath(path.Join(dir, name)) would, NUL-terminated, in buf when it fits.
func (h *Host) cpath(buf *[cpathSize]byte, dir, name string) []byte {
	var p []byte
	switch {
	case name == "" && isCleanLocal(dir):
		p = append(append(buf[:0], h.sysPrefix...), dir...)
	case isCleanLocal(dir) && isCleanLocal(name):
		p = append(append(append(append(buf[:0], h.sysPrefix...), dir...), '/'), name...)
	default:
		p = append(buf[:0], h.SysPath(filepath.Join(dir, name))...)
	}
	return append(p, 0)
}

// pathOf is a NUL-terminated path as a string, for errors.
func pathOf(p []byte) string { return string(p[:len(p)-1]) }

// openPath is open(2) of a NUL-terminated path.
func openPath(p []byte, flags int) (int, error) {
	cwd := unix.AT_FDCWD // a variable: a negative constant does not convert to uintptr
	for {
		//nolint:gosec // G103: the path's address as a syscall argument, as package syscall passes it
		fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(flags|syscall.O_CLOEXEC|syscall.O_LARGEFILE), 0, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case syscall.EINTR:
			continue
		default:
			return -1, &fs.PathError{Op: "open", Path: pathOf(p), Err: errno}
		}
	}
}

// readlinkPath is readlink(2) of a NUL-terminated path into buf.
func readlinkPath(p, buf []byte) (int, error) {
	cwd := unix.AT_FDCWD
	for {
		//nolint:gosec // G103: the path's and the buffer's addresses as syscall arguments, as package syscall passes them
		n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(cwd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		default:
			return 0, &fs.PathError{Op: "readlink", Path: pathOf(p), Err: errno}
		}
	}
}

// readAttr reads a sysfs attribute into buf with open, read and close
// only, and returns the part read, spaces trimmed. os.ReadFile adds an
// fstat and a second read per file, and a copy.
func readAttr(p []byte, buf *[maxAttrSize]byte) ([]byte, error) {
	fd, err := openPath(p, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	for {
		n, err := syscall.Read(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: pathOf(p), Err: err}
		}
		return bytes.TrimSpace(buf[:n]), nil
	}
}

// ReadSysString reads a sysfs attribute and trims the trailing newline.
func (h *Host) ReadSysString(rel string) (string, error) { return h.ReadSysStringAt(rel, "") }

// ReadSysStringAt is ReadSysString of dir/name.
func (h *Host) ReadSysStringAt(dir, name string) (string, error) {
	var pbuf [cpathSize]byte
	var buf [maxAttrSize]byte
	b, err := readAttr(h.cpath(&pbuf, dir, name), &buf)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadSysInt reads a decimal integer sysfs attribute.
func (h *Host) ReadSysInt(rel string) (int, error) { return h.ReadSysIntAt(rel, "") }

// ReadSysIntAt is ReadSysInt of dir/name.
func (h *Host) ReadSysIntAt(dir, name string) (int, error) {
	var pbuf [cpathSize]byte
	var buf [maxAttrSize]byte
	p := h.cpath(&pbuf, dir, name)
	b, err := readAttr(p, &buf)
	if err != nil {
		return 0, err
	}
	// The conversion does not escape (strconv copies what its errors
	// quote), so parsing allocates nothing.
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %q is not an integer", pathOf(p), string(b))
	}
	return n, nil
}

// ReadSysLink returns the raw target of a sysfs symlink.
func (h *Host) ReadSysLink(rel string) (string, error) { return h.ReadSysLinkAt(rel, "") }

// ReadSysLinkAt is ReadSysLink of dir/name.
func (h *Host) ReadSysLinkAt(dir, name string) (string, error) {
	var pbuf [cpathSize]byte
	var buf [cpathSize]byte
	p := h.cpath(&pbuf, dir, name)
	n, err := readlinkPath(p, buf[:])
	if err != nil {
		return "", err
	}
	if n == len(buf) {
		return os.Readlink(pathOf(p)) // possibly cut short: let os size it
	}
	return string(buf[:n]), nil
}

// ResolveSysLink returns the sysfs-relative path a symlink points to. It
// resolves lexically and does not check that the target exists (callers
// that care look it up), which saves a syscall per link on large hosts.
func (h *Host) ResolveSysLink(rel string) (string, error) { return h.ResolveSysLinkAt(rel, "") }

// ResolveSysLinkAt is ResolveSysLink of dir/name.
func (h *Host) ResolveSysLinkAt(dir, name string) (string, error) {
	target, err := h.ReadSysLinkAt(dir, name)
	if err != nil {
		return "", err
	}
	if filepath.IsAbs(target) {
		return "", fmt.Errorf("link %s: absolute target %q", h.SysPath(filepath.Join(dir, name)), target)
	}
	// The link's own directory, without joining and splitting the path
	// when name is one component.
	linkDir := dir
	if name == "" || strings.ContainsRune(name, '/') || !isCleanLocal(dir) || !isCleanLocal(name) {
		linkDir = filepath.Dir(filepath.Join(dir, name))
	}
	resolved := resolveRel(linkDir, target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return "", fmt.Errorf("link %s: target %q leaves sysfs", h.SysPath(filepath.Join(dir, name)), target)
	}
	return resolved, nil
}

// resolveRel is filepath.Join(dir, target) with one allocation for the
// targets sysfs links have: some "../", then a clean path down.
func resolveRel(dir, target string) string {
	up, rest := 0, target
	for strings.HasPrefix(rest, "../") {
		up, rest = up+1, rest[len("../"):]
	}
	if !isCleanLocal(dir) || !isCleanLocal(rest) {
		return filepath.Join(dir, target)
	}
	base := dir
	for ; up > 0; up-- {
		i := strings.LastIndexByte(base, '/')
		if i < 0 {
			if up > 1 {
				return filepath.Join(dir, target) // climbs out of sysfs
			}
			return rest
		}
		base = base[:i]
	}
	return base + "/" + rest
}

// ListSys lists a sysfs directory's entry names, sorted. A missing
// directory is not an error: it yields no entries.
func (h *Host) ListSys(rel string) ([]string, error) { return h.ListSysAt(rel, "") }

// ListSysAt is ListSys of dir/name.
func (h *Host) ListSysAt(dir, name string) ([]string, error) {
	var pbuf [cpathSize]byte
	names, err := readDirNames(h.cpath(&pbuf, dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// direntNameOffset is where the name starts in a linux_dirent64 record,
// after d_ino (8 bytes), d_off (8), d_reclen (2) and d_type (1).
const direntNameOffset = 19

// readDirNames lists a directory's entry names, unsorted, without "." and
// "..". Unlike os.ReadDir, which allocates an entry and a name per file,
// it reads the raw records into a stack buffer and returns names that all
// share one string: listing a device directory of a few dozen attributes
// costs two allocations, not a hundred.
func readDirNames(p []byte) ([]string, error) {
	fd, err := openPath(p, syscall.O_RDONLY|syscall.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	// The buffers start on the stack and grow on the heap only for a
	// directory of more than 128 entries or 2 KiB of names.
	var (
		buf     [8192]byte
		allBuf  [2048]byte
		lensBuf [128]int
		all     = allBuf[:0] // the names, one after the other
		lens    = lensBuf[:0]
	)
	for {
		n, err := syscall.ReadDirent(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: pathOf(p), Err: err}
		}
		if n <= 0 {
			break
		}
		for rec := buf[:n]; len(rec) >= direntNameOffset; {
			reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
			if reclen < direntNameOffset || reclen > len(rec) {
				return nil, &fs.PathError{Op: "readdirent", Path: pathOf(p), Err: syscall.EIO}
			}
			name := rec[direntNameOffset:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			rec = rec[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			all = append(all, name...)
			lens = append(lens, len(name))
		}
	}
	joined := string(all)
	names := make([]string, len(lens))
	for i, l := range lens {
		names[i], joined = joined[:l], joined[l:]
	}
	return names, nil
}
