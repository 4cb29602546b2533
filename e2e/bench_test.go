//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// BenchmarkDriverStartupToSlices measures the time from starting
// `sriov-dra run` on the large profile (2,048 VFs) to every device being
// visible in the apiserver. Each iteration uses a new node, so the driver
// really creates its slices.
func BenchmarkDriverStartupToSlices(b *testing.B) {
	h := newSimHost(b, profiles(b, "large"))
	want := len(deviceNames(b, h))
	i := 0
	for b.Loop() {
		i++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		node := fmt.Sprintf("bench-node-%d-%d", time.Now().UnixNano(), i)
		b.StopTimer()
		deleteNode := framework.FakeNode(ctx, b, cluster.Client, node)
		w, err := cluster.Client.ResourceV1().ResourceSlices().Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		b.StartTimer()
		start := time.Now()
		d := startDriver(b, driverOpts{node: node, host: h, rescan: time.Minute,
			registrar: filepath.Join(dir, "registry"), pluginDir: filepath.Join(dir, "plugin")})
		seen := map[string]int{}
		total := 0
		for total < want {
			select {
			case ev := <-w.ResultChan():
				s, ok := ev.Object.(*resourceapi.ResourceSlice)
				if !ok || ev.Type != watch.Added {
					continue
				}
				seen[s.Name] = len(s.Spec.Devices)
				total = 0
				for _, n := range seen {
					total += n
				}
			case <-ctx.Done():
				b.Fatalf("only %d of %d devices visible", total, want)
			}
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-all-slices")
		b.StopTimer()
		w.Stop()
		d.stop(b)
		deleteNode()
		cancel()
		b.StartTimer()
	}
}
