package health_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// burst is a Source that fires n events at once when told to.
type burst struct {
	fire chan int
}

func (b *burst) WatchEvents(ctx context.Context, notify func(string)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-b.fire:
			for range n {
				notify("event")
			}
		}
	}
}

type rescans struct {
	mu      sync.Mutex
	reasons []string
}

func (r *rescans) rescan(_ context.Context, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *rescans) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reasons)
}

func TestStormOfEventsIsOneRescan(t *testing.T) {
	src := &burst{fire: make(chan int)}
	var r rescans
	w := &health.Watcher{Source: src, Debounce: 200 * time.Millisecond, Periodic: time.Hour, Rescan: r.rescan}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	start := time.Now()
	src.fire <- 1000
	require.Eventually(t, func() bool { return r.count() == 1 }, 2*time.Second, 5*time.Millisecond)
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond, "after the debounce window")
	assert.Never(t, func() bool { return r.count() > 1 }, 500*time.Millisecond, 10*time.Millisecond, "1,000 events, one rescan")
	src.fire <- 3
	require.Eventually(t, func() bool { return r.count() == 2 }, 2*time.Second, 5*time.Millisecond, "a later event rescans again")
	assert.Equal(t, []string{"event", "event"}, r.reasons)
}

func TestPeriodicRescanWithoutEvents(t *testing.T) {
	var r rescans
	w := &health.Watcher{Debounce: 200 * time.Millisecond, Periodic: 30 * time.Millisecond, Rescan: r.rescan}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	require.Eventually(t, func() bool { return r.count() >= 3 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, "periodic", r.reasons[0])
}

func TestLinkDownMakesDevicesUnhealthy(t *testing.T) {
	h, _ := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2, VFs: []simhost.VF{{Index: 1, Driver: "vfio-pci"}}},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0"}, // a PF as a device
		{Address: "0000:03:00.0", Model: "bf2", IfName: "p0", SFs: []simhost.SF{{ID: 2, SFNum: 1}}},
		{Address: "0000:d8:00.0", Model: "n3000"},
	}})
	verdicts := func() map[string]health.Verdict {
		inv, err := discovery.Discover(context.Background(), h)
		require.NoError(t, err)
		out := map[string]health.Verdict{}
		for d := range inv.All() {
			out[d.Name] = health.Of(d)
		}
		return out
	}
	for name, v := range verdicts() {
		assert.True(t, v.Healthy, name)
	}
	require.NoError(t, h.SetLink("ens1f0", false))
	require.NoError(t, h.SetLink("ens2f0", false))
	require.NoError(t, h.SetLink("p0", false))
	down := "link of PF %s is down"
	got := verdicts()
	for name, pf := range map[string]string{"pci-0000-3b-02-0": "ens1f0", "pci-0000-3b-02-1": "ens1f0", "pci-0000-5b-00-0": "ens2f0", "aux-mlx5-core-sf-2": "p0"} {
		assert.Equal(t, health.Verdict{Reason: fmt.Sprintf(down, pf)}, got[name], name)
	}
	assert.True(t, got["pci-0000-d8-00-0"].Healthy, "an accelerator has no link")
	require.NoError(t, h.SetLink("ens1f0", true))
	assert.True(t, verdicts()["pci-0000-3b-02-1"].Healthy, "recovery clears it")
}

func TestSimulatedHostReportsLinkChanges(t *testing.T) {
	h, _ := simhosttest.NewProfileHost(t, "e810", "large")
	h.SetPollInterval(20 * time.Millisecond)
	var events atomic.Int32
	var last atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = h.WatchEvents(ctx, func(reason string) { events.Add(1); last.Store(reason) })
	}()
	assert.Never(t, func() bool { return events.Load() > 0 }, 100*time.Millisecond, 5*time.Millisecond, "no change, no event")
	require.NoError(t, h.SetLink("ens1f1", false))
	require.Eventually(t, func() bool { return events.Load() == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, "link ens1f1 down/unreadable", last.Load())
	require.NoError(t, h.SetLink("ens1f1", true))
	require.Eventually(t, func() bool { return events.Load() == 2 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, "link ens1f1 up/1", last.Load())
}
