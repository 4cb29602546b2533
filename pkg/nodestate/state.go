// Package nodestate owns what one driver instance holds on its node: the
// instance lock, the Unix sockets it serves, and the checkpoint of prepared
// claims with the node lock that orders every change to it and the files
// the claims own.
package nodestate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/flock"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
)

// Warner posts a warning where an operator sees it (an Event on the Node).
type Warner interface {
	Warn(ctx context.Context, reason, message string)
}

// Config is where the state lives and whom it tells of trouble.
type Config struct {
	// PluginDir holds the checkpoint and the node lock.
	PluginDir string
	// BootID is this boot's: claims recorded in an earlier boot are gone.
	BootID string
	// Warn, when set, hears of an unreadable checkpoint and of prepared
	// devices gone from the host.
	Warn Warner
	// Readable, when set, is 1 while the checkpoint can be read, 0 once it
	// could not.
	Readable prometheus.Gauge
}

// Store is the driver's record of prepared claims: one checkpoint file in
// the plugin directory, shared by every driver instance on the node (two
// run during a rolling update), changed only under an exclusive file lock.
// It is re-read under the lock by every call, never cached.
type Store struct {
	// mu orders this process's callers; the file lock orders processes.
	mu       sync.Mutex
	lockPath string
	path     string
	bootID   string
	warn     Warner
	readable prometheus.Gauge
	// unreadable is set once a call found the checkpoint unreadable; only a
	// restart (which sets the file aside) clears it.
	unreadable atomic.Bool
	// vanished are the prepared devices last seen gone from the host (only
	// the rescan loop touches it, through Check).
	vanished map[string]bool
}

// New returns the node's store; nothing is read until a call needs it.
func New(cfg Config) *Store {
	return &Store{
		lockPath: filepath.Join(cfg.PluginDir, "prepare.lock"),
		path:     filepath.Join(cfg.PluginDir, "checkpoint.json"),
		bootID:   cfg.BootID,
		warn:     cfg.Warn,
		readable: cfg.Readable,
	}
}

// Path is the checkpoint file's.
func (s *Store) Path() string { return s.path }

// Lock takes the node-wide prepare lock.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	s.mu.Lock()
	release, err := flock.Lock(ctx, s.lockPath)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return func() { release(); s.mu.Unlock() }, nil
}

// Open takes the node lock and reads the checkpoint (see Load); the caller
// releases the lock with unlock. An unreadable checkpoint stops every
// caller, loudly and without changing anything: nothing destructive is ever
// decided from a state that could not be read. A restart sets the file
// aside and rebuilds (see SetAside).
func (s *Store) Open(ctx context.Context) (cp checkpoint.Data, unlock func(), err error) {
	if unlock, err = s.Lock(ctx); err != nil {
		return cp, nil, err
	}
	cp, err = s.Load(ctx)
	if errors.Is(err, checkpoint.ErrUnreadable) {
		err = s.markUnreadable(ctx, err)
	}
	if err != nil {
		unlock()
		return cp, nil, err
	}
	return cp, unlock, nil
}

// Load reads the checkpoint; call it with the lock held. Claims of an
// earlier boot are gone with it: their files are removed and their entries
// dropped. An unreadable file is an error wrapping checkpoint.ErrUnreadable,
// and nothing is changed.
func (s *Store) Load(ctx context.Context) (checkpoint.Data, error) {
	d, stale, err := checkpoint.Load(s.path, s.bootID)
	if err != nil || !stale {
		return d, err
	}
	klog.FromContext(ctx).Info("Checkpoint is from an earlier boot; dropping its claims", "claims", len(d.Claims))
	for uid, c := range d.Claims {
		if err := RemoveFiles(c); err != nil {
			klog.FromContext(ctx).Error(err, "Removing files of a claim from an earlier boot", "claim", klog.KRef(c.Namespace, c.Name))
		}
		delete(d.Claims, uid)
	}
	d.BootID = s.bootID
	return d, nil
}

// Peek reads the checkpoint without the lock: the file is replaced whole,
// never half written, so what it returns was true a moment ago. For
// questions whose answer is checked again under the lock, or is advice.
func (s *Store) Peek() (checkpoint.Data, error) {
	d, _, err := checkpoint.Load(s.path, s.bootID)
	return d, err
}

// Save writes the checkpoint durably; call it with the lock held.
func (s *Store) Save(d checkpoint.Data) error {
	if err := checkpoint.Save(s.path, d); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// SetAside moves an unreadable checkpoint out of the way (it is kept for
// the operator, never deleted) and returns an empty one to rebuild; call it
// with the lock held, at start-up.
func (s *Store) SetAside(ctx context.Context, cause error) (checkpoint.Data, error) {
	s.warnf(ctx, "CheckpointUnreadable", cause.Error()+"; kept aside, state rebuilt from the driver's files")
	aside, err := checkpoint.SetAside(s.path, time.Now())
	if err != nil {
		return checkpoint.Data{}, errors.Join(cause, err)
	}
	klog.FromContext(ctx).Error(cause, "Checkpoint is unreadable: kept aside, rebuilding from the driver's CDI specs and device-info files", "keptAs", aside)
	return checkpoint.Data{BootID: s.bootID, Claims: map[string]checkpoint.Claim{}}, nil
}

// markUnreadable records an unreadable checkpoint: reported once, Healthy
// false from now on, so that the kubelet restarts the daemon, which keeps
// the file aside and rebuilds.
func (s *Store) markUnreadable(ctx context.Context, err error) error {
	err = fmt.Errorf("%w; preparing and unpreparing stop until the driver restarts, which keeps the file aside and rebuilds the state", err)
	if !s.unreadable.Swap(true) {
		klog.FromContext(ctx).Error(err, "Checkpoint unreadable")
		s.warnf(ctx, "CheckpointUnreadable", err.Error())
		if s.readable != nil {
			s.readable.Set(0)
		}
	}
	return err
}

// Healthy reports whether the state could be read every time it was.
func (s *Store) Healthy() bool { return !s.unreadable.Load() }

func (s *Store) warnf(ctx context.Context, reason, message string) {
	if s.warn != nil {
		s.warn.Warn(ctx, reason, message)
	}
}

// RemoveFiles deletes the files a claim's preparation wrote.
func RemoveFiles(e checkpoint.Claim) error {
	var errs []error
	for _, f := range append([]string{e.CDISpec}, e.InfoFiles...) {
		if f != "" {
			errs = append(errs, nodefiles.Remove(f))
		}
	}
	return errors.Join(errs...)
}
