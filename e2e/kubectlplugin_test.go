//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/kubectlplugin"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// plugin runs `kubectl sriov-dra ARGS` through the real kubectl, which
// finds kubectl-sriov_dra on PATH as it would on an operator's machine.
func plugin(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	bin, err := filepath.Abs(*binDir)
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"sriov-dra", "--kubeconfig", cluster.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kubectl sriov-dra %s: %s", strings.Join(args, " "), stderr.String())
	return string(out)
}

// pluginJSON runs the plugin with -o json and decodes its output into v.
func pluginJSON(ctx context.Context, t *testing.T, v any, args ...string) {
	t.Helper()
	out := plugin(ctx, t, append(args, "-o", "json")...)
	require.NoError(t, json.Unmarshal([]byte(out), v), out)
}

// vfsOf counts the VFs of a simulated PF bound to driver, from the spec
// alone (an e810 VF without its own driver gets the model's, iavf).
func vfsOf(spec simhost.Spec, pf, driver string) int {
	for _, p := range spec.PFs {
		if p.IfName != pf {
			continue
		}
		n := 0
		for i := range p.NumVFs {
			d := "iavf"
			for _, vf := range p.VFs {
				if vf.Index == i && vf.Driver != "" {
					d = vf.Driver
				}
			}
			if d == driver {
				n++
			}
		}
		return n
	}
	return 0
}

// foreignAllocations counts the driver's devices on this node that claims
// outside ns hold (an earlier test's, still being deleted).
func foreignAllocations(ctx context.Context, t *testing.T, ns string) int {
	claims, err := cluster.Client.ResourceV1().ResourceClaims("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, c := range claims.Items {
		if c.Namespace == ns || c.Status.Allocation == nil {
			continue
		}
		for _, r := range c.Status.Allocation.Devices.Results {
			if r.Driver == driverName && r.Pool == cluster.NodeName {
				n++
			}
		}
	}
	return n
}

// waitUnschedulable waits until the scheduler has tried the pod and given up.
func waitUnschedulable(ctx context.Context, t *testing.T, ns, pod string) {
	t.Helper()
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true, nil
			}
		}
		return false, nil
	}), "pod %s is not unschedulable: %s", pod, framework.DescribePod(ctx, cluster.Client, ns, pod))
}

// pendingPod creates a claim and a pod using it, which must stay pending.
func pendingPod(ctx context.Context, t *testing.T, ns, name string, req resourceapi.ExactDeviceRequest, nodeSelector map[string]string) {
	t.Helper()
	req.AllocationMode = resourceapi.DeviceAllocationModeExactCount
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "dev", Exactly: &req}}}},
	}
	_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := podWithClaims(ns, name, "sleep 3600", name)
	pod.Spec.NodeSelector = nodeSelector
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	waitUnschedulable(ctx, t, ns, name)
}

// whyOnNode is `why POD`'s verdict for the node (the pod has one claim of
// one request).
func whyOnNode(ctx context.Context, t *testing.T, ns, pod string) kubectlplugin.WhyRow {
	t.Helper()
	var rows []kubectlplugin.WhyRow
	pluginJSON(ctx, t, &rows, "-n", ns, "why", pod)
	t.Logf("kubectl sriov-dra -n %s why %s\n%s", ns, pod, plugin(ctx, t, "-n", ns, "why", pod))
	for _, r := range rows {
		if r.Node == cluster.NodeName {
			return r
		}
	}
	require.Failf(t, "no verdict for the node", "%+v", rows)
	return kubectlplugin.WhyRow{}
}

// capacityOf returns the capacity row of one kind and name on the node.
func capacityOf(ctx context.Context, t *testing.T, kind, name string) kubectlplugin.CapacityRow {
	t.Helper()
	var rows []kubectlplugin.CapacityRow
	pluginJSON(ctx, t, &rows, "capacity", "--node", cluster.NodeName)
	for _, r := range rows {
		if r.Kind == kind && r.Name == name {
			return r
		}
	}
	require.Failf(t, "no capacity row", "%s %s in %+v", kind, name, rows)
	return kubectlplugin.CapacityRow{}
}

// TestKubectlPlugin: `kubectl sriov-dra` on the real cluster. The counts
// it prints equal what the test itself allocated, `node` names the claim
// and pod holding each VF the test's pods got, and `why` gives each of four
// pods that cannot be scheduled its own reason, and a running pod none.
func TestKubectlPlugin(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	ns := framework.Namespace(ctx, t, cluster.Client, "kubectl")
	require.NoError(t, wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		return foreignAllocations(ctx, t, ns) == 0, nil
	}), "an earlier test's claims still hold devices of this node")
	startDriver(t, driverOpts{host: h, rescan: time.Minute, config: "../deployments/examples/classic-config.json"})
	classWithConfig(ctx, t, "kp-ens1f0", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f0" && device.attributes["sriov.dra.dev"].driver == "iavf"`, "")
	classWithConfig(ctx, t, "kp-ens1f1", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].pfName == "ens1f1"`, "")
	ens1f0, ens1f1 := vfsOf(h.spec, "ens1f0", "iavf"), vfsOf(h.spec, "ens1f1", "iavf")
	require.Positive(t, ens1f0)
	require.Positive(t, ens1f1)

	// The test's allocations: three running pods, a claim and a VF each.
	const running = 3
	held := map[string]string{} // device -> claim
	for i := range running {
		name := fmt.Sprintf("run-%d", i)
		runUntilDone(ctx, t, ns, podWithClaims(ns, name, "true", name), simpleClaim(ns, name, "kp-ens1f0", 1))
		devices := claimDevices(ctx, t, ns, name)
		require.Len(t, devices, 1)
		held[devices[0]] = name
	}
	require.Len(t, held, running)

	t.Logf("kubectl sriov-dra capacity\n%s", plugin(ctx, t, "capacity"))
	t.Logf("kubectl sriov-dra capacity --class kp-ens1f0 -o json\n%s", plugin(ctx, t, "capacity", "--class", "kp-ens1f0", "-o", "json"))
	class := capacityOf(ctx, t, kubectlplugin.KindClass, "kp-ens1f0")
	assert.Equal(t, []int{ens1f0, running, ens1f0 - running, 0}, []int{class.Total, class.Allocated, class.Free, class.Tainted}, "kp-ens1f0: total, allocated, free, tainted")
	classic := capacityOf(ctx, t, kubectlplugin.KindResourceName, "intel.com/intel_sriov_netdevice")
	assert.Equal(t, []int{ens1f0 + ens1f1, running, ens1f0 + ens1f1 - running}, []int{classic.Total, classic.Allocated, classic.Free},
		"the classic pool of iavf VFs: total, allocated, free")
	all := capacityOf(ctx, t, kubectlplugin.KindDriver, driverName)
	assert.Equal(t, running, all.Allocated)

	t.Logf("kubectl sriov-dra node %s\n%s", cluster.NodeName, plugin(ctx, t, "node", cluster.NodeName))
	var node struct {
		PFs []kubectlplugin.PFGroup `json:"pfs"`
	}
	pluginJSON(ctx, t, &node, "node", cluster.NodeName)
	holders := map[string]string{}
	for _, g := range node.PFs {
		for _, d := range g.Devices {
			for _, h := range d.Holders {
				holders[d.Name] = h.Claim + " " + strings.Join(h.Pods, ",")
			}
		}
	}
	want := map[string]string{}
	for dev, claim := range held {
		want[dev] = ns + "/" + claim + " " + ns + "/" + claim // each pod is named after its claim
	}
	assert.Equal(t, want, holders, "node: the claim and pod holding each VF, and no other holder")

	// Three pods that cannot be scheduled, each for its own reason.
	setLink(t, h, "ens1f1", false)
	t.Cleanup(func() { setLink(t, h, "ens1f1", true) })
	require.Eventually(t, func() bool { return len(taintsOf(ctx, t)) == ens1f1 }, 10*time.Second, 50*time.Millisecond, "ens1f1's VFs tainted")
	pendingPod(ctx, t, ns, "no-match", resourceapi.ExactDeviceRequest{DeviceClassName: "kp-ens1f0", Count: 1,
		Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: `device.attributes["sriov.dra.dev"].vfIndex == 99`}}}}, nil)
	pendingPod(ctx, t, ns, "all-taken", resourceapi.ExactDeviceRequest{DeviceClassName: "kp-ens1f0", Count: int64(ens1f0 - running + 1)}, nil)
	pendingPod(ctx, t, ns, "tainted", resourceapi.ExactDeviceRequest{DeviceClassName: "kp-ens1f1", Count: 1}, nil)
	// Free devices would do, but the pod may not run on the node.
	pendingPod(ctx, t, ns, "elsewhere", resourceapi.ExactDeviceRequest{DeviceClassName: "kp-ens1f0", Count: 1}, map[string]string{"kubernetes.io/hostname": "elsewhere"})

	r := whyOnNode(ctx, t, ns, "no-match")
	assert.Equal(t, kubectlplugin.ReasonNoMatch, r.Reason, r.Detail)
	assert.Contains(t, r.Detail, `request selector 1 (device.attributes["sriov.dra.dev"].vfIndex == 99): none of `+fmt.Sprint(ens1f0))

	r = whyOnNode(ctx, t, ns, "all-taken")
	assert.Equal(t, kubectlplugin.ReasonAllAllocated, r.Reason, r.Detail)
	assert.Equal(t, []int{ens1f0, ens1f0 - running, ens1f0 - running + 1}, []int{r.Matching, r.Free, r.Needed}, "match, free, needs")
	for _, claim := range held {
		assert.Contains(t, r.Detail, ns+"/"+claim, "the claims holding the devices are named")
	}

	r = whyOnNode(ctx, t, ns, "tainted")
	assert.Equal(t, kubectlplugin.ReasonTainted, r.Reason, r.Detail)
	assert.Contains(t, r.Detail, fmt.Sprintf("%d tainted link-down=ens1f1:NoSchedule", ens1f1))

	r = whyOnNode(ctx, t, ns, "elsewhere")
	assert.Equal(t, kubectlplugin.ReasonNodeExcluded, r.Reason, r.Detail)

	r = whyOnNode(ctx, t, ns, "run-0")
	assert.Equal(t, kubectlplugin.ReasonNone, r.Reason, r.Detail)

	t.Logf("kubectl sriov-dra capacity --class kp-ens1f1 -o wide\n%s", plugin(ctx, t, "capacity", "--class", "kp-ens1f1", "-o", "wide"))
	down := capacityOf(ctx, t, kubectlplugin.KindClass, "kp-ens1f1")
	assert.Equal(t, []int{ens1f1, 0, 0, ens1f1}, []int{down.Total, down.Allocated, down.Free, down.Tainted}, "kp-ens1f1 link down: total, allocated, free, tainted")
}
