package publisher

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRescanLarge is one event-driven rescan of 2,048 VFs with nothing
// changed: discovery, pools, slices built and compared with the last. It
// reports the CPU time it costs (both cores), not only the wall time.
func BenchmarkRescanLarge(b *testing.B) {
	h, _ := simhosttest.NewHost(b, simhosttest.Profiles(b, "large"))
	p := newTestPublisher(h, "", "intel.com", metrics.New(), &recorder{})
	ctx := context.Background()
	if _, err := p.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime()
	b.ReportAllocs()
	for b.Loop() {
		if published, err := p.Sync(ctx); err != nil || published {
			b.Fatalf("sync: published %v, %v", published, err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
