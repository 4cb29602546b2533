package metrics_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/metrics"
)

// monitoring is where the chart keeps the alerting rules and the dashboard.
const monitoring = "../../deployments/helm/sriov-dra/files"

// exposed returns the daemon's sriov_dra_* metric families and their types:
// those a scrape shows (every one a DRA-mode daemon exposes before anything
// happened), and the vectors that have no series yet, by their description.
func exposed(t *testing.T) map[string]string {
	t.Helper()
	m := metrics.New()
	scrape := serveSocket(t, m, metrics.Checks{})
	m.WatchSlices(func() bool { return true })
	families := map[string]string{}
	for line := range strings.SplitSeq(scrape(), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "sriov_dra_") {
			families[f[2]] = f[3]
		}
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	fields := 0
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		fields++
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		require.True(t, ok, v.Type().Field(i).Name)
		descs := make(chan *prometheus.Desc, 8)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			name := fqName.FindStringSubmatch(d.String())[1]
			if _, ok := families[name]; !ok {
				families[name] = "vector"
			}
		}
	}
	require.Len(t, families, fields+2, "every exported field's, and the two asked at each scrape (ready, slices synced)")
	return families
}

// used returns the sriov_dra_* names a file refers to, histogram series
// (_bucket, _sum, _count) by their family's name.
func used(t *testing.T, file string, families map[string]string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoring, file))
	require.NoError(t, err)
	var names []string
	for _, n := range regexp.MustCompile(`\bsriov_dra_[a-z_]+`).FindAllString(string(b), -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && families[base] == "histogram" {
				n = base
			}
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// TestAlertsAndDashboardUseOnlyRealMetrics: every sriov_dra_* name the
// alerting rules and the dashboard query is one the daemon exposes (a
// renamed metric breaks this, not a silent alert), and the dashboard shows
// every one of them.
func TestAlertsAndDashboardUseOnlyRealMetrics(t *testing.T) {
	families := exposed(t)
	for _, file := range []string{"alerts.yaml", "alerts_test.yaml", "dashboard.json"} {
		for _, n := range used(t, file, families) {
			assert.Contains(t, families, n, "%s queries a metric the daemon does not expose", file)
		}
	}
	onDashboard := used(t, "dashboard.json", families)
	for n := range families {
		assert.Contains(t, onDashboard, n, "the dashboard does not show %s", n)
	}
}
