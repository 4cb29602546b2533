package flock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Mode is how a lock is held: flock(2)'s exclusive lock excludes every
// other holder; shared locks exclude only an exclusive one.
type Mode int

const (
	Exclusive Mode = iota
	Shared
)

func (m Mode) String() string {
	if m == Shared {
		return "shared"
	}
	return "exclusive"
}

// ErrHeld is returned by TryLock when another holder keeps the lock from
// being taken in the mode asked for.
var ErrHeld = errors.New("held by another process")

// TryLock takes the lock on path (created if missing) in mode without
// waiting: if another open file holds it in a conflicting mode, the error
// wraps ErrHeld. The returned function releases it; the kernel releases it
// when the process dies, so a crashed holder never leaves it taken.
func TryLock(path string, mode Mode) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create the directory of lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if mode == Shared {
		how = syscall.LOCK_SH
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			_ = f.Close()
		}, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%s lock %s: %w", mode, path, ErrHeld)
	default:
		f.Close()
		return nil, fmt.Errorf("%s lock %s: %w", mode, path, err)
	}
}

// Holder is a process holding a lock, as the kernel lists it in /proc/locks.
type Holder struct {
	PID  int
	Mode Mode
}

// procLocks is the kernel's list of the locks held on the system.
const procLocks = "/proc/locks"

// Holders lists the processes holding flock(2) locks on path, from
// /proc/locks. It is a hint for messages, not a guarantee: the kernel
// shows a holder's PID as this process's PID namespace sees it (0, or no
// entry, for a holder in another container's namespace), and matches are
// by inode number alone (/proc/locks names the device of the inode's own
// filesystem, which a stat through an overlay may not show).
func Holders(path string) ([]Holder, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat lock %s: %w", path, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("stat lock %s: no inode number", path)
	}
	f, err := os.Open(procLocks)
	if err != nil {
		return nil, fmt.Errorf("read the kernel's locks: %w", err)
	}
	defer f.Close()
	return parseLocks(f, sys.Ino)
}

// parseLocks reads /proc/locks lines such as
//
//	1: FLOCK  ADVISORY  WRITE 4242 fd:01:393231 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:393231 0 EOF
//
// and returns the holders of flock(2) locks on the inode; "->" lines are
// processes waiting, not holding, and are left out.
func parseLocks(r io.Reader, ino uint64) ([]Holder, error) {
	var out []Holder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" { // also skips "->": a waiter
			continue
		}
		devIno := strings.Split(fields[5], ":")
		if len(devIno) != 3 || devIno[2] != strconv.FormatUint(ino, 10) {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err != nil {
			continue
		}
		mode := Shared
		if fields[3] == "WRITE" {
			mode = Exclusive
		}
		out = append(out, Holder{PID: pid, Mode: mode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the kernel's locks: %w", err)
	}
	return out, nil
}
