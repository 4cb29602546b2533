//go:build kernel

package kernel

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
)

// eventRescans runs the daemon's watcher on the real host, with the
// periodic rescan an hour away: every rescan it makes comes from a kernel
// event. Each rescan is a discovery, recorded with its time.
type eventRescans struct {
	mu    sync.Mutex
	scans []scan
}

type scan struct {
	at     time.Time
	reason string
	inv    *discovery.Inventory
}

func watchRealHost(t *testing.T) *eventRescans {
	t.Helper()
	r := &eventRescans{}
	w := &health.Watcher{Source: realHost(), Debounce: 200 * time.Millisecond, Periodic: time.Hour,
		Rescan: func(ctx context.Context, reason string) {
			inv, err := discovery.Discover(ctx, realHost())
			if err != nil {
				return
			}
			r.mu.Lock()
			r.scans = append(r.scans, scan{time.Now(), reason, inv})
			r.mu.Unlock()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.scans) > 0 && r.scans[0].reason == "kernel events subscribed"
	}, 10*time.Second, 10*time.Millisecond, "the watcher subscribed to kernel events")
	return r
}

// seen waits for the first rescan after began whose inventory satisfies
// ok, and returns how long after done (when the change was complete) it
// came: zero if it came while the change was still being made.
func (r *eventRescans) seen(t *testing.T, began, done time.Time, ok func(*discovery.Inventory) bool) time.Duration {
	t.Helper()
	var took time.Duration
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.scans {
			if s.at.After(began) && ok(s.inv) {
				took = max(0, s.at.Sub(done))
				t.Logf("rescan %s after the change (%s)", took.Round(time.Millisecond), s.reason)
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	return took
}

// change runs fn and returns when it began and ended.
func change(fn func()) (began, done time.Time) {
	began = time.Now()
	fn()
	return began, time.Now()
}

// TestLinkDownSeenThroughNetlink: `ip link set <pf> down` reaches the
// watcher over netlink within a second, and the PF's VFs are unhealthy in
// that rescan; `up` clears it.
func TestLinkDownSeenThroughNetlink(t *testing.T) {
	pf := igbPFs(t)[0]
	pfName := vfsOf(discoverReal(t), pf)[0].PFName
	r := watchRealHost(t)
	allVFs := func(healthy bool) func(*discovery.Inventory) bool {
		return func(inv *discovery.Inventory) bool {
			vfs := vfsOf(inv, pf)
			for _, d := range vfs {
				if health.Of(&d).Healthy != healthy {
					return false
				}
			}
			return len(vfs) == 4
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "set", pfName, "up").Run() })
	ipLink := func(state string) func() {
		return func() { require.NoError(t, exec.Command("ip", "link", "set", pfName, state).Run()) }
	}
	began, done := change(ipLink("down"))
	assert.Less(t, r.seen(t, began, done, allVFs(false)), time.Second, "link down seen within 1 s")
	// Up takes the (emulated) PHY a moment to bring the carrier; its event
	// clears the verdict.
	began, done = change(ipLink("up"))
	r.seen(t, began, done, allVFs(true))
}

// TestNumVFsChangeSeenThroughUevents: sriov_numvfs 4 -> 2 -> 4 is seen
// from the kernel's uevents within a second each time.
func TestNumVFsChangeSeenThroughUevents(t *testing.T) {
	pf := igbPFs(t)[1]
	numvfs := "/sys/bus/pci/devices/" + pf + "/sriov_numvfs"
	write := func(n string) {
		t.Helper()
		require.NoError(t, os.WriteFile(numvfs, []byte(n), 0o644), "sriov_numvfs=%s", n)
	}
	count := func(n int) func(*discovery.Inventory) bool {
		return func(inv *discovery.Inventory) bool { return len(vfsOf(inv, pf)) == n }
	}
	r := watchRealHost(t)
	t.Cleanup(func() { _ = os.WriteFile(numvfs, []byte("0"), 0o644); _ = os.WriteFile(numvfs, []byte("4"), 0o644) })
	for _, step := range []int{2, 4} {
		write("0") // the kernel changes a non-zero count only through 0
		// The write returns once the kernel has made the VFs (probing them
		// takes about a second under emulation); their uevents come meanwhile.
		began, done := change(func() { write(map[int]string{2: "2", 4: "4"}[step]) })
		assert.Less(t, r.seen(t, began, done, count(step)), time.Second, "%d VFs seen within 1 s", step)
	}
}
