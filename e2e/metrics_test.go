//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// probe runs `sriov-dra probe`, as the DaemonSet's exec probes do.
func probe(t *testing.T, sock, check string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(*binDir, "sriov-dra"), "probe", "--health-socket", sock, check)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	require.NoError(t, err)
	return 0, out.String()
}

// scrape reads a Prometheus text exposition into series → value
// (`name{labels}` exactly as exposed).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, "http://"+addr+"/metrics")
}

// scrapeWith is scrape through a given client (e.g. one dialing the health
// socket).
func scrapeWith(t *testing.T, client *http.Client, url string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// sum adds up every series of a metric.
func sum(series map[string]float64, name string) float64 {
	total := 0.0
	for k, v := range series {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// TestMetricsAndReadiness: /readyz fails until the real kubelet has
// registered the plugin and passes after; /metrics counts exactly the
// devices in the slices and times the pod's prepare.
func TestMetricsAndReadiness(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	// Registration waits in a directory the kubelet does not watch, until
	// the test hands the socket over.
	// (on the kubelet's file system: the socket is renamed, not copied).
	registrar := filepath.Join(cluster.KubeletRootDir(), "e2e-registration-held")
	require.NoError(t, os.MkdirAll(registrar, 0o750))
	t.Cleanup(func() { _ = os.RemoveAll(registrar) })
	sock := filepath.Join(t.TempDir(), "health.sock")
	addr := freeLoopbackAddr(t)
	startDriver(t, driverOpts{host: h, registrar: registrar, rescan: time.Minute,
		extraFlags: []string{"--metrics-addr", addr, "--health-socket", sock}})

	code, out := probe(t, sock, "healthz")
	assert.Equal(t, 0, code, out)
	code, out = probe(t, sock, "readyz")
	assert.Equal(t, 1, code, "published but not registered: not ready")
	assert.Contains(t, out, "not registered with the kubelet yet")

	entries, err := os.ReadDir(registrar)
	require.NoError(t, err)
	require.Len(t, entries, 1, "one registration socket")
	moved := filepath.Join(cluster.KubeletRootDir(), "plugins_registry", entries[0].Name())
	registered := kubeletRegistrations()
	require.NoError(t, os.Rename(filepath.Join(registrar, entries[0].Name()), moved))
	t.Cleanup(func() { _ = os.Remove(moved) })
	handed := time.Now()
	require.Eventually(t, func() bool { return kubeletRegistrations() > registered }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { code, _ := probe(t, sock, "readyz"); return code == 0 }, 10*time.Second, 50*time.Millisecond)
	t.Logf("ready %s after the kubelet found the registration socket", time.Since(handed).Round(time.Millisecond))

	m := scrape(t, addr)
	slices := publishedDevices(nodeSlices(ctx, t, cluster.NodeName))
	assert.Equal(t, float64(len(slices)), sum(m, "sriov_dra_devices_published"), "published-device count equals the slices' device count")
	assert.Equal(t, float64(len(deviceNames(t, h))), sum(m, "sriov_dra_devices_published"), "and the simulated host's")
	assert.Equal(t, 0.0, m["sriov_dra_prepare_duration_seconds_count"])
	assert.Positive(t, sum(m, "sriov_dra_resourceslice_writes_total"))

	classWithConfig(ctx, t, "e2e-metrics", fmt.Sprintf(`device.driver == %q`, driverName), "")
	ns := framework.Namespace(ctx, t, cluster.Client, "metrics")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "pod", "true", "dev"), simpleClaim(ns, "dev", "e2e-metrics", 1))
	m = scrape(t, addr)
	assert.Equal(t, 1.0, m["sriov_dra_prepare_duration_seconds_count"], "the pod's prepare is in the histogram")
	assert.Positive(t, m["sriov_dra_prepare_duration_seconds_sum"])
	assert.Equal(t, 1.0, m[`sriov_dra_prepare_duration_seconds_bucket{le="+Inf"}`])
	assert.Zero(t, sum(m, "sriov_dra_prepare_errors_total"), "no failed prepare, of a claim or a call")
	t.Logf("prepare took %.1f ms by the histogram's sum", 1000*m["sriov_dra_prepare_duration_seconds_sum"])
}
