package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/metrics"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	m := metrics.New()
	m.PrepareDuration.Observe(0.003)
	m.DevicesPublished.WithLabelValues("netDevice", "intel.com/x").Set(4)
	ready := errors.New("not registered with the kubelet yet")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "health.sock")
	require.NoError(t, m.Serve(ctx, metrics.ServeConfig{Addr: "127.0.0.1:0", Socket: sock}, metrics.Checks{Ready: func() error { return ready }}))
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	code, body := get(t, unix, "http://health/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "not registered with the kubelet yet")
	_, body = get(t, unix, "http://health/metrics")
	assert.Contains(t, body, "\nsriov_dra_ready 0\n", "the metric says what /readyz says")
	ready = nil
	code, _ = get(t, unix, "http://health/readyz")
	assert.Equal(t, http.StatusOK, code)
	_, body = get(t, unix, "http://health/metrics")
	assert.Contains(t, body, "\nsriov_dra_ready 1\n")
	code, _ = get(t, unix, "http://health/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, body = get(t, unix, "http://health/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `sriov_dra_devices_published{pool="intel.com/x",type="netDevice"} 4`)
	assert.Contains(t, body, "sriov_dra_prepare_duration_seconds_count 1")
	assert.Contains(t, body, "go_goroutines")
	assert.True(t, strings.Contains(body, "process_resident_memory_bytes"))
}

// TestErrorReasonsStartAtZero: every reason a prepare or unprepare can fail
// with is exposed at 0 before any failure, so that increase() over the first
// failure of a reason is 1, not nothing (the alerts rest on it).
func TestErrorReasonsStartAtZero(t *testing.T) {
	m := metrics.New()
	scrape := serveSocket(t, m, metrics.Checks{})
	body := scrape()
	for _, r := range []string{"claim", "checkpoint", "discovery", "bind", "canceled", "other"} {
		assert.Contains(t, body, fmt.Sprintf("sriov_dra_prepare_errors_total{reason=%q} 0\n", r))
	}
	for _, r := range []string{"claim", "checkpoint", "canceled", "other"} {
		assert.Contains(t, body, fmt.Sprintf("sriov_dra_unprepare_errors_total{reason=%q} 0\n", r))
	}
	m.PrepareErrors.WithLabelValues(metrics.ReasonBind).Inc()
	assert.Contains(t, scrape(), `sriov_dra_prepare_errors_total{reason="bind"} 1`+"\n")
}

// TestSlicesSynced: sriov_dra_resourceslices_synced is asked of the writer
// at each scrape, and absent until a writer is watched (the legacy shim
// alone publishes nothing).
func TestSlicesSynced(t *testing.T) {
	m := metrics.New()
	scrape := serveSocket(t, m, metrics.Checks{})
	assert.NotContains(t, scrape(), "sriov_dra_resourceslices_synced")
	synced := false
	m.WatchSlices(func() bool { return synced })
	m.WatchSlices(func() bool { return true }) // only the first counts
	assert.Contains(t, scrape(), "\nsriov_dra_resourceslices_synced 0\n")
	synced = true
	assert.Contains(t, scrape(), "\nsriov_dra_resourceslices_synced 1\n")
}

// serveSocket serves m on a Unix socket until the test ends and returns a
// function that reads its /metrics.
func serveSocket(t *testing.T, m *metrics.Metrics, checks metrics.Checks) func() string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(t.TempDir(), "health.sock")
	require.NoError(t, m.Serve(ctx, metrics.ServeConfig{Socket: sock}, checks))
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	return func() string {
		code, body := get(t, unix, "http://health/metrics")
		require.Equal(t, http.StatusOK, code)
		return body
	}
}

// TestTwoInstancesShareTheAddress: during a rolling update both instances
// listen on the same host port.
func TestTwoInstancesShareTheAddress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := freeAddr(t)
	require.NoError(t, metrics.New().Serve(ctx, metrics.ServeConfig{Addr: addr}, metrics.Checks{}))
	require.NoError(t, metrics.New().Serve(ctx, metrics.ServeConfig{Addr: addr}, metrics.Checks{}), "the second instance binds too")
}

// TestProfilingOnlyOnTheSocket: --profiling serves pprof on the root-only
// Unix socket, never on the network address; off, neither has it.
func TestProfilingOnlyOnTheSocket(t *testing.T) {
	for _, profiling := range []bool{true, false} {
		t.Run(fmt.Sprintf("profiling=%t", profiling), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr := freeAddr(t)
			sock := filepath.Join(t.TempDir(), "health.sock")
			require.NoError(t, metrics.New().Serve(ctx, metrics.ServeConfig{Addr: addr, Socket: sock, Profiling: profiling}, metrics.Checks{}))
			unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
			code, body := get(t, unix, "http://health/debug/pprof/heap?debug=1")
			if profiling {
				assert.Equal(t, http.StatusOK, code)
				assert.Contains(t, body, "heap profile:")
			} else {
				assert.Equal(t, http.StatusNotFound, code)
			}
			code, _ = get(t, http.DefaultClient, "http://"+addr+"/debug/pprof/heap?debug=1")
			assert.Equal(t, http.StatusNotFound, code, "never on the network")
			code, _ = get(t, unix, "http://health/metrics")
			assert.Equal(t, http.StatusOK, code, "the socket still serves the rest")
		})
	}
}

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
