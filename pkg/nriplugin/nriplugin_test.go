package nriplugin

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// The runtime side of these tests is the NRI library's own adaptation
// package, in-process on a socket in the test's directory: what containerd
// embeds, and what the library's tests run against their plugins. It
// relays the test's sandbox events to the plugin over the real protocol.

// fakeRuntime is an NRI runtime with the pods it reports when a plugin
// connects. The plugin reaches it through a relay on the plugin's socket,
// so that crash can end its connections as a runtime's exit does (the
// adaptation's Stop leaves connected plugins' connections open: the
// process that embeds it is exiting anyway).
type fakeRuntime struct {
	nri  *adaptation.Adaptation
	ln   net.Listener
	once sync.Once

	mu    sync.Mutex
	conns []net.Conn
}

// startRuntime serves NRI on socket, listing pods to each plugin that
// connects; it crashes when the test ends.
func startRuntime(t *testing.T, socket string, pods ...*api.PodSandbox) *fakeRuntime {
	t.Helper()
	dir := t.TempDir()
	syncFn := func(ctx context.Context, cb adaptation.SyncCB) error {
		_, err := cb(ctx, pods, nil)
		return err
	}
	updateFn := func(context.Context, []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) { return nil, nil }
	inner := socket + ".runtime"
	// Its own plugin directories, so that no plugin installed on this
	// machine (/opt/nri/plugins) is started.
	nri, err := adaptation.New("fake-runtime", "v0", syncFn, updateFn,
		adaptation.WithPluginPath(filepath.Join(dir, "plugins")),
		adaptation.WithPluginConfigPath(filepath.Join(dir, "conf.d")),
		adaptation.WithSocketPath(inner))
	require.NoError(t, err)
	require.NoError(t, nri.Start())
	ln, err := net.Listen("unix", socket)
	require.NoError(t, err)
	rt := &fakeRuntime{nri: nri, ln: ln}
	go rt.relay(inner)
	t.Cleanup(rt.crash)
	return rt
}

// relay joins each connection to socket with one to the runtime.
func (r *fakeRuntime) relay(inner string) {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("unix", inner)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// crash ends the runtime as its exit does: the socket gone, every
// connection closed.
func (r *fakeRuntime) crash() {
	r.once.Do(func() {
		r.ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.nri.Stop()
	})
}

// The runtime's sandbox events, as containerd sends them: each waits for a
// plugin's registration in progress to finish, so that a plugin that has
// synchronized receives it.

func (r *fakeRuntime) runPodSandbox(pod *api.PodSandbox) error {
	defer r.nri.BlockPluginSync().Unblock()
	return r.nri.RunPodSandbox(context.Background(), &api.RunPodSandboxRequest{Pod: pod})
}

func (r *fakeRuntime) stopPodSandbox(pod *api.PodSandbox) error {
	defer r.nri.BlockPluginSync().Unblock()
	return r.nri.StopPodSandbox(context.Background(), &api.StopPodSandboxRequest{Pod: pod})
}

func (r *fakeRuntime) removePodSandbox(pod *api.PodSandbox) error {
	defer r.nri.BlockPluginSync().Unblock()
	return r.nri.RemovePodSandbox(context.Background(), &api.RemovePodSandboxRequest{Pod: pod})
}

// recorder is a Handler that records its calls.
type recorder struct {
	plugin    *Plugin // to see Connected() from inside a call
	createErr error

	mu      sync.Mutex
	created []Sandbox
	stopped []Sandbox
	exist   [][]Sandbox
	// connectedInExist is Connected() during each SandboxesExist call.
	connectedInExist []bool
}

func (r *recorder) SandboxCreated(ctx context.Context, sb Sandbox) error {
	klog.FromContext(ctx).Info("Handler called", "sandbox", sb.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.created = append(r.created, sb)
	return r.createErr
}

func (r *recorder) SandboxStopped(_ context.Context, sb Sandbox) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = append(r.stopped, sb)
	return nil
}

func (r *recorder) SandboxesExist(_ context.Context, all []Sandbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exist = append(r.exist, all)
	r.connectedInExist = append(r.connectedInExist, r.plugin.Connected())
}

// calls returns copies of what was recorded.
func (r *recorder) calls() (created, stopped []Sandbox, exist [][]Sandbox, connectedInExist []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sandbox(nil), r.created...), append([]Sandbox(nil), r.stopped...),
		append([][]Sandbox(nil), r.exist...), append([]bool(nil), r.connectedInExist...)
}

// counter counts OnConnected or OnDisconnected calls.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// logLines collects a text logger's lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// node is a plugin with a recording handler, run until the test ends, and
// what it reported.
type node struct {
	plugin                *Plugin
	handler               *recorder
	connects, disconnects *counter
	logs                  *logLines
	cancel                context.CancelFunc
	done                  chan struct{} // closed when Run returns
}

// runPlugin runs a plugin against socket, with a logger of the test's in
// Run's context.
func runPlugin(t *testing.T, socket string, createErr error) *node {
	t.Helper()
	n := &node{handler: &recorder{createErr: createErr}, connects: &counter{}, disconnects: &counter{}, logs: &logLines{},
		done: make(chan struct{})}
	n.plugin = New(Config{Socket: socket, Name: "sriov-dra", Index: "10", OnConnected: n.connects.inc, OnDisconnected: n.disconnects.inc}, n.handler)
	n.handler.plugin = n.plugin
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(n.logs)))))
	n.cancel = cancel
	go func() {
		defer close(n.done)
		n.plugin.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.done:
		case <-time.After(wait):
			t.Error("Run did not return after its context ended")
		}
	})
	return n
}

// Generous deadlines for what arrives asynchronously (a connection, a
// retry after 0.5-1s); the tests never wait for something not to happen.
const (
	wait = 10 * time.Second
	tick = 10 * time.Millisecond
)

// waitConnected waits for the plugin's count'th connection: OnConnected
// comes last, after Connected() turned true.
func waitConnected(t *testing.T, n *node, count int, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, func() bool { return n.connects.get() == count }, wait, tick, msgAndArgs...)
	require.True(t, n.plugin.Connected())
}

// pod is a sandbox as the runtime reports it, with the given namespaces
// (type → path).
func pod(id, uid, name string, namespaces ...[2]string) *api.PodSandbox {
	p := &api.PodSandbox{Id: id, Uid: uid, Namespace: "ns-" + name, Name: name, Linux: &api.LinuxPodSandbox{}}
	for _, ns := range namespaces {
		p.Linux.Namespaces = append(p.Linux.Namespaces, &api.LinuxNamespace{Type: ns[0], Path: ns[1]})
	}
	return p
}

func socketIn(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nri") // short: Unix socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "nri.sock")
}

// TestSandboxEventsReachTheHandler: what the runtime sends is turned into
// the handler's calls with the sandbox's identity and network namespace;
// the plugin counts as connected only once the handler has seen the list of
// existing sandboxes (the driver's readiness and its repair of netdevs of
// sandboxes that went while it was away depend on that order).
func TestSandboxEventsReachTheHandler(t *testing.T) {
	socket := socketIn(t)
	existing := pod("sb-old", "uid-old", "old", [2]string{"network", "/var/run/netns/cni-old"})
	rt := startRuntime(t, socket, existing)
	n := runPlugin(t, socket, nil)

	waitConnected(t, n, 1)
	_, _, exist, connectedInExist := n.handler.calls()
	assert.Equal(t, [][]Sandbox{{{ID: "sb-old", PodUID: "uid-old", Namespace: "ns-old", Name: "old", NetNS: "/var/run/netns/cni-old"}}}, exist)
	assert.Equal(t, []bool{false}, connectedInExist, "not connected while the handler repairs")

	tests := []struct {
		name string
		pod  *api.PodSandbox
		want Sandbox
	}{
		{"network namespace among others", pod("sb1", "uid-1", "a", [2]string{"ipc", "/proc/1/ns/ipc"}, [2]string{"network", "/var/run/netns/cni-1"}, [2]string{"uts", ""}),
			Sandbox{ID: "sb1", PodUID: "uid-1", Namespace: "ns-a", Name: "a", NetNS: "/var/run/netns/cni-1"}},
		{"host network: no network namespace", pod("sb2", "uid-2", "b", [2]string{"ipc", "/proc/2/ns/ipc"}),
			Sandbox{ID: "sb2", PodUID: "uid-2", Namespace: "ns-b", Name: "b"}},
		{"no Linux section at all", &api.PodSandbox{Id: "sb3", Uid: "uid-3", Namespace: "ns-c", Name: "c"},
			Sandbox{ID: "sb3", PodUID: "uid-3", Namespace: "ns-c", Name: "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, stoppedBefore, _, _ := n.handler.calls()
			require.NoError(t, rt.runPodSandbox(tc.pod))
			created, _, _, _ := n.handler.calls()
			assert.Equal(t, append(before, tc.want), created, "created")

			// The runtime stops a sandbox, then removes it: the handler
			// hears of both (a sandbox whose creation failed is only
			// removed).
			require.NoError(t, rt.stopPodSandbox(tc.pod))
			require.NoError(t, rt.removePodSandbox(tc.pod))
			_, stopped, _, _ := n.handler.calls()
			assert.Equal(t, append(stoppedBefore, tc.want, tc.want), stopped, "stopped, then removed")
		})
	}

	var handlerLine string
	for _, l := range n.logs.get() {
		if strings.Contains(l, `"Handler called"`) {
			handlerLine = l
			break
		}
	}
	assert.Contains(t, handlerLine, `logger="nri"`, "the handler logs through Run's logger, named nri")
}

// TestSandboxCreatedErrorFailsTheSandbox: the handler's error reaches the
// runtime, which fails the sandbox with it (the pod's events then say why
// its netdev could not be moved).
func TestSandboxCreatedErrorFailsTheSandbox(t *testing.T) {
	socket := socketIn(t)
	rt := startRuntime(t, socket)
	n := runPlugin(t, socket, errors.New("device pci-0000-3b-02-1: rename to net1: file exists"))
	waitConnected(t, n, 1)

	err := rt.runPodSandbox(pod("sb1", "uid-1", "a", [2]string{"network", "/var/run/netns/cni-1"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "device pci-0000-3b-02-1: rename to net1: file exists")
}

// TestReconnectsAfterRuntimeRestart: a runtime that goes away (a containerd
// restart) makes the plugin disconnected, and it connects again to the
// next one on the same socket, handing the handler that runtime's list.
// The runtime not being there yet when the plugin starts is the same case.
func TestReconnectsAfterRuntimeRestart(t *testing.T) {
	socket := socketIn(t)
	n := runPlugin(t, socket, nil)
	require.Eventually(t, func() bool { return n.disconnects.get() >= 1 }, wait, tick, "no runtime yet: a failed attempt")
	assert.False(t, n.plugin.Connected())

	rt := startRuntime(t, socket, pod("sb1", "uid-1", "a"))
	waitConnected(t, n, 1, "connects once the runtime is there")

	disconnects := n.disconnects.get()
	rt.crash()
	require.Eventually(t, func() bool { return n.disconnects.get() > disconnects }, wait, tick, "the loss is reported")
	assert.False(t, n.plugin.Connected(), "the runtime went away")

	rt = startRuntime(t, socket, pod("sb2", "uid-2", "b"))
	waitConnected(t, n, 2, "connects to the restarted runtime")
	_, _, exist, connectedInExist := n.handler.calls()
	assert.Equal(t, [][]Sandbox{{{ID: "sb1", PodUID: "uid-1", Namespace: "ns-a", Name: "a"}}, {{ID: "sb2", PodUID: "uid-2", Namespace: "ns-b", Name: "b"}}}, exist,
		"each runtime's list, once per connection")
	assert.Equal(t, []bool{false, false}, connectedInExist)

	// Events of the new connection reach the handler.
	require.NoError(t, rt.runPodSandbox(pod("sb3", "uid-3", "c")))
	created, _, _, _ := n.handler.calls()
	assert.Equal(t, []Sandbox{{ID: "sb3", PodUID: "uid-3", Namespace: "ns-c", Name: "c"}}, created)
}

// TestRunEndsWithItsContext: Run returns once its context ends (the
// daemon's shutdown), and the plugin no longer counts as connected.
func TestRunEndsWithItsContext(t *testing.T) {
	socket := socketIn(t)
	startRuntime(t, socket)
	n := runPlugin(t, socket, nil)
	waitConnected(t, n, 1)

	n.cancel()
	select {
	case <-n.done:
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
	assert.False(t, n.plugin.Connected())
}
