package deviceplugin

// How a resource's endpoint is made, registered and replaced rests on what
// the kubelet's device manager (k8s.io/kubernetes v1.37,
// pkg/kubelet/cm/devicemanager) does with registrations:
//
//   - It keeps every endpoint of a resource, keyed by socket path
//     (ManagerImpl.endpointStore in manager.go). A registration whose path it
//     already has fails in PluginConnected with "device plugin already
//     connected: <path>".
//   - That failure is worse than a refusal: the registration server's
//     connectClient (plugin/v1beta1/handler.go) then calls deregisterClient
//     with the path, which drops every client of that path, the first,
//     working one too. When the first endpoint's ListAndWatch stream ends,
//     runClient finds no client and never calls PluginDisconnected, so the
//     stale endpoint stays in the store: every later registration of the
//     path fails the same way, and Allocate and GetPreferredAllocation dial a
//     socket nobody serves, until the kubelet restarts. (Two instances
//     registering one path did exactly that on a live node: a register and
//     deregister every 100 ms, allocatable unchanged, pods failing.)
//   - A new path for the same resource is accepted beside the old one and
//     becomes the endpoint Allocate uses (PluginConnected sets
//     m.endpoints[resource]). When an endpoint's stream ends, its
//     PluginDisconnected removes it and promotes a remaining one; only the
//     last one's disconnection marks the resource's devices unhealthy
//     (markResourceUnhealthy), and pods admitted then fail with
//     UnexpectedAdmissionError.
//   - A restarting kubelet forgets every endpoint and removes every socket
//     in its directory (CleanupPluginDirectory).
//
// So a path is registered at most once with a kubelet: each start makes a
// socket with a new name (a counter, per resource and process), and an
// instance with a rolling-update identity puts a digest of it in every
// name, so that the old and the new pod never make the same path. And a
// new endpoint is registered before the one it replaces is stopped (make
// before break): the kubelet never has no endpoint for the resource, in a
// re-registration of one process as in the handover of a rolling update,
// where the new pod registers beside the old one and the old one's
// endpoint goes when its pod stops.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sriov-dra/sriov-dra/pkg/unixsock"
)

// maxSocketPath is the longest path of a Unix socket on Linux (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// instanceTag is what a rolling-update identity (a pod UID, 36 characters)
// contributes to socket names: short, since socket paths are, and unique
// enough between the two pods of one node.
func instanceTag(identity string) string {
	if identity == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(identity))
	return hex.EncodeToString(sum[:6])
}

// socketName is the name of the socket of a resource's endpoint:
// <driver>-<resource with / as _>[-<instance tag>][-<start>].sock, where
// start counts the sockets made before (none for the first).
func socketName(driverName, resource, instance string, start int) string {
	name := driverName + "-" + strings.ReplaceAll(resource, "/", "_")
	return name + suffix(instance, start)
}

func suffix(instance string, start int) string {
	s := ""
	if instance != "" {
		s += "-" + instance
	}
	if start > 0 {
		s += "-" + strconv.Itoa(start)
	}
	return s + ".sock"
}

// socketPath is where the resource's endpoint number start listens. A
// resource name too long for a socket path is replaced by a digest.
func (r *resource) socketPath(start int) string {
	p := filepath.Join(r.m.cfg.Dir, socketName(r.m.cfg.DriverName, r.name, r.m.instance, start))
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(r.m.cfg.DriverName + "\x00" + r.name))
	return filepath.Join(r.m.cfg.Dir, "dp-"+hex.EncodeToString(sum[:8])+suffix(r.m.instance, start))
}

// start makes a new endpoint for the resource under a name the kubelet has
// not seen from this process, registers it, and only then stops the
// endpoint it replaces.
func (r *resource) start(ctx context.Context) error {
	path := r.socketPath(r.m.nextStart(r.name))
	ln, err := unixsock.Listen(ctx, path, 0o600)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	if err := r.register(ctx, filepath.Base(path)); err != nil {
		srv.Stop()
		return err
	}
	r.mu.Lock()
	if r.stopped {
		// The pool left the config while this registered: it is served no more.
		r.mu.Unlock()
		srv.Stop()
		return nil
	}
	prev := r.server
	r.server, r.ln = srv, ln
	r.mu.Unlock()
	if prev != nil {
		prev.Stop()
	}
	return nil
}

// register announces the endpoint at the kubelet's registration socket.
func (r *resource) register(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+r.m.kubeletSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to the kubelet at %s: %w", r.m.kubeletSocket(), err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     endpoint,
		ResourceName: r.name,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("register %s at endpoint %s with the kubelet: %w", r.name, endpoint, err)
	}
	return nil
}

// stop ends the resource's service for good: the gRPC server and its
// streams (the kubelet drops the endpoint when its stream ends) and the
// socket, if the file at its path is still ours.
func (r *resource) stop() {
	r.mu.Lock()
	srv := r.server
	r.server, r.stopped = nil, true
	r.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// serving reports whether the endpoint runs and its socket is still the
// one it made: the kubelet removes every socket in its directory when it
// starts, and another process may have replaced it.
func (r *resource) serving() bool {
	return r.check() == nil
}

// check says why the resource's endpoint cannot be reached, if it cannot.
func (r *resource) check() error {
	r.mu.Lock()
	srv, ln := r.server, r.ln
	r.mu.Unlock()
	if srv == nil {
		return errors.New("not serving")
	}
	return ln.Check()
}

// socket is the path the kubelet dials for the resource now ("" before
// the first start).
func (r *resource) socket() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return ""
	}
	return r.ln.Path()
}
