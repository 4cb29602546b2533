package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

func simhosttestLarge(tb testing.TB) simhost.Spec { return simhosttest.Profiles(tb, "large") }

// BenchmarkPrepareUnprepare prepares and unprepares a one-device claim the
// way the daemon does — from the last rescan's inventory, the class from the
// cache — with the checkpoint and CDI spec fsynced on disk (not tmpfs, where
// fsync is free). It reports the p50 and p99 of the pair.
func BenchmarkPrepareUnprepare(b *testing.B) {
	ctx := context.Background()
	n := newTestNode(b, nodeOpts{spec: e810(), objects: []runtime.Object{testClass}})
	n.lookups.start(ctx)
	disk, err := os.MkdirTemp("/var/tmp", "sriov-dra-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(disk)
	n.cdiRoot, n.devInfoDir = filepath.Join(disk, "cdi"), filepath.Join(disk, "devinfo")
	n.state = newNodeState(filepath.Join(disk, "plugin"), n.h.BootID())
	claim := claimFor("bench", "", "pci-0000-3b-02-0")
	var durations []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		res, err := n.Prepare(ctx, []*resourceapi.ResourceClaim{claim})
		if err != nil || res["bench"].Err != nil {
			b.Fatalf("prepare: %v %v", err, res["bench"].Err)
		}
		if _, err := n.Unprepare(ctx, []kubeletplugin.NamespacedObject{{UID: "bench"}}); err != nil {
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
	n := newTestNode(b, nodeOpts{spec: simhosttestLarge(b)})
	ctx := context.Background()
	cpu := cpuTime()
	b.ReportAllocs()
	for b.Loop() {
		if published, err := n.pub.sync(ctx); err != nil || published {
			b.Fatalf("sync: published %v, %v", published, err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkHeld is what each rescan now adds: reading which devices the
// prepared claims hold from a checkpoint of 256 claims, one VF each.
func BenchmarkHeld(b *testing.B) {
	s := newNodeState(b.TempDir(), "boot")
	d := checkpoint.Data{BootID: "boot", Claims: map[string]checkpoint.Claim{}}
	pool := "intel.com/intel_sriov_netdevice"
	for i := range 256 {
		uid := fmt.Sprintf("claim-%03d", i)
		d.Claims[uid] = checkpoint.Claim{Namespace: "ns", Name: uid, State: checkpoint.StatePrepared,
			CDISpec: "/var/run/cdi/sriov.dra.dev-net_" + uid + ".json", InfoFiles: []string{"/var/run/devinfo/" + uid + "-device.json"},
			Devices: []checkpoint.Device{{Request: "vf", Pool: "node", Name: fmt.Sprintf("pci-0000-3b-%02x-%d", 2+i/8, i%8),
				PCIAddress: fmt.Sprintf("0000:3b:%02x.%d", 2+i/8, i%8), CDIDeviceIDs: []string{"sriov.dra.dev/net=" + uid}, ClassicPool: &pool}}}
	}
	if err := s.save(d); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cp, err := s.peek()
		if held := heldDevices(cp); err != nil || len(held) != 256 {
			b.Fatalf("held: %d, %v", len(held), err)
		}
	}
}
