package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/flock"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// nodeState is the driver's record of prepared claims: one checkpoint file
// in the plugin directory, shared by every driver instance on the node (two
// run during a rolling update), changed only under an exclusive file lock.
// It is re-read under the lock by every call, never cached.
type nodeState struct {
	// mu orders this process's callers; the file lock orders processes.
	mu       sync.Mutex
	lockPath string
	path     string
	bootID   string
	// unreadable is set once a call found the checkpoint unreadable; only a
	// restart (which sets the file aside) clears it.
	unreadable atomic.Bool
}

func newNodeState(pluginDir, bootID string) *nodeState {
	return &nodeState{
		lockPath: filepath.Join(pluginDir, "prepare.lock"),
		path:     filepath.Join(pluginDir, "checkpoint.json"),
		bootID:   bootID,
	}
}

// lock takes the node-wide prepare lock.
func (s *nodeState) lock(ctx context.Context) (unlock func(), err error) {
	s.mu.Lock()
	release, err := flock.Lock(ctx, s.lockPath)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return func() { release(); s.mu.Unlock() }, nil
}

// load reads the checkpoint; call it with the lock held. Claims of an
// earlier boot are gone with it: their files are removed and their entries
// dropped. An unreadable file is an error wrapping checkpoint.ErrUnreadable,
// and nothing is changed.
func (s *nodeState) load(ctx context.Context) (checkpoint.Data, error) {
	d, stale, err := checkpoint.Load(s.path, s.bootID)
	if err != nil || !stale {
		return d, err
	}
	klog.FromContext(ctx).Info("Checkpoint is from an earlier boot; dropping its claims", "claims", len(d.Claims))
	for uid, c := range d.Claims {
		if err := removeFiles(c); err != nil {
			klog.FromContext(ctx).Error(err, "Removing files of a claim from an earlier boot", "claim", klog.KRef(c.Namespace, c.Name))
		}
		delete(d.Claims, uid)
	}
	d.BootID = s.bootID
	return d, nil
}

// peek reads the checkpoint without the lock: the file is replaced whole,
// never half written, so what it returns was true a moment ago. For
// questions whose answer is checked again under the lock, or is advice.
func (s *nodeState) peek() (checkpoint.Data, error) {
	d, _, err := checkpoint.Load(s.path, s.bootID)
	return d, err
}

// heldDevices are the devices the prepared (and preparing) claims of d
// hold, with the classic pool each was in when prepared.
func heldDevices(d checkpoint.Data) map[string]selector.Allocated {
	out := map[string]selector.Allocated{}
	for _, c := range d.Claims {
		for _, dev := range c.Devices {
			a := selector.Allocated{PoolKnown: dev.ClassicPool != nil}
			if a.PoolKnown {
				a.Pool = *dev.ClassicPool
			}
			out[dev.Name] = a
		}
	}
	return out
}

// save writes the checkpoint durably; call it with the lock held.
func (s *nodeState) save(d checkpoint.Data) error {
	if err := checkpoint.Save(s.path, d); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// setAside moves an unreadable checkpoint out of the way (it is kept for
// the operator, never deleted) and returns an empty one to rebuild.
func (s *nodeState) setAside(ctx context.Context, cause error) (checkpoint.Data, error) {
	aside, err := checkpoint.SetAside(s.path, time.Now())
	if err != nil {
		return checkpoint.Data{}, errors.Join(cause, err)
	}
	klog.FromContext(ctx).Error(cause, "Checkpoint is unreadable: kept aside, rebuilding from the driver's CDI specs and device-info files", "keptAs", aside)
	return checkpoint.Data{BootID: s.bootID, Claims: map[string]checkpoint.Claim{}}, nil
}

// markCorrupt records that the checkpoint could not be read, and reports
// whether that is news.
func (s *nodeState) markCorrupt() bool { return !s.unreadable.Swap(true) }

// healthy reports whether the state could be read every time it was.
func (s *nodeState) healthy() bool { return !s.unreadable.Load() }

// removeFiles deletes the files a claim's preparation wrote.
func removeFiles(e checkpoint.Claim) error {
	var errs []error
	for _, f := range append([]string{e.CDISpec}, e.InfoFiles...) {
		if f != "" {
			errs = append(errs, nodefiles.Remove(f))
		}
	}
	return errors.Join(errs...)
}
