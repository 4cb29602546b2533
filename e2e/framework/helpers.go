package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// Namespace creates a namespace for one test and deletes it afterwards.
func Namespace(ctx context.Context, t testing.TB, c kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// BusyboxPod is a pod that runs script in the local busybox image once.
func BusyboxPod(ns, name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// WaitPodDone waits until the pod succeeded or failed and returns its phase.
func WaitPodDone(ctx context.Context, t testing.TB, c kubernetes.Interface, ns, name string, timeout time.Duration) corev1.PodPhase {
	t.Helper()
	var phase corev1.PodPhase
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = pod.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	return phase
}

// DescribePod summarizes a pod's status and events for failure messages.
func DescribePod(ctx context.Context, c kubernetes.Interface, ns, name string) string {
	pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s/%s phase=%s node=%s", ns, name, pod.Status.Phase, pod.Spec.NodeName)
	for _, cond := range pod.Status.Conditions {
		fmt.Fprintf(&b, "\n  %s=%s %s %s", cond.Type, cond.Status, cond.Reason, cond.Message)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		fmt.Fprintf(&b, "\n  container %s: %+v", cs.Name, cs.State)
	}
	events, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err == nil {
		for _, e := range events.Items {
			fmt.Fprintf(&b, "\n  event %s %s: %s", e.Type, e.Reason, e.Message)
		}
	}
	return b.String()
}

// ContainerLog reads a container's log from the kubelet's pod log directory
// (no traffic to the kubelet needed).
func ContainerLog(c *Cluster, ns, pod, container string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(c.PodLogsDir(), ns+"_"+pod+"_*", container, "*.log"))
	if err != nil || len(matches) == 0 {
		return "", fmt.Errorf("no log for %s/%s/%s under %s", ns, pod, container, c.PodLogsDir())
	}
	var out strings.Builder
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return "", err
		}
		// CRI log lines: "<time> <stream> <tag> <message>".
		for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if parts := strings.SplitN(line, " ", 4); len(parts) == 4 {
				out.WriteString(parts[3] + "\n")
			}
		}
	}
	return out.String(), nil
}

// FakeNode creates a Ready node without a kubelet and keeps its heartbeat
// fresh (node lifecycle marks silent nodes NotReady after about 40 s). The
// returned func deletes it.
func FakeNode(ctx context.Context, t testing.TB, c kubernetes.Interface, name string) func() {
	t.Helper()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{"cpu": resourceQuantity("8"), "memory": resourceQuantity("16Gi"), "pods": resourceQuantity("110")},
			Allocatable: corev1.ResourceList{"cpu": resourceQuantity("8"), "memory": resourceQuantity("16Gi"), "pods": resourceQuantity("110")},
		},
	}
	created, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create fake node: %v", err)
	}
	refresh := func() error {
		// Node controllers update the new node too; retry on conflicts.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "FakeNode",
				LastHeartbeatTime: now, LastTransitionTime: now}}
			n.Status.Capacity, n.Status.Allocatable = created.Status.Capacity, created.Status.Allocatable
			_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})
	}
	if err := refresh(); err != nil {
		t.Fatalf("fake node status: %v", err)
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = refresh()
			}
		}
	}()
	return func() {
		close(done)
		_ = c.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	}
}
