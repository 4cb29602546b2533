package driver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
)

// BenchmarkPrepareUnprepare prepares and unprepares a one-device claim,
// checkpoint and CDI spec fsynced on disk (not tmpfs, where fsync is free).
// It reports the p50 and p99 of the pair.
func BenchmarkPrepareUnprepare(b *testing.B) {
	ctx := context.Background()
	p := newTestPreparer(b, e810())
	disk, err := os.MkdirTemp("/var/tmp", "sriov-dra-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(disk)
	p.cdiRoot, p.checkpoint, p.devInfoDir = filepath.Join(disk, "cdi"), filepath.Join(disk, "plugin/checkpoint.json"), filepath.Join(disk, "devinfo")
	claim := claimFor("bench", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/sriov"}`, "pci-0000-3b-02-0")
	var durations []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := p.Prepare(ctx, []*resourceapi.ResourceClaim{claim})
		if err != nil || res["bench"].Err != nil {
			b.Fatalf("prepare: %v %v", err, res["bench"].Err)
		}
		if _, err := p.Unprepare(ctx, []kubeletplugin.NamespacedObject{{UID: "bench"}}); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	slices.Sort(durations)
	pct := func(q float64) float64 {
		return float64(durations[int(q*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
