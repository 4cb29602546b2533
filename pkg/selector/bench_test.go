package selector_test

import (
	"context"
	"testing"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// BenchmarkSelectLarge applies three pools (a pfNames range, vendors +
// devices + drivers, drivers only) to the 2,048 VFs of the large profile.
func BenchmarkSelectLarge(b *testing.B) {
	h, _ := simhosttest.NewProfileHost(b, "large")
	inv, err := discovery.Discover(context.Background(), h)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := classic.Decode([]byte(`{"resourceList":[
		{"resourceName":"range","selectors":{"pfNames":["ens10f0#0-63","ens11f0#10-20,30"]}},
		{"resourceName":"ids","selectors":{"vendors":["8086"],"devices":["1889"],"drivers":["iavf"]}},
		{"resourceName":"drivers","selectors":{"drivers":["vfio-pci","iavf"]}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Default("")
	b.ReportAllocs()
	for b.Loop() {
		res, err := selector.Select(cfg, inv)
		if err != nil || len(res.PoolOf) != 2048 {
			b.Fatalf("select: %v, %d devices pooled", err, len(res.PoolOf))
		}
	}
}
