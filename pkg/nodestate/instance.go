package nodestate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/flock"
	"github.com/sriov-dra/sriov-dra/pkg/unixsock"
)

// InstanceLockName is the instance lock's file in the plugin directory.
const InstanceLockName = "instance.lock"

// LockInstance takes the node's instance lock, before the daemon makes or
// removes any socket or file (the lock file and its directory aside), and
// refuses to run when another instance's lock excludes this one.
//
// A node is served by one driver, with one exception: a DaemonSet's rolling
// update (maxSurge) runs the old and the new pod side by side, each with a
// rolling-update identity (--pod-uid) that every socket it makes is named
// after (the DRA helper's dra-<uid>.sock and registration socket, the
// shim's sockets). So:
//
//   - an instance without --pod-uid takes the lock exclusively: its socket
//     names are fixed (dra.sock, <driver>-reg.sock, the shim's), so a second
//     such instance would make the same paths. Its registrations would
//     replace the first's with the kubelet, and its exit would remove the
//     sockets the first is serving (this is how a second instance once
//     broke a live node);
//   - an instance with --pod-uid takes it shared: the pods of a rolling
//     update do not exclude each other;
//   - the two modes exclude each other, so an instance without --pod-uid is
//     refused while a DaemonSet pod runs, and a DaemonSet pod (which then
//     exits and is restarted with back-off, visibly) while one without
//     --pod-uid runs.
//
// The kernel releases a flock(2) lock when its holder dies, so a crash
// never leaves the node locked.
//
// shared is set for an instance with --pod-uid.
func LockInstance(ctx context.Context, pluginDir string, shared bool) (unlock func(), err error) {
	path := filepath.Join(pluginDir, InstanceLockName)
	mode := flock.Exclusive
	if shared {
		mode = flock.Shared
	}
	unlock, err = flock.TryLock(path, mode)
	if err == nil {
		klog.FromContext(ctx).V(2).Info("Took the instance lock", "path", path, "mode", mode.String())
		return unlock, nil
	}
	if !errors.Is(err, flock.ErrHeld) {
		return nil, fmt.Errorf("instance lock: %w", err)
	}
	holders := "another process"
	if hs, herr := flock.Holders(path); herr == nil {
		holders = describeHolders(hs)
	}
	if mode == flock.Shared {
		return nil, fmt.Errorf("another sriov-dra instance, without --pod-uid, runs on this node: it holds the instance lock %s (%s); "+
			"stop it: instances with --pod-uid (a DaemonSet's pods) overlap only with each other", path, holders)
	}
	return nil, fmt.Errorf("another sriov-dra instance runs on this node: it holds the instance lock %s (%s); "+
		"an instance without --pod-uid runs alone, stop the other one first", path, holders)
}

// describeHolders names the lock's holders for an operator: their PIDs and
// what kind of instance each is. A holder in another PID namespace (a
// container's) is listed as PID 0 or not at all.
func describeHolders(hs []flock.Holder) string {
	var parts []string
	for _, h := range hs {
		if h.PID <= 0 {
			continue
		}
		kind := "with --pod-uid"
		if h.Mode == flock.Exclusive {
			kind = "without --pod-uid"
		}
		parts = append(parts, "PID "+strconv.Itoa(h.PID)+", "+kind)
	}
	if len(parts) == 0 {
		return "a process whose PID this PID namespace does not show"
	}
	return strings.Join(parts, "; ")
}

// Sockets are the Unix sockets the DRA helper serves, made by the driver
// (kubeletplugin.PluginListener and RegistrarListener) so that they are
// never made over another's and removed only while they are still the
// driver's own, and so that /healthz can tell when one is gone.
type Sockets struct {
	mu  sync.Mutex
	lns []*unixsock.Listener
}

// Listen makes a socket at path (kubeletplugin.PluginListener and
// RegistrarListener call it).
func (s *Sockets) Listen(ctx context.Context, path string) (net.Listener, error) {
	ln, err := unixsock.Listen(ctx, path, 0o600)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lns = append(s.lns, ln)
	return ln, nil
}

// Check says which sockets are gone or were replaced: the kubelet can no
// longer reach the driver through them.
func (s *Sockets) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, ln := range s.lns {
		errs = append(errs, ln.Check())
	}
	return errors.Join(errs...)
}
