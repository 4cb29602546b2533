package driver

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/nodestate"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// get asks the daemon's health socket.
func get(sock, path string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://daemon" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// fileID identifies a file beyond its name: a socket made again may get
// the same inode number, not the same change time.
type fileID struct {
	ino   uint64
	ctime syscall.Timespec
}

func idOf(t *testing.T, path string) fileID {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	sys := st.Sys().(*syscall.Stat_t)
	return fileID{sys.Ino, sys.Ctim}
}

// TestSecondInstanceIsRefused: a second daemon configured like a running
// one (the same directories, the same health socket) exits with the
// reason before it makes or removes anything: the first one's socket is
// the same file, still answering.
func TestSecondInstanceIsRefused(t *testing.T) {
	h, root := simhosttest.NewProfileHost(t, "e810")
	config := filepath.Join(root, "config.json")
	require.NoError(t, os.WriteFile(config, []byte(`{"resourceList":[{"resourceName":"net","selectors":{"drivers":["iavf"]}}]}`), 0o644))
	dir := t.TempDir()
	cfg := Config{DriverName: testDriver, NodeName: "node", Host: h, LegacyResources: []string{"intel.com/net"}, ConfigPath: config,
		PluginDir: filepath.Join(dir, "plugin"), CDIRoot: filepath.Join(dir, "cdi"), DevInfoDir: filepath.Join(dir, "devinfo"),
		DevicePluginDir: filepath.Join(dir, "dp"), HealthSocket: filepath.Join(dir, "health.sock")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool {
		code, _, err := get(cfg.HealthSocket, "/healthz")
		return err == nil && code == http.StatusOK
	},
		10*time.Second, 10*time.Millisecond, "the first instance serves")
	before := idOf(t, cfg.HealthSocket)

	err := Run(context.Background(), cfg)
	require.Error(t, err)
	assert.ErrorContains(t, err, "another sriov-dra instance runs on this node: it holds the instance lock "+filepath.Join(cfg.PluginDir, nodestate.InstanceLockName))
	assert.ErrorContains(t, err, "PID "+strconv.Itoa(os.Getpid()))
	assert.Equal(t, before, idOf(t, cfg.HealthSocket), "the first instance's socket is the same file")
	code, body, err := get(cfg.HealthSocket, "/healthz")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)
}

// TestAliveFailsWhenASocketIsGone: /healthz fails while a socket the
// kubelet reaches the driver through is gone or another's, and names it.
func TestAliveFailsWhenASocketIsGone(t *testing.T) {
	dir := t.TempDir()
	d := &Driver{}
	reg, dra := filepath.Join(dir, "reg.sock"), filepath.Join(dir, "dra.sock")
	for _, p := range []string{reg, dra} {
		ln, err := d.sockets.Listen(context.Background(), p)
		require.NoError(t, err)
		defer ln.Close()
	}
	require.NoError(t, d.alive())

	require.NoError(t, os.Remove(dra))
	assert.EqualError(t, d.alive(), "socket "+dra+" is gone")

	other, err := net.Listen("unix", dra)
	require.NoError(t, err)
	defer other.Close()
	assert.ErrorContains(t, d.alive(), "socket "+dra+" was replaced by another file")

	require.NoError(t, os.Remove(reg))
	assert.ErrorContains(t, d.alive(), "socket "+reg+" is gone")
}
