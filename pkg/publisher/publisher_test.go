package publisher

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodeevents"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// recorder stands in for the slice writer, recording the pools handed on.
type recorder struct {
	calls []resourceslice.Pool
}

func (r *recorder) Update(pool resourceslice.Pool) { r.calls = append(r.calls, pool) }

// newTestPublisher is a publisher of node "node" whose pools go to rec.
func newTestPublisher(h discovery.Host, cfgPath, prefix string, m *metrics.Metrics, rec *recorder) *Publisher {
	p := New(Config{Host: h, DriverName: "sriov.dra.dev", NodeName: "node", ConfigPath: cfgPath, ResourcePrefix: prefix, Metrics: m,
		LinkDownEffect: resourceapi.DeviceTaintEffectNoSchedule})
	p.slices = rec
	return p
}

func resourceNames(pool resourceslice.Pool) map[string]string {
	out := map[string]string{}
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			if v, ok := d.Attributes[resourceslices.AttrMultusResourceName]; ok {
				out[d.Name] = *v.StringValue
			}
		}
	}
	return out
}

func TestPublisherSyncAndReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "host")
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2}}}
	require.NoError(t, simhost.Write(hostDir, spec))
	cfgPath := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"net","selectors":{"pfNames":["ens1f0"]}}]}`), 0o644))
	rec := &recorder{}
	h, err := simhost.Open(hostDir)
	require.NoError(t, err)
	p := newTestPublisher(h, cfgPath, "intel.com", metrics.New(), rec)

	published, err := p.Sync(ctx)
	require.NoError(t, err)
	require.True(t, published)
	assert.Equal(t, map[string]string{"pci-0000-3b-02-0": "intel.com/net", "pci-0000-3b-02-1": "intel.com/net"}, resourceNames(rec.calls[0]))

	published, err = p.Sync(ctx)
	require.NoError(t, err)
	assert.False(t, published, "nothing changed, nothing published")

	// A new VF appears.
	spec.PFs[0].NumVFs = 3
	require.NoError(t, os.RemoveAll(hostDir))
	require.NoError(t, simhost.Write(hostDir, spec))
	published, err = p.Sync(ctx)
	require.NoError(t, err)
	require.True(t, published)
	assert.Len(t, resourceNames(rec.calls[1]), 3)

	// A broken config is reported; the last good one stays.
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"bad-name"}]}`), 0o644))
	published, err = p.Sync(ctx)
	require.ErrorContains(t, err, "keeping the last good one")
	assert.ErrorContains(t, err, `resourceName: "bad-name"`)
	assert.False(t, published)

	// A good new config takes effect.
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"other","resourcePrefix":"acme.com"}]}`), 0o644))
	published, err = p.Sync(ctx)
	require.NoError(t, err)
	require.True(t, published)
	assert.Equal(t, "acme.com/other", resourceNames(rec.calls[2])["pci-0000-3b-02-0"])

	// A config file that goes away is reported once; the last good one stays.
	require.NoError(t, os.Remove(cfgPath))
	_, err = p.Sync(ctx)
	require.ErrorContains(t, err, "keeping the last good config")
	_, err = p.Sync(ctx)
	require.NoError(t, err, "reported once, not on every rescan")
	assert.Len(t, rec.calls, 3)

	// An unreadable host publishes nothing rather than an empty pool.
	require.NoError(t, os.RemoveAll(filepath.Join(hostDir, "sys/bus/pci")))
	require.NoError(t, os.WriteFile(filepath.Join(hostDir, "sys/bus/pci"), nil, 0o644))
	published, err = p.Sync(ctx)
	assert.Error(t, err)
	assert.False(t, published)
	assert.Len(t, rec.calls, 3)
}

func TestPublisherRejectsBadConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[]}`), 0o644))
	p := newTestPublisher(host.UnderRoot(dir), cfgPath, "", metrics.New(), &recorder{})
	err := p.LoadConfig(context.Background())
	require.ErrorContains(t, err, "resourceList: must have at least one pool")
	assert.NotContains(t, err.Error(), "last good")
}

// TestPublisherIgnoresUnknownConfigFields: the daemon starts with a field
// the classic plugin would ignore (it logs a warning naming it).
func TestPublisherIgnoresUnknownConfigFields(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"net","comment":"x","selectors":{"drivers":["iavf"]}}]}`), 0o644))
	p := newTestPublisher(host.UnderRoot(dir), cfgPath, "", metrics.New(), &recorder{})
	require.NoError(t, p.LoadConfig(context.Background()))
	require.NotNil(t, p.config)
	assert.Equal(t, "intel.com/net", p.config.ResourceList[0].FullName())
}

// TestPublisherCountsWhatItPublishes: the published-device gauge follows the
// pool handed to the writer, by type and classic pool; devices whose PF link
// is down are counted unhealthy.
func TestPublisherCountsWhatItPublishes(t *testing.T) {
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "host")
	// Two VFs on ens1f0 (pool "net"), one accelerator in no pool.
	spec := simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2, LinkDown: true},
		{Address: "0000:5e:00.0", Model: "n3000"},
	}}
	require.NoError(t, simhost.Write(hostDir, spec))
	cfgPath := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"net","selectors":{"pfNames":["ens1f0"]}}]}`), 0o644))
	h, err := simhost.Open(hostDir)
	require.NoError(t, err)
	m := metrics.New()
	p := newTestPublisher(h, cfgPath, "intel.com", m, &recorder{})
	_, err = p.Sync(context.Background())
	require.NoError(t, err)

	assert.Equal(t, 2.0, testutil.ToFloat64(m.DevicesPublished.WithLabelValues("netDevice", "intel.com/net")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.DevicesPublished.WithLabelValues("accelerator", "")))
	assert.Equal(t, 2, testutil.CollectAndCount(m.DevicesPublished), "no other series")
	assert.Equal(t, 2.0, testutil.ToFloat64(m.DevicesUnhealthy), "both VFs of the down PF")
	var rescans dto.Metric
	require.NoError(t, m.RescanDuration.Write(&rescans))
	assert.Equal(t, uint64(1), rescans.GetHistogram().GetSampleCount(), "one rescan timed")

	// A pool that goes away leaves no stale series behind.
	require.NoError(t, os.WriteFile(cfgPath, []byte(`{"resourceList":[{"resourceName":"acc","deviceType":"accelerator"}]}`), 0o644))
	_, err = p.Sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.DevicesPublished.WithLabelValues("accelerator", "intel.com/acc")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.DevicesPublished.WithLabelValues("netDevice", "")))
	assert.Equal(t, 2, testutil.CollectAndCount(m.DevicesPublished))
}

// TestConfigTypoWarned: a pool whose "driver" should read "drivers" loses
// that filter, as the classic plugin's would, and grows; the ignored field
// is counted in the gauge and posted once on the Node, and a corrected
// config clears the gauge.
func TestConfigTypoWarned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "host")
	// Two VFs: 0 on iavf, 1 on vfio-pci.
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2, VFs: []simhost.VF{{Index: 1, Driver: "vfio-pci"}}}}}
	require.NoError(t, simhost.Write(hostDir, spec))
	cfgPath := filepath.Join(dir, "config.json")
	typo := `{"resourceList":[{"resourceName":"dpdk","selectors":{"pfNames":["ens1f0"],"driver":["vfio-pci"]}}]}`
	require.NoError(t, os.WriteFile(cfgPath, []byte(typo), 0o644))
	h, err := simhost.Open(hostDir)
	require.NoError(t, err)
	client := fake.NewClientset()
	rec := &recorder{}
	p := newTestPublisher(h, cfgPath, "intel.com", metrics.New(), rec)
	p.warn = nodeevents.New(client, "node", "sriov.dra.dev")

	_, err = p.Sync(ctx)
	require.NoError(t, err, "an unknown field is no error, as in the classic plugin")
	assert.Len(t, resourceNames(rec.calls[0]), 2, "without its driver filter the pool takes both VFs")
	assert.Equal(t, 1.0, testutil.ToFloat64(p.metrics.ConfigWarnings))
	warnings := func() []string {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		var out []string
		for _, e := range evs.Items {
			if e.Reason == "ClassicConfigFieldsIgnored" && e.InvolvedObject.Name == "node" {
				out = append(out, e.Message)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(warnings()) == 1 }, 5*time.Second, 10*time.Millisecond, "a Warning event on the Node")
	assert.Contains(t, warnings()[0], `resourceList[0].selectors: unknown field "driver"`)
	assert.Contains(t, warnings()[0], cfgPath)

	_, err = p.Sync(ctx)
	require.NoError(t, err)
	assert.Len(t, warnings(), 1, "one event per config version, not per rescan")

	require.NoError(t, os.WriteFile(cfgPath, []byte(strings.Replace(typo, `"driver"`, `"drivers"`, 1)), 0o644))
	_, err = p.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0.0, testutil.ToFloat64(p.metrics.ConfigWarnings), "the corrected config has none")
	assert.Equal(t, map[string]string{"pci-0000-3b-02-1": "intel.com/dpdk"}, resourceNames(rec.calls[len(rec.calls)-1]))
}
