// Package flock takes an exclusive advisory lock (flock(2)) on a file, so
// that processes sharing a directory — two driver instances during a rolling
// update — take turns. The lock belongs to the open file: two opens in one
// process exclude each other as two processes do, and the kernel releases
// it when the process dies.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// pollInterval is how often a waiting Lock tries again. flock(2) cannot be
// interrupted by a context, so waiting polls a non-blocking attempt.
const pollInterval = 2 * time.Millisecond

// Lock blocks until it holds the lock on path (created if missing) or ctx
// ends. The returned function releases it.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
}
