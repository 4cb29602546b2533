package deviceplugin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

const dpdk = "intel.com/dpdk"

// instance is one shim process of the tests below: a Manager serving the
// dpdk pool in dir, not yet running.
func instance(t *testing.T, dir, podUID string) *Manager {
	t.Helper()
	h, root := simhosttest.NewProfileHost(t, "e810")
	cfg, err := classic.Parse([]byte(poolsJSON), "")
	require.NoError(t, err)
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	pools, err := selector.Select(cfg, inv)
	require.NoError(t, err)
	m := New(Config{DriverName: "sriov.dra.dev", Dir: dir, Resources: []string{dpdk}, Host: h, DevInfoDir: filepath.Join(root, "devinfo"),
		PollInterval: 5 * time.Millisecond, Instance: podUID})
	m.Update(context.Background(), inv, pools)
	return m
}

// run runs m until the returned function, which returns once m has
// stopped (its endpoints stopped and its sockets removed).
func run(m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func (m *Manager) resource(name string) *resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resources[name]
}

// serves answers once a process accepts connections on path.
func serves(path string) bool {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// openStreams replays the registrar's events and fails the test at any
// moment, after the first connection, when the kubelet would have had no
// endpoint for the resource: its devices would turn unhealthy and a pod
// admitted then would fail.
func openStreams(t *testing.T, events []string) {
	t.Helper()
	open := 0
	for i, e := range events {
		switch {
		case strings.HasPrefix(e, "connected "):
			open++
		case strings.HasPrefix(e, "ended "):
			open--
			assert.Positive(t, open, "no endpoint left after event %d of %v", i, events)
		}
	}
}

func (r *registrar) snapshot() (events, refused []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...), append([]string(nil), r.refused...)
}

// TestRollingUpdateHandover: the old and the new pod of a rolling update
// serve the same resource from the same directory. Each registers its own
// socket, the kubelet holds both, and when the old one stops it removes
// only its own: the kubelet always has an endpoint, and never sees a path
// twice.
func TestRollingUpdateHandover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dp")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	kube := startRegistrar(t, dir)
	old := instance(t, dir, "7f0c6a1e-old-pod")
	stopOld := run(old)
	require.Eventually(t, old.Registered, 5*time.Second, 5*time.Millisecond)
	oldSock := old.resource(dpdk).socket()

	next := instance(t, dir, "2b9d4c3f-new-pod")
	stopNext := run(next)
	defer stopNext()
	require.Eventually(t, next.Registered, 5*time.Second, 5*time.Millisecond)
	nextSock := next.resource(dpdk).socket()
	assert.NotEqual(t, oldSock, nextSock, "two pods, two paths")
	next.mu.Lock()
	assert.Equal(t, 1, next.starts[dpdk], "the new pod's first socket name was its own: it did not have to step around the old pod's")
	next.mu.Unlock()
	assert.True(t, serves(oldSock), "the new pod left the old one's socket alone")
	assert.NoError(t, old.Check())

	stopOld()
	_, err := os.Stat(oldSock)
	assert.True(t, os.IsNotExist(err), "the old pod removed its own socket")
	assert.True(t, serves(nextSock), "and left the new one's")
	assert.NoError(t, next.Check())
	require.Eventually(t, func() bool { ev, _ := kube.snapshot(); return len(ev) == 3 }, 5*time.Second, 5*time.Millisecond)
	events, refused := kube.snapshot()
	assert.Equal(t, []string{"connected " + filepath.Base(oldSock), "connected " + filepath.Base(nextSock), "ended " + filepath.Base(oldSock)}, events)
	assert.Empty(t, refused)
	openStreams(t, events)
}

// TestAnothersSocketIsLeftAlone: a socket someone else serves at the path
// the shim would use first is not removed; the shim serves under the next
// name. When another process then replaces the shim's socket, the shim
// registers a new one before it stops the old endpoint, and leaves the
// replacement where it is.
func TestAnothersSocketIsLeftAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dp")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	kube := startRegistrar(t, dir)
	first := filepath.Join(dir, socketName("sriov.dra.dev", dpdk, "", 0))
	squatter, err := net.Listen("unix", first)
	require.NoError(t, err)
	defer squatter.Close()

	m := instance(t, dir, "")
	defer run(m)()
	require.Eventually(t, m.Registered, 5*time.Second, 5*time.Millisecond)
	ours := m.resource(dpdk).socket()
	assert.Equal(t, filepath.Join(dir, socketName("sriov.dra.dev", dpdk, "", 1)), ours)
	assert.True(t, serves(first), "the other's socket is still there and served")

	require.NoError(t, os.Remove(ours))
	replacement, err := net.Listen("unix", ours)
	require.NoError(t, err)
	defer replacement.Close()
	require.Eventually(t, func() bool { return m.resource(dpdk).socket() != ours && m.Registered() }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, serves(ours), "the replacement survives the old endpoint's stop")
	assert.True(t, serves(first))
	assert.NoError(t, m.Check())
	require.Eventually(t, func() bool { ev, _ := kube.snapshot(); return len(ev) == 3 }, 5*time.Second, 5*time.Millisecond)
	events, refused := kube.snapshot()
	assert.Equal(t, []string{"connected " + filepath.Base(ours), "connected " + filepath.Base(m.resource(dpdk).socket()), "ended " + filepath.Base(ours)}, events,
		"the new endpoint before the old one's end")
	assert.Empty(t, refused)
	openStreams(t, events)
}

// TestCheckFailsWhenOurSocketIsGone: /healthz's part from the shim. With
// no Run loop to repair it, a socket removed or replaced stays failed.
func TestCheckFailsWhenOurSocketIsGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dp")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	startRegistrar(t, dir)
	m := instance(t, dir, "")
	defer m.stopAll()
	assert.NoError(t, m.Check(), "not registered yet: not a liveness failure")
	r := m.resource(dpdk)
	require.NoError(t, r.start(context.Background()))
	sock := r.socket()
	require.NoError(t, m.Check())

	require.NoError(t, os.Remove(sock))
	err := m.Check()
	require.Error(t, err)
	assert.Equal(t, "classic resource intel.com/dpdk: socket "+sock+" is gone", err.Error())

	replacement, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer replacement.Close()
	assert.ErrorContains(t, m.Check(), "socket "+sock+" was replaced by another file")
	m.stopAll()
	assert.True(t, serves(sock), "stop leaves the replacement alone")
}

// TestRemovedSocketIsRegisteredAnew: a socket removed under a running
// kubelet is made again under a new name, registered before the old
// endpoint stops: the kubelet, which still holds the old path, is never
// asked to take it twice.
func TestRemovedSocketIsRegisteredAnew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dp")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	kube := startRegistrar(t, dir)
	m := instance(t, dir, "")
	defer run(m)()
	require.Eventually(t, m.Registered, 5*time.Second, 5*time.Millisecond)
	ours := m.resource(dpdk).socket()
	require.NoError(t, os.Remove(ours))
	require.Eventually(t, func() bool { return m.resource(dpdk).socket() != ours && m.Registered() }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { ev, _ := kube.snapshot(); return len(ev) == 3 }, 5*time.Second, 5*time.Millisecond)
	events, refused := kube.snapshot()
	assert.Empty(t, refused)
	openStreams(t, events)
}
