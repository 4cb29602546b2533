//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
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
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

func TestSmokeAPIServesResourceV1(t *testing.T) {
	groups, err := cluster.Client.Discovery().ServerResourcesForGroupVersion("resource.k8s.io/v1")
	require.NoError(t, err)
	var names []string
	for _, r := range groups.APIResources {
		names = append(names, r.Name)
	}
	assert.Subset(t, names, []string{"resourceslices", "resourceclaims", "deviceclasses", "resourceclaimtemplates"})
}

func smokeSlice(name, node, driver string, devices int) *resourceapi.ResourceSlice {
	s := &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   driver,
			NodeName: ptr.To(node),
			Pool:     resourceapi.ResourcePool{Name: name, ResourceSliceCount: 1},
		},
	}
	for i := range devices {
		s.Spec.Devices = append(s.Spec.Devices, resourceapi.Device{
			Name: fmt.Sprintf("dev-%d", i),
			Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
				"index": {IntValue: ptr.To(int64(i))},
				"kind":  {StringValue: ptr.To(map[bool]string{true: "even", false: "odd"}[i%2 == 0])},
			},
		})
	}
	return s
}

func TestSmokeSliceDeviceLimit(t *testing.T) {
	ctx := t.Context()
	slices := cluster.Client.ResourceV1().ResourceSlices()
	_, err := slices.Create(ctx, smokeSlice("smoke-129", "e2e-node", "limit.example.com", 129), metav1.CreateOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "spec.devices: Too many: 129: must have at most 128 items")
	created, err := slices.Create(ctx, smokeSlice("smoke-128", "e2e-node", "limit.example.com", 128), metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Len(t, created.Spec.Devices, 128)
	require.NoError(t, slices.Delete(ctx, created.Name, metav1.DeleteOptions{}))
}

// TestSmokeSchedulerAllocatesWithCEL has the real scheduler allocate a claim
// on a node without a kubelet (a Node object kept Ready by the test), so
// nothing tries to prepare the hand-made devices.
func TestSmokeSchedulerAllocatesWithCEL(t *testing.T) {
	ctx := t.Context()
	const node, driver = "smoke-fake-node", "smoke.example.com"
	stop := framework.FakeNode(ctx, t, cluster.Client, node)
	defer stop()
	c := cluster.Client
	slice, err := c.ResourceV1().ResourceSlices().Create(ctx, smokeSlice("smoke-sched", node, driver, 6), metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.ResourceV1().ResourceSlices().Delete(context.Background(), slice.Name, metav1.DeleteOptions{})
	})
	class := &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke-class"},
		Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{
			CEL: &resourceapi.CELDeviceSelector{Expression: `device.driver == "` + driver + `"`},
		}}},
	}
	_, err = c.ResourceV1().DeviceClasses().Create(ctx, class, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.ResourceV1().DeviceClasses().Delete(context.Background(), class.Name, metav1.DeleteOptions{})
	})
	ns := framework.Namespace(ctx, t, c, "smoke")
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "odd-high", Namespace: ns},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "nic",
			Exactly: &resourceapi.ExactDeviceRequest{
				DeviceClassName: class.Name,
				Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
					Expression: `device.attributes["` + driver + `"].kind == "odd" && device.attributes["` + driver + `"].index >= 3`,
				}}},
			},
		}}}},
	}
	_, err = c.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := framework.BusyboxPod(ns, "claimer", "true")
	pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "nic", ResourceClaimName: ptr.To(claim.Name)}}
	pod.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "nic"}}
	_, err = c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)

	var got *resourceapi.ResourceClaim
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = c.ResourceV1().ResourceClaims(ns).Get(ctx, claim.Name, metav1.GetOptions{})
		return err == nil && got.Status.Allocation != nil, nil
	}), "claim was not allocated; pod: %s", framework.DescribePod(ctx, c, ns, pod.Name))
	results := got.Status.Allocation.Devices.Results
	require.Len(t, results, 1)
	assert.Contains(t, []string{"dev-3", "dev-5"}, results[0].Device)
	assert.Equal(t, driver, results[0].Driver)
	assert.Equal(t, "smoke-sched", results[0].Pool)
}

func TestSmokeKubeletRunsPod(t *testing.T) {
	ctx := t.Context()
	c := cluster.Client
	ns := framework.Namespace(ctx, t, c, "smoke-run")
	pod := framework.BusyboxPod(ns, "hello", "echo hello from $(cat /proc/sys/kernel/hostname) && ls /bin/busybox")
	pod.Spec.NodeName = cluster.NodeName
	start := time.Now()
	_, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	phase := framework.WaitPodDone(ctx, t, c, ns, pod.Name, 90*time.Second)
	require.Equal(t, corev1.PodSucceeded, phase, framework.DescribePod(ctx, c, ns, pod.Name))
	t.Logf("busybox pod completed in %s", time.Since(start).Round(time.Millisecond))
	logs, err := framework.ContainerLog(cluster, ns, pod.Name, "main")
	require.NoError(t, err)
	assert.Contains(t, logs, "hello from hello")
	assert.Contains(t, logs, "/bin/busybox")
	entries, err := os.ReadDir(filepath.Join(cluster.PodLogsDir()))
	require.NoError(t, err)
	assert.True(t, strings.Contains(fmt.Sprint(entries), ns+"_hello_"))
}
