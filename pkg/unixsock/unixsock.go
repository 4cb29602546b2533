// Package unixsock listens on Unix domain sockets that belong to one
// process. Two instances of the driver may share a directory (by mistake,
// or in a rolling update), and a socket path is only a name: a process that
// removes "its" socket on start or stop may remove another's, which the
// kubelet then cannot dial. So a Listener never removes a socket someone
// else serves, and removes its own file on Close only while the file at the
// path is still the one it created; Check tells whether that is still so.
package unixsock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned by Listen when a process accepts connections on the
// socket already there.
var ErrInUse = errors.New("another process serves it")

// dialTimeout bounds the probe of a socket found at the path. A live
// listener answers at once (the kernel completes a Unix connect while the
// backlog has room); a dead one refuses at once.
const dialTimeout = time.Second

// Listener is a Unix socket listener that knows which file it created.
type Listener struct {
	*net.UnixListener
	path string
	id   fileID

	once     sync.Once
	closeErr error
}

// fileID identifies a file beyond its name. The inode number alone is not
// enough: a file system hands a freed inode number to the next file made,
// so a socket removed and made again by another process often has the
// same number; its change time differs.
type fileID struct {
	dev, ino uint64
	ctime    syscall.Timespec
}

func idOf(path string) (fileID, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return fileID{}, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("stat %s: no inode", path)
	}
	return fileID{dev: uint64(sys.Dev), ino: sys.Ino, ctime: sys.Ctim}, nil
}

// Listen listens on a Unix socket at path with the given mode. A file
// already at the path is handled by what it is: a socket no process
// listens on (its connect is refused: the process that made it is gone) is
// removed; a socket that answers is left alone and the error wraps
// ErrInUse; anything else is left alone and refused.
func Listen(ctx context.Context, path string, mode os.FileMode) (*Listener, error) {
	if err := removeDead(ctx, path); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	// Go unlinks the path on Close, whatever file is there by then; Close
	// below removes it only if it is still ours.
	ul.SetUnlinkOnClose(false)
	l := &Listener{UnixListener: ul, path: path}
	if err := os.Chmod(path, mode); err != nil {
		// Made a moment ago by this call: ours to remove.
		_ = ul.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	// After the chmod, which changes the change time.
	if l.id, err = idOf(path); err != nil {
		_ = ul.Close()
		return nil, fmt.Errorf("stat the new socket %s: %w", path, err)
	}
	return l, nil
}

// removeDead clears the path for a new socket, if what is there is a
// socket no process serves.
func removeDead(ctx context.Context, path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket (mode %s): left alone", path, st.Mode())
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("socket %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("socket %s: cannot tell whether a process serves it, left alone: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the dead socket %s: %w", path, err)
	}
	return nil
}

// Path is where the socket was made.
func (l *Listener) Path() string { return l.path }

// Check reports whether the file at the path is still the socket this
// listener made: an error says it is gone or was replaced, so that
// nothing can reach this listener through the path any more.
func (l *Listener) Check() error {
	id, err := idOf(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket %s is gone", l.path)
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", l.path, err)
	}
	if id != l.id {
		return fmt.Errorf("socket %s was replaced by another file (inode %d, ours was %d)", l.path, id.ino, l.id.ino)
	}
	return nil
}

// Close stops listening and removes the socket file if it is still the one
// this listener made. It may be called more than once (a gRPC server's
// Stop closes its listener too).
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.closeErr = l.UnixListener.Close()
		if l.Check() != nil {
			return // gone, or another's now: not ours to remove
		}
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.closeErr = errors.Join(l.closeErr, fmt.Errorf("remove socket %s: %w", l.path, err))
		}
	})
	return l.closeErr
}
