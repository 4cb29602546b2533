package discovery_test

import (
	"context"
	"testing"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// largeSpec is the "large" profile cut to the first n PFs (128 VFs each).
func largeSpec(tb testing.TB, pfs int) simhost.Spec {
	return simhost.Spec{PFs: simhosttest.Profiles(tb, "large").PFs[:pfs]}
}

// BenchmarkDiscover measures one full discovery of 512 and 2,048 VFs; the
// ratio of the two shows whether discovery grows linearly with VFs.
func BenchmarkDiscover(b *testing.B) {
	for _, tc := range []struct {
		name string
		pfs  int
	}{{"vfs=512", 4}, {"vfs=2048", 16}} {
		b.Run(tc.name, func(b *testing.B) {
			h, _ := simhosttest.NewHost(b, largeSpec(b, tc.pfs))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				inv, err := discovery.Discover(context.Background(), h)
				if err != nil || inv.Len() != tc.pfs*128 {
					b.Fatalf("discover: %v (%d devices)", err, inv.Len())
				}
			}
		})
	}
}
