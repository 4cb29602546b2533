//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The chart's alerting rules and dashboard: the files the PrometheusRule and
// the dashboard ConfigMap ship.
const (
	alertRules = "../deployments/helm/sriov-dra/files/alerts.yaml"
	dashboard  = "../deployments/helm/sriov-dra/files/dashboard.json"
)

// promServer is a real Prometheus (the pinned build, make tools) on
// loopback.
type promServer struct {
	url string
	log string
}

// startPrometheus runs Prometheus with a config of the test's: every second
// it scrapes target (loopback) as job sriov-dra and evaluates the chart's
// alerting rules, with every `for:` shortened to forDuration.
func startPrometheus(t *testing.T, target string, forDuration time.Duration) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(alertRules)
	require.NoError(t, err)
	forLine := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	require.NotEmpty(t, forLine.FindAllIndex(rules, -1), "the rules have for: durations to shorten")
	rules = forLine.ReplaceAll(rules, []byte("${1} "+forDuration.String()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts.yaml"), rules, 0o600))
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yaml]
scrape_configs:
- job_name: sriov-dra
  static_configs:
  - targets: [%q]
`, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600))
	addr := freeLoopbackAddr(t)
	p := &promServer{url: "http://" + addr, log: filepath.Join(cluster.LogDir, fmt.Sprintf("prometheus-%s-%d.log", t.Name(), time.Now().UnixNano()))}
	f, err := os.Create(p.log)
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(*binDir, "prometheus"),
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("prometheus log %s (last 3000 bytes):\n%s", p.log, tail(string(b), 3000))
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "prometheus ready; its log: %s", p.log)
	return p
}

// api GETs a Prometheus HTTP API path and decodes its data into out.
func (p *promServer) api(t *testing.T, path string, query url.Values, out any) {
	t.Helper()
	resp, err := http.Get(p.url + path + "?" + query.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "success", body.Status, "%s %v: %s", path, query, body.Error)
	require.NoError(t, json.Unmarshal(body.Data, out))
}

// query is an instant query's result: each series' labels and value.
func (p *promServer) query(t *testing.T, expr string) []promSample {
	t.Helper()
	var data struct {
		Result []promSample `json:"result"`
	}
	p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	return data.Result
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

// alerts is /api/v1/alerts: the pending and firing alerts.
func (p *promServer) alerts(t *testing.T) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", nil, &data)
	return data.Alerts
}

// TestAlerts: a real Prometheus scrapes a driver on a simulated host and
// evaluates the chart's alerting rules as shipped (only the for: durations
// shortened to 3 s). All rules load and evaluate without error, and nothing
// fires for a healthy driver; a PF link down makes SriovDraDevicesUnhealthy
// pending, then firing for that target with the down PF's 4 VFs, and link up
// resolves it, all read from Prometheus's own /api/v1/alerts. Every query of
// the dashboard runs on that Prometheus without error.
func TestAlerts(t *testing.T) {
	h := newSimHost(t, profiles(t, "e810"))
	addr := freeLoopbackAddr(t)
	startDriver(t, driverOpts{host: h, rescan: time.Minute, extraFlags: []string{"--metrics-addr", addr}})
	const forDuration = 3 * time.Second
	prom := startPrometheus(t, addr, forDuration)

	require.Eventually(t, func() bool {
		up := prom.query(t, `up{job="sriov-dra"}`)
		return len(up) == 1 && up[0].Value[1] == "1"
	}, 30*time.Second, 200*time.Millisecond, "prometheus scrapes the driver")
	// The rules as shipped load, and every one evaluates without error.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Type      string `json:"type"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	shipped := regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`)
	b, err := os.ReadFile(alertRules)
	require.NoError(t, err)
	want := map[string]bool{}
	for _, m := range shipped.FindAllStringSubmatch(string(b), -1) {
		want[m[1]] = true
	}
	require.Eventually(t, func() bool {
		prom.api(t, "/api/v1/rules", url.Values{"type": {"alert"}}, &rules)
		got := 0
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if want[r.Name] && r.Health == "ok" {
					got++
				}
				assert.Empty(t, r.LastError, r.Name)
			}
		}
		return got == len(want)
	}, 10*time.Second, 200*time.Millisecond, "all %d alerting rules evaluated, health ok: %+v", len(want), rules)
	// The driver as Prometheus sees it: ready, its slices in the API, its
	// checkpoint readable, every device healthy.
	healthy := map[string]string{"sriov_dra_ready": "1", "sriov_dra_resourceslices_synced": "1",
		"sriov_dra_checkpoint_readable": "1", "sriov_dra_devices_unhealthy": "0"}
	got := map[string]string{}
	require.Eventually(t, func() bool {
		for m := range healthy {
			got[m] = ""
			if v := prom.query(t, m); len(v) == 1 {
				got[m], _ = v[0].Value[1].(string)
			}
		}
		return assert.ObjectsAreEqual(healthy, got)
	}, 30*time.Second, 200*time.Millisecond, "the driver healthy, through Prometheus: %v", got)

	// Anything that fires during the test, by name.
	seen := map[string]bool{}
	devicesUnhealthy := func() *promAlert {
		var found *promAlert
		for _, a := range prom.alerts(t) {
			seen[a.Labels["alertname"]+" "+a.State] = true
			if a.Labels["alertname"] == "SriovDraDevicesUnhealthy" {
				found = &a
			}
		}
		return found
	}
	never(t, func() bool { return devicesUnhealthy() != nil }, 2*forDuration, 200*time.Millisecond, "an alert for a healthy driver")

	setLink(t, h, "ens1f1", false)
	t.Cleanup(func() { setLink(t, h, "ens1f1", true) })
	down := time.Now()
	var pendingAfter time.Duration
	var firing *promAlert
	require.Eventually(t, func() bool {
		a := devicesUnhealthy()
		if a != nil && a.State == "pending" && pendingAfter == 0 {
			pendingAfter = time.Since(down)
		}
		if a != nil && a.State == "firing" {
			firing = a
		}
		return firing != nil
	}, 60*time.Second, 200*time.Millisecond, "SriovDraDevicesUnhealthy fires after the PF link went down")
	firedAfter := time.Since(down)
	t.Logf("SriovDraDevicesUnhealthy pending %s and firing %s after the link went down (for: %s)",
		pendingAfter.Round(time.Millisecond), firedAfter.Round(time.Millisecond), forDuration)
	assert.NotZero(t, pendingAfter, "pending before firing: the rule's for: holds it")
	assert.GreaterOrEqual(t, firedAfter-pendingAfter, forDuration-time.Second, "pending for about the for: duration")
	assert.Equal(t, "sriov-dra", firing.Labels["job"])
	assert.Equal(t, addr, firing.Labels["instance"])
	assert.Equal(t, "warning", firing.Labels["severity"])
	assert.Equal(t, "4e+00", firing.Value, "the down PF's 4 VFs")
	assert.Contains(t, firing.Annotations["description"], "4 devices on "+addr+" have had their PF link down")
	assert.Equal(t, "https://github.com/sriov-dra/sriov-dra/blob/main/docs/alerts.md#sriovdradevicesunhealthy", firing.Annotations["runbook_url"])

	setLink(t, h, "ens1f1", true)
	up := time.Now()
	require.Eventually(t, func() bool { return devicesUnhealthy() == nil }, 60*time.Second, 200*time.Millisecond,
		"SriovDraDevicesUnhealthy resolves after link up")
	t.Logf("SriovDraDevicesUnhealthy resolved %s after the link came up", time.Since(up).Round(time.Millisecond))
	assert.Equal(t, map[string]bool{"SriovDraDevicesUnhealthy pending": true, "SriovDraDevicesUnhealthy firing": true}, seen,
		"no other alert was pending or firing")

	// The dashboard's queries, with its variables set to everything.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err = os.ReadFile(dashboard)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dash))
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$__rate_interval", "1m")
	queries, withData := 0, 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			queries++
			if len(prom.query(t, vars.Replace(target.Expr))) > 0 {
				withData++
			}
		}
	}
	require.Positive(t, queries)
	t.Logf("the dashboard's %d queries all run; %d have data from this driver", queries, withData)
}
