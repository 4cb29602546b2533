//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

// kill ends the driver with SIGKILL: no cleanup, no deferred code.
func (d *driverProcess) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// crashIterations can be lowered with SRIOV_DRA_CRASH_ITERATIONS for a quick run.
func crashIterations(t *testing.T) int {
	v := os.Getenv("SRIOV_DRA_CRASH_ITERATIONS")
	if v == "" {
		return 50
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "SRIOV_DRA_CRASH_ITERATIONS=%q", v)
	require.Positive(t, n, "SRIOV_DRA_CRASH_ITERATIONS")
	return n
}

// TestCrashDuringPrepareAndUnprepare kills the driver with SIGKILL at random
// points while the kubelet prepares one pod's claim and unprepares
// another's, restarts it, and checks the invariants every time.
func TestCrashDuringPrepareAndUnprepare(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	classWithConfig(ctx, t, "e2e-crash",
		`device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f0" && device.attributes["sriov.dra.dev"].driver == "iavf"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","resourceName":"intel.com/crash","driver":"vfio-pci","needVhostNet":true}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "crash")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	d := startDriver(t, driverOpts{host: h})

	prev := ""
	iterations := crashIterations(t)
	start := time.Now()
	// What the checkpoint showed at each kill: how far the new claim got.
	stages := map[string]int{}
	for i := range iterations {
		name := fmt.Sprintf("crash-%d", i)
		_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, name, "e2e-crash", 1), metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, podWithClaims(ns, name, "sleep 3600", name), metav1.CreateOptions{})
		require.NoError(t, err)
		if prev != "" {
			require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, prev, metav1.DeleteOptions{}))
		}
		if i%2 == 0 {
			time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		} else {
			// Aim at the window between "preparing" and "prepared".
			waitForStage(t, name, 20*time.Second)
		}
		d.kill()
		stages[killStage(t, name)]++
		d = startDriver(t, driverOpts{host: h})
		// Settle: the new pod runs, the old one is gone and unprepared.
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 120*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodRunning {
				return false, nil
			}
			if prev != "" {
				if _, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, prev, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false, nil
				}
			}
			return len(readCheckpoint(t).Claims) == 1, nil
		}), "iteration %d did not settle: %s; checkpoint has %d claims", i, framework.DescribePod(ctx, cluster.Client, ns, name), len(readCheckpoint(t).Claims))
		checkCrashInvariants(ctx, t, h, ns, name)
		if prev != "" {
			require.NoError(t, cluster.Client.ResourceV1().ResourceClaims(ns).Delete(ctx, prev, metav1.DeleteOptions{}))
		}
		prev = name
	}
	t.Logf("%d kill -9 iterations in %s; the new claim was, at the kill: %v", iterations, time.Since(start).Round(time.Second), stages)
	// Half the kills are aimed at the window between "preparing" and
	// "prepared"; the test proves recovery from that window only if enough
	// of them land in it.
	assert.GreaterOrEqual(t, stages[checkpoint.StatePreparing], min(10, iterations/5), "kills that landed while the claim was being prepared")
}

// waitForStage polls the checkpoint until the claim is recorded, so that
// the kill lands while it is being prepared; it returns once the claim is
// "preparing" or already "prepared" (the window was missed, which the
// caller's count of stages shows). A claim never recorded fails the test.
func waitForStage(t *testing.T, claim string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, _, err := checkpoint.Load(checkpointPath(), "unknown")
		require.NoError(t, err, "the checkpoint must always be readable (it is replaced atomically)")
		for _, e := range d.Claims {
			if e.Name == claim {
				return
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("claim %s was not recorded in the checkpoint within %s", claim, timeout)
}

// killStage tells how far preparing the claim had got when the driver died.
func killStage(t *testing.T, claim string) string {
	for _, e := range readCheckpoint(t).Claims {
		if e.Name == claim {
			return e.State
		}
	}
	return "not-started"
}

// checkCrashInvariants: no CDI spec without a checkpoint entry, no entry
// whose pod is gone, the running pod's devices prepared, and every device
// not held by a claim back on its own driver.
func checkCrashInvariants(ctx context.Context, t *testing.T, h *simHost, ns, running string) {
	t.Helper()
	cp := readCheckpoint(t)
	owned := map[string]bool{}
	for uid, e := range cp.Claims {
		require.Equal(t, checkpoint.StatePrepared, e.State, "claim %s", e.Name)
		owned[e.CDISpec] = true
		c, err := cluster.Client.ResourceV1().ResourceClaims(e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
		require.NoError(t, err, "checkpoint entry for a claim that is gone")
		require.Equal(t, uid, string(c.UID))
		require.Len(t, c.Status.ReservedFor, 1, "checkpoint entry %s whose pod is gone", e.Name)
		require.Equal(t, running, c.Status.ReservedFor[0].Name)
		_, err = os.Stat(e.CDISpec)
		require.NoError(t, err, "prepared claim %s lacks its CDI spec", e.Name)
	}
	entries, err := os.ReadDir(cluster.CDIDir)
	require.NoError(t, err)
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "sriov.dra.dev-net_") {
			require.True(t, owned[filepath.Join(cluster.CDIDir, ent.Name())], "CDI spec %s has no checkpoint entry", ent.Name())
		}
		require.False(t, strings.HasSuffix(ent.Name(), ".tmp"), "temp file %s left", ent.Name())
	}
	held := map[string]bool{}
	for _, e := range cp.Claims {
		for _, dev := range e.Devices {
			held[dev.PCIAddress] = true
		}
	}
	for i := range 8 {
		addr := fmt.Sprintf("0000:3b:02.%d", i)
		target, err := os.Readlink(filepath.Join(h.sysfs(), "bus/pci/devices", addr, "driver"))
		require.NoError(t, err)
		want := "iavf"
		if held[addr] {
			want = "vfio-pci"
		}
		if i >= 6 {
			want = "vfio-pci" // bound to vfio-pci by the profile itself
		}
		require.Equal(t, want, filepath.Base(target), "driver of %s", addr)
	}
}
