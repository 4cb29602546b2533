//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// previousRelease returns the previous release's node image archive and
// manifests (make previous-release), and skips the test without them.
func previousRelease(t *testing.T) (image, manifests string) {
	t.Helper()
	if *previousDir == "" {
		t.Skip("no -previous-dir: the upgrade test needs the previous release's image and manifests (make previous-release; make e2e passes them)")
	}
	image, manifests = filepath.Join(*previousDir, "image.tar"), filepath.Join(*previousDir, "manifests.yaml")
	for _, f := range []string{image, manifests} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("the previous release is not built (%v): make previous-release writes it, from a clone that has the release's commit", err)
		}
	}
	return image, manifests
}

// diskCheckpoint is what the test checks in the checkpoint file. It is read
// as plain JSON, not through pkg/checkpoint: the test must not share the
// reader whose compatibility with the previous release it checks.
type diskCheckpoint struct {
	Version string `json:"version"`
	Data    struct {
		Claims map[string]diskClaim `json:"claims"`
	} `json:"data"`
}

type diskClaim struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	CDISpec string `json:"cdiSpec"`
	Rebuilt bool   `json:"rebuilt"`
	Devices []struct {
		Name           string `json:"name"`
		OriginalDriver string `json:"originalDriver"`
		BoundDriver    string `json:"boundDriver"`
	} `json:"devices"`
}

func readDiskCheckpoint(t *testing.T) diskCheckpoint {
	t.Helper()
	b, err := os.ReadFile(checkpointPath())
	require.NoError(t, err)
	var cp diskCheckpoint
	require.NoError(t, json.Unmarshal(b, &cp), "checkpoint %s", checkpointPath())
	return cp
}

// checkpointComplaints returns the daemon log's warning and error lines
// (klog's W and E) that are about the checkpoint.
func checkpointComplaints(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if (strings.HasPrefix(l, "E") || strings.HasPrefix(l, "W")) && strings.Contains(strings.ToLower(l), "checkpoint") {
			out = append(out, l)
		}
	}
	return out
}

// TestUpgradeFromPreviousRelease installs the previous release (its image
// and manifests, as `kubectl apply --server-side` would), runs a pod whose
// claim rebinds a VF to vfio-pci and one with a plain netdev claim, then
// applies this tree's manifests and image over it. After the rolling
// update, the new daemon has taken over the old one's prepared claims: the
// pods run on, the VF stays on vfio-pci, the CDI specs are untouched, the
// checkpoint still records the claims as the old daemon wrote them, and the
// new daemon reports no trouble reading it. Deleting the pods, the new
// daemon unprepares the claims as the old one would have: the VF back on
// its original driver, the CDI specs and checkpoint entries gone.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	ctx := t.Context()
	prevArchive, prevManifests := previousRelease(t)
	prevImage, image := archiveImageName(t, prevArchive), archiveImageName(t, *imageArchive)
	require.NotEqual(t, prevImage, image, "the previous and current node images must differ, or nothing rolls")
	require.NoError(t, cluster.ImportImage(ctx, prevArchive))
	require.NoError(t, cluster.ImportImage(ctx, *imageArchive))
	// One PF with two iavf VFs: VF 0 (the first device, 0000:3b:02.0) is
	// rebound for its claim, VF 1 serves the netdev claim.
	const origDriver = "iavf"
	h := newSimHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2, VFDriver: origDriver}}})
	devs := deviceNames(t, h)
	require.Len(t, devs, 2)
	rebound, netdev := devs[0], devs[1]

	start := time.Now()
	applyServerSide(ctx, t, prevManifests, func(obj *unstructured.Unstructured) {
		if obj.GetKind() == "DaemonSet" {
			onHarness(t, obj, prevImage, h)
		}
	})
	waitDriverReady(t, "sriov-dra", 120*time.Second)
	waitDevices(ctx, t, cluster.NodeName, 30*time.Second, sameDevices(devs))
	t.Logf("previous release %s Ready and published after %s", prevImage, time.Since(start).Round(time.Millisecond))

	// The driver comes from the class: the previous release accepts it from
	// a claim or a class, this one only from a class (claims may not
	// rebind). vfio-pci is in this release's default --allowed-drivers.
	vf := func(i int) string {
		return fmt.Sprintf(`device.driver == %q && device.attributes[%q].vfIndex == %d`, driverName, driverName, i)
	}
	classWithConfig(ctx, t, "e2e-upgrade-vfio", vf(0), `{`+netConfigHead+`,"driver":"vfio-pci"}`)
	classWithConfig(ctx, t, "e2e-upgrade-netdev", vf(1), "")
	ns := framework.Namespace(ctx, t, cluster.Client, "upgrade")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "vfio", "ls /dev/vfio", "vfio"), simpleClaim(ns, "vfio", "e2e-upgrade-vfio", 1))
	runUntilDone(ctx, t, ns, podWithClaims(ns, "netdev", "env | grep ^PCIDEVICE_", "netdev"), simpleClaim(ns, "netdev", "e2e-upgrade-netdev", 1))
	require.Equal(t, []string{rebound}, claimDevices(ctx, t, ns, "vfio"))
	require.Equal(t, []string{netdev}, claimDevices(ctx, t, ns, "netdev"))
	driverOf := func() string {
		target, err := os.Readlink(filepath.Join(h.sysfs(), "bus/pci/devices", deviceIDOf(rebound), "driver"))
		if err != nil {
			return "(no driver: " + err.Error() + ")"
		}
		return filepath.Base(target)
	}
	require.Equal(t, "vfio-pci", driverOf(), "the previous release rebound %s for its claim", rebound)

	// What the previous release left on the node for the two claims.
	uids := map[string]string{"vfio": claimUID(ctx, t, ns, "vfio"), "netdev": claimUID(ctx, t, ns, "netdev")}
	podUIDs := map[string]string{}
	specs := map[string]string{} // CDI spec file → content
	for name, uid := range uids {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		podUIDs[name] = string(p.UID)
		spec := filepath.Join(cluster.CDIDir, "sriov.dra.dev-net_"+uid+".json")
		b, err := os.ReadFile(spec)
		require.NoError(t, err, "the previous release's CDI spec of claim %s", name)
		specs[spec] = string(b)
	}
	// checkClaims checks the checkpoint's record of the two prepared
	// claims: what an unprepare needs, as the test knows it from its input.
	checkClaims := func(when string) {
		t.Helper()
		cp := readDiskCheckpoint(t)
		for name, uid := range uids {
			c, ok := cp.Data.Claims[uid]
			if !assert.True(t, ok, "%s: claim %s (%s) not in the checkpoint (version %q, claims %v)", when, name, uid, cp.Version, cp.Data.Claims) {
				continue
			}
			assert.Equal(t, name, c.Name, when)
			assert.Equal(t, "prepared", c.State, "%s: claim %s", when, name)
			assert.False(t, c.Rebuilt, "%s: claim %s was rebuilt from files (the checkpoint entry was lost, with the driver to restore)", when, name)
			assert.Equal(t, filepath.Join(cluster.CDIDir, "sriov.dra.dev-net_"+uid+".json"), c.CDISpec, "%s: claim %s", when, name)
			if assert.Len(t, c.Devices, 1, "%s: claim %s", when, name) {
				d := c.Devices[0]
				if name == "vfio" {
					assert.Equal(t, [3]string{rebound, origDriver, "vfio-pci"}, [3]string{d.Name, d.OriginalDriver, d.BoundDriver},
						"%s: claim vfio's device, original and bound driver", when)
				} else {
					assert.Equal(t, [3]string{netdev, "", ""}, [3]string{d.Name, d.OriginalDriver, d.BoundDriver},
						"%s: claim netdev's device, not rebound", when)
				}
			}
		}
	}
	checkClaims("written by the previous release")
	require.False(t, t.Failed(), "the previous release's checkpoint is not as expected: the upgrade check would mean nothing")

	// The upgrade: this tree's manifests and image over the previous ones.
	old := driverPods(t, "sriov-dra")
	start = time.Now()
	applyServerSide(ctx, t, "../deployments/manifests/sriov-dra.yaml", func(obj *unstructured.Unstructured) {
		if obj.GetKind() == "DaemonSet" {
			onHarness(t, obj, image, h)
		}
	})
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 120*time.Second, true, func(context.Context) (bool, error) {
		return rolledOver(t, "sriov-dra", old), nil
	}); err != nil {
		describeDriverPods(t, "sriov-dra")
		t.Fatalf("the rolling update from %v did not finish: %v", old, driverPods(t, "sriov-dra"))
	}
	t.Logf("rolling update from %s to %s done after %s", prevImage, image, time.Since(start).Round(time.Millisecond))
	var newPod string
	for name := range driverPods(t, "sriov-dra") {
		newPod = name
	}
	p, err := cluster.Client.CoreV1().Pods("sriov-dra").Get(ctx, newPod, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, image, p.Spec.Containers[0].Image, "the driver pod after the update")
	newLog := func() string {
		log, err := framework.ContainerLog(cluster, "sriov-dra", newPod, "driver")
		require.NoError(t, err)
		return log
	}

	// The new daemon has read the old checkpoint and left the claims alone.
	assert.Empty(t, checkpointComplaints(newLog()), "the new daemon's log about the previous release's checkpoint")
	for name, uid := range podUIDs {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		running := len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil && p.Status.ContainerStatuses[0].RestartCount == 0
		assert.True(t, string(p.UID) == uid && p.Status.Phase == corev1.PodRunning && running,
			"pod %s runs on through the update:\n%s", name, framework.DescribePod(ctx, cluster.Client, ns, name))
	}
	assert.Equal(t, "vfio-pci", driverOf(), "%s still bound for its claim after the update", rebound)
	for spec, content := range specs {
		b, err := os.ReadFile(spec)
		if assert.NoError(t, err, "CDI spec after the update") {
			assert.Equal(t, content, string(b), "CDI spec %s changed by the update", spec)
		}
	}
	checkClaims("after the update")

	// The new daemon unprepares what the old one prepared.
	for name := range uids {
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}))
	}
	var left map[string]diskClaim
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		left = map[string]diskClaim{}
		cp := readDiskCheckpoint(t)
		for name, uid := range uids {
			if c, ok := cp.Data.Claims[uid]; ok {
				left[name] = c
			}
		}
		return len(left) == 0, nil
	})
	require.NoError(t, err, "claims still in the checkpoint after their pods were deleted: %+v\ndriver log:\n%s", left, tail(newLog(), 3000))
	assert.Equal(t, origDriver, driverOf(), "%s back on its original driver after the new daemon unprepared the old one's claim", rebound)
	for spec := range specs {
		_, err := os.Stat(spec)
		assert.True(t, os.IsNotExist(err), "CDI spec %s removed on unprepare (stat: %v)", spec, err)
	}
	assert.Empty(t, checkpointComplaints(newLog()), "the new daemon's log after unpreparing")
}
