package unixsock_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/unixsock"
)

// other is a socket made and served by someone else (another instance),
// with Go's own listener as any program would.
func other(t *testing.T, path string) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// answers reports whether a process accepts connections on path.
func answers(path string) bool {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func TestListenAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := unixsock.Listen(context.Background(), path, 0o600)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o600, st.Mode())
	assert.NoError(t, l.Check())
	assert.True(t, answers(path))
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close (a gRPC server's Stop, then ours) is harmless")
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "our own socket is removed")
}

// TestListenLeavesAServedSocket: a socket another process serves is never
// removed; the error says so.
func TestListenLeavesAServedSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	other(t, path)
	_, err := unixsock.Listen(context.Background(), path, 0o600)
	require.ErrorIs(t, err, unixsock.ErrInUse)
	assert.ErrorContains(t, err, path)
	assert.True(t, answers(path), "the other's socket is still there and served")
}

// TestListenReplacesADeadSocket: a socket whose process is gone (kill -9
// leaves it) refuses connections and is replaced.
func TestListenReplacesADeadSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	dead, err := net.Listen("unix", path)
	require.NoError(t, err)
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, dead.Close())
	require.False(t, answers(path))
	l, err := unixsock.Listen(context.Background(), path, 0o600)
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	assert.True(t, answers(path))
}

func TestListenLeavesOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	require.NoError(t, os.WriteFile(path, []byte("not a socket"), 0o600))
	_, err := unixsock.Listen(context.Background(), path, 0o600)
	require.ErrorContains(t, err, "is not a socket")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "not a socket", string(b))
}

// TestCloseLeavesAReplacement: when another process has replaced our
// socket, Close removes nothing: the path is the other's now.
func TestCloseLeavesAReplacement(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := unixsock.Listen(context.Background(), path, 0o600)
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	other(t, path)
	assert.ErrorContains(t, l.Check(), "was replaced by another file")
	require.NoError(t, l.Close())
	assert.True(t, answers(path), "the other's socket survives our Close")
}

func TestCheckSeesTheSocketGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := unixsock.Listen(context.Background(), path, 0o600)
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	require.NoError(t, os.Remove(path))
	assert.EqualError(t, l.Check(), "socket "+path+" is gone")
}
