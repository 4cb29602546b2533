//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// setLink flips a simulated PF's link, as `ip link set` does on a real one.
func setLink(t *testing.T, h *simHost, ifName string, up bool) {
	t.Helper()
	sim, err := simhost.Open(h.dir)
	require.NoError(t, err)
	require.NoError(t, sim.SetLink(ifName, up))
}

// taintsOf maps each published device to its taints' "key=value:effect".
func taintsOf(ctx context.Context, t *testing.T) map[string][]string {
	out := map[string][]string{}
	for _, s := range nodeSlices(ctx, t, cluster.NodeName) {
		for _, d := range s.Spec.Devices {
			for _, taint := range d.Taints {
				out[d.Name] = append(out[d.Name], taint.Key+"="+taint.Value+":"+string(taint.Effect))
			}
		}
	}
	return out
}

// deviceHealth is what the pod's status says of its device (KEP-4680).
func deviceHealth(ctx context.Context, t *testing.T, ns, pod string) string {
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	require.NoError(t, err)
	for _, cs := range p.Status.ContainerStatuses {
		for _, rs := range cs.AllocatedResourcesStatus {
			for _, r := range rs.Resources {
				return string(r.Health)
			}
		}
	}
	return ""
}

// TestLinkDownTaintsAndHealth: a PF's link going down taints its VFs in
// the slices within 2 s, keeps a claim that needs them pending, and shows a
// running pod its device Unhealthy; recovery undoes all three.
func TestLinkDownTaintsAndHealth(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h, rescan: time.Minute})
	classWithConfig(ctx, t, "e2e-ens1f1", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f1"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "health")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "running", "true", "running"), simpleClaim(ns, "running", "e2e-ens1f1", 1))
	require.Eventually(t, func() bool { return deviceHealth(ctx, t, ns, "running") == "Healthy" }, 60*time.Second, 200*time.Millisecond,
		"the kubelet shows the device Healthy")

	setLink(t, h, "ens1f1", false)
	down := time.Now()
	require.Eventually(t, func() bool { return len(taintsOf(ctx, t)) == 4 }, 10*time.Second, 20*time.Millisecond)
	took := time.Since(down)
	t.Logf("taint in the ResourceSlices %s after the link went down", took.Round(time.Millisecond))
	assert.Less(t, took, 2*time.Second)
	for name, taints := range taintsOf(ctx, t) {
		assert.Equal(t, []string{"sriov.dra.dev/link-down=ens1f1:NoSchedule"}, taints, name)
	}
	require.Eventually(t, func() bool { return deviceHealth(ctx, t, ns, "running") == "Unhealthy" }, 30*time.Second, 200*time.Millisecond,
		"the running pod's status shows its device Unhealthy")

	// Only ens1f1's VFs could satisfy this claim: it waits.
	_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, "waits", "e2e-ens1f1", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, podWithClaims(ns, "waits", "sleep 3600", "waits"), metav1.CreateOptions{})
	require.NoError(t, err)
	never(t, func() bool {
		c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "waits", metav1.GetOptions{})
		return err == nil && c.Status.Allocation != nil
	}, 5*time.Second, 200*time.Millisecond, "a claim only tainted devices could satisfy is not allocated")

	setLink(t, h, "ens1f1", true)
	require.Eventually(t, func() bool { return len(taintsOf(ctx, t)) == 0 }, 10*time.Second, 20*time.Millisecond, "recovery removes the taint")
	allocatedDevices(ctx, t, ns, "waits", "waits")
	require.Eventually(t, func() bool { return deviceHealth(ctx, t, ns, "running") == "Healthy" }, 30*time.Second, 200*time.Millisecond,
		"Healthy again after recovery")
}

// TestLinkDownNoExecuteEvicts: with --link-down-effect=NoExecute the pods
// using a device whose PF link goes down are evicted.
func TestLinkDownNoExecuteEvicts(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h, rescan: time.Minute, extraFlags: []string{"--link-down-effect", "NoExecute"}})
	classWithConfig(ctx, t, "e2e-evict", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f1"`, "")
	ns := framework.Namespace(ctx, t, cluster.Client, "evict")
	runUntilDone(ctx, t, ns, podWithClaims(ns, "victim", "true", "victim"), simpleClaim(ns, "victim", "e2e-evict", 1))
	setLink(t, h, "ens1f1", false)
	t.Cleanup(func() { setLink(t, h, "ens1f1", true) })
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "victim", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
				t.Logf("pod evicted: %s: %s", c.Reason, c.Message)
				return true, nil
			}
		}
		return p.DeletionTimestamp != nil, nil
	}), "the pod on a NoExecute-tainted device is evicted: %s", framework.DescribePod(ctx, cluster.Client, ns, "victim"))
}

// TestStableHostNoSliceWrites: a minute of a stable host, with its periodic
// rescans and link polls, writes no ResourceSlice.
func TestStableHostNoSliceWrites(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810", "cx6dx"))
	startDriver(t, driverOpts{host: h, rescan: 2 * time.Second})
	waitPoolComplete(ctx, t, cluster.NodeName)
	before := auditWrites(t)
	never(t, func() bool { return auditWrites(t) != before }, time.Minute, time.Second, "a ResourceSlice written while nothing changed")
}
