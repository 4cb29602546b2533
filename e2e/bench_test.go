//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// BenchmarkDriverStartupToSlices measures the time from starting
// `sriov-dra run` on the large profile (2,048 VFs) to every device being
// visible in the apiserver, and the process's memory then: peak RSS
// (VmHWM) and its anonymous and file-backed (the binary's pages) parts.
// Each start uses a new node, so the driver really creates its slices.
// Reported: the median of the starts, with min and max logged.
func BenchmarkDriverStartupToSlices(b *testing.B) {
	h := newSimHost(b, profiles(b, "large"))
	want := len(deviceNames(b, h))
	var starts []time.Duration
	var peaks, anons, files []float64
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		node := fmt.Sprintf("bench-node-%d-%d", time.Now().UnixNano(), len(starts))
		b.StopTimer()
		deleteNode := framework.FakeNode(ctx, b, cluster.Client, node)
		w, err := cluster.Client.ResourceV1().ResourceSlices().Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		b.StartTimer()
		start := time.Now()
		d := startDriver(b, driverOpts{node: node, host: h, rescan: time.Minute, noWait: true,
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
		starts = append(starts, time.Since(start))
		b.StopTimer()
		// Settled: the writes are answered; what the process holds now
		// and its peak so far.
		time.Sleep(2 * time.Second)
		mem, err := framework.ProcessMemory(d.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		peaks, anons, files = append(peaks, mem["VmHWM"]), append(anons, mem["RssAnon"]), append(files, mem["RssFile"])
		w.Stop()
		d.stop(b)
		deleteNode()
		cancel()
		b.StartTimer()
	}
	ms := make([]float64, len(starts))
	for i, d := range starts {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	b.Logf("start → all %d devices visible, %d starts: median %.0f ms (min %.0f, max %.0f)", want, len(ms), median(ms), slices.Min(ms), slices.Max(ms))
	b.Logf("memory: peak RSS (VmHWM) median %.1f MiB (min %.1f, max %.1f); RSS then: anonymous %.1f MiB, file-backed %.1f MiB",
		median(peaks), slices.Min(peaks), slices.Max(peaks), median(anons), median(files))
	b.ReportMetric(median(ms), "ms-median-to-all-slices")
	b.ReportMetric(median(peaks), "MiB-peak-RSS")
	b.ReportMetric(median(anons), "MiB-anon-RSS")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkPodReady measures pod creation to Ready, without a claim and
// with a one-VF claim prepared by sriov-dra (scheduling, prepare, CDI).
func BenchmarkPodReady(b *testing.B) {
	ctx := context.Background()
	h := newSimHost(b, profiles(b, "e810"))
	startDriver(b, driverOpts{host: h, rescan: time.Minute})
	ns := framework.Namespace(ctx, b, cluster.Client, "bench")
	dc := &resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "bench-vf"}, Spec: resourceapi.DeviceClassSpec{
		Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: `device.driver == "sriov.dra.dev"`}}}}}
	createDeviceClass(ctx, b, dc)
	for _, withClaim := range []bool{false, true} {
		b.Run(fmt.Sprintf("claim=%t", withClaim), func(b *testing.B) {
			i := 0
			var total time.Duration
			for b.Loop() {
				i++
				name := fmt.Sprintf("ready-%t-%d", withClaim, i)
				pod := framework.BusyboxPod(ns, name, "exec sleep 3600")
				if withClaim {
					_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, name, dc.Name, 1), metav1.CreateOptions{})
					if err != nil {
						b.Fatal(err)
					}
					pod = podWithClaims(ns, name, "exec sleep 3600", name)
				}
				start := time.Now()
				if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
					p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						return false, nil
					}
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
							return true, nil
						}
					}
					return false, nil
				})
				if err != nil {
					b.Fatal(framework.DescribePod(ctx, cluster.Client, ns, name))
				}
				total += time.Since(start)
				b.StopTimer()
				_ = cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptrTo(int64(0))})
				_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
					_, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
					return err != nil, nil
				})
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(i), "ms-to-ready")
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
