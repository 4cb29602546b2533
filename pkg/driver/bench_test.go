package driver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// BenchmarkPrepareUnprepare prepares and unprepares a one-device claim the
// way the daemon does — from the last rescan's inventory, the class from the
// cache — with the checkpoint and CDI spec fsynced on disk (not tmpfs, where
// fsync is free). It reports the p50 and p99 of the pair.
func BenchmarkPrepareUnprepare(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	disk, err := os.MkdirTemp("/var/tmp", "sriov-dra-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(disk)
	if err := simhost.Write(filepath.Join(disk, "host"), e810()); err != nil {
		b.Fatal(err)
	}
	n := newTestNode(b, nodeOpts{root: disk, objects: []runtime.Object{testClass}})
	go n.claims.Run(ctx) // the API caches
	claim := claimFor("bench", "", "pci-0000-3b-02-0")
	var durations []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := n.claims.Prepare(ctx, []*resourceapi.ResourceClaim{claim})
		if err != nil || res["bench"].Err != nil {
			b.Fatalf("prepare: %v %v", err, res["bench"].Err)
		}
		if _, err := n.claims.Unprepare(ctx, []kubeletplugin.NamespacedObject{{UID: "bench"}}); err != nil {
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
