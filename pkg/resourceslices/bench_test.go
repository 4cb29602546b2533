package resourceslices_test

import (
	"context"
	"fmt"
	"testing"

	resourceapi "k8s.io/api/resource/v1"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// BenchmarkRescanLarge is what every rescan of the 2,048 VFs of the large
// profile computes, as the driver's publisher runs it: discovery from
// sysfs, the classic pools of a three-pool config, and the desired pool
// with the link-down taint. Its B/op and allocs/op are the garbage each
// rescan leaves for the collector: without a Reuse (reuse=false), and with
// one kept across rescans of the unchanged host (reuse=true), primed by a
// rescan before the measured ones as the daemon's first rescan primes it.
func BenchmarkRescanLarge(b *testing.B) {
	h, _ := simhosttest.NewProfileHost(b, "large")
	cfg, err := classic.Decode([]byte(`{"resourceList":[
		{"resourceName":"range","selectors":{"pfNames":["ens10f0#0-63","ens11f0#10-20,30"]}},
		{"resourceName":"ids","selectors":{"vendors":["8086"],"devices":["1889"],"drivers":["iavf"]}},
		{"resourceName":"drivers","selectors":{"drivers":["vfio-pci","iavf"]}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Default("")
	ctx := context.Background()
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			opts := resourceslices.PoolOptions{
				LinkDown: &resourceapi.DeviceTaint{Key: resourceslices.LinkDownTaintKey("sriov.dra.dev"), Effect: resourceapi.DeviceTaintEffectNoSchedule},
			}
			if reuse {
				opts.Reuse = &resourceslices.Reuse{}
			}
			rescan := func() {
				inv, err := discovery.Discover(ctx, h)
				if err != nil {
					b.Fatal(err)
				}
				pool, pools, _, err := resourceslices.DesiredPool(inv, cfg, opts)
				if err != nil || len(pool.Slices) != 16 || len(pools.PoolOf) != 2048 {
					b.Fatalf("desired pool: %v, %d slices, %d devices pooled", err, len(pool.Slices), len(pools.PoolOf))
				}
			}
			if reuse {
				rescan()
			}
			b.ReportAllocs()
			for b.Loop() {
				rescan()
			}
		})
	}
}
