//go:build e2e

// Package scale measures what sriov-dra costs one control plane: N nodes of
// the simulated large host (2,048 VFs each) published at once by the
// driver's own slice writer, against the real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler (no kubelets: publishing needs
// none). `make bench-scale` runs it; docs/scale.md keeps the figures.
package scale

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
	"github.com/sriov-dra/sriov-dra/pkg/slicesync"
)

var (
	binDir  = flag.String("bin-dir", "../../_output/bin", "directory with the pinned Kubernetes binaries")
	nodes   = flag.Int("nodes", 100, "nodes to publish")
	claims  = flag.Int("claims", 1000, "claims (with their pods) created and deleted in the churn phase")
	profile = flag.String("profile", "large", "simulated host profile of every node")
)

const driverName = "sriov.dra.dev"

// report collects the figures and prints them as one block at the end.
type report struct {
	mu    sync.Mutex
	lines []string
}

func (r *report) add(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

// memory reads a process's resident memory in MiB: now and its peak.
func memory(t *testing.T, pid int) (rss, hwm float64) {
	m, err := framework.ProcessMemory(pid)
	require.NoError(t, err)
	return m["VmRSS"], m["VmHWM"]
}

// etcdDBBytes is etcd's backend size in use, from its own metrics.
func etcdDBBytes(t *testing.T, c *framework.Cluster) float64 {
	resp, err := http.Get(c.EtcdURL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd_mvcc_db_total_size_in_use_in_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatal("etcd_mvcc_db_total_size_in_use_in_bytes not in etcd's metrics")
	return 0
}

func TestScale(t *testing.T) {
	flag.Parse()
	ctx := t.Context()
	bin, err := filepath.Abs(*binDir)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "sriov-dra-scale-")
	require.NoError(t, err)
	c, err := framework.Start(ctx, framework.Options{Dir: dir, BinDir: bin, Logf: t.Logf})
	require.NoError(t, err)
	defer c.Stop()
	r := &report{}
	host, _ := simhosttest.NewProfileHost(t, *profile)
	inv, err := discovery.Discover(ctx, host)
	require.NoError(t, err)
	perNode := len(inv.Devices())

	names := make([]string, *nodes)
	for i := range names {
		names[i] = fmt.Sprintf("scale-node-%03d", i)
		defer framework.FakeNode(ctx, t, c.Client, names[i])()
	}
	apiPID, etcdPID := c.PID("kube-apiserver"), c.PID("etcd")
	apiRSS0, _ := memory(t, apiPID)
	etcdRSS0, _ := memory(t, etcdPID)
	db0 := etcdDBBytes(t, c)

	// Each node's publisher as the daemon runs it: its own client with the
	// daemon's default limits, its pool from the host's inventory, the
	// driver's slice writer.
	writers := make([]*slicesync.Writer, *nodes)
	var writes atomic.Int64
	for i, node := range names {
		cfg := rest.CopyConfig(c.RestConfig)
		cfg.QPS, cfg.Burst = 50, 100
		client, err := kubernetes.NewForConfig(cfg)
		require.NoError(t, err)
		pool, _, _, err := resourceslices.DesiredPool(inv, nil, resourceslices.PoolOptions{})
		require.NoError(t, err)
		writers[i] = slicesync.New(client, driverName, node, slicesync.Options{OnWrite: func(string) { writes.Add(1) }})
		writers[i].Update(pool)
	}
	// Stopped before the cluster is (defers run last-in first-out).
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	start := time.Now()
	for _, w := range writers {
		go w.Run(wctx)
	}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Minute, true, func(context.Context) (bool, error) {
		for _, w := range writers {
			if !w.Synced() {
				return false, nil
			}
		}
		return true, nil
	}))
	published := time.Since(start)
	total := countDevices(ctx, t, c.Client)
	require.Equal(t, perNode**nodes, total, "devices in the API")
	r.add(t, "published: %d nodes × %d devices = %d devices in %d slice writes, all visible %s after the publishers started",
		*nodes, perNode, total, writes.Load(), published.Round(time.Millisecond))
	db1 := etcdDBBytes(t, c)
	apiRSS1, apiHWM := memory(t, apiPID)
	etcdRSS1, etcdHWM := memory(t, etcdPID)
	r.add(t, "kube-apiserver RSS %.0f MiB before, %.0f MiB after (peak %.0f); etcd RSS %.0f MiB before, %.0f MiB after (peak %.0f)",
		apiRSS0, apiRSS1, apiHWM, etcdRSS0, etcdRSS1, etcdHWM)
	r.add(t, "etcd db in use: %.1f MiB before, %.1f MiB after: %.0f bytes per device", db0/(1<<20), db1/(1<<20), (db1-db0)/float64(total))

	// At rest: the publishers write nothing more.
	before := writes.Load()
	time.Sleep(5 * time.Second)
	r.add(t, "at rest: %d slice writes in 5 s by %d publishers", writes.Load()-before, *nodes)

	ns := framework.Namespace(ctx, t, c.Client, "scale")
	classes := c.Client.ResourceV1().DeviceClasses()
	_, err = classes.Create(ctx, &resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "scale-vf"},
		Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
			Expression: fmt.Sprintf(`device.driver == %q && device.attributes[%q].functionType == "vf"`, driverName, driverName)}}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	defer classes.Delete(context.Background(), "scale-vf", metav1.DeleteOptions{})

	// One PF's VFs 2-7 on one node (the classic "ens10f0#2-7" on that node).
	pick := names[len(names)/2]
	ranged := fmt.Sprintf(`device.attributes[%q].pfName == "ens10f0" && device.attributes[%q].vfIndex >= 2 && device.attributes[%q].vfIndex <= 7`,
		driverName, driverName, driverName)
	d := allocate(ctx, t, c.Client, ns, "ranged", pick, ranged)
	r.add(t, "scheduler: a claim for VFs 2-7 of ens10f0 on %s allocated %s after its pod was created", pick, d.Round(time.Millisecond))
	d = allocate(ctx, t, c.Client, ns, "anywhere", "", "")
	r.add(t, "scheduler: a claim any node can satisfy allocated %s after its pod was created", d.Round(time.Millisecond))

	churn(ctx, t, c.Client, ns, *claims, r)
	classicNodeCost(ctx, t, c.Client, r)
	t.Logf("summary:\n%s", strings.Join(r.lines, "\n"))
}

// countDevices lists every ResourceSlice of the driver, page by page.
func countDevices(ctx context.Context, t *testing.T, client kubernetes.Interface) int {
	total := 0
	opts := metav1.ListOptions{Limit: 200, FieldSelector: "spec.driver=" + driverName}
	for {
		list, err := client.ResourceV1().ResourceSlices().List(ctx, opts)
		require.NoError(t, err)
		for _, s := range list.Items {
			total += len(s.Spec.Devices)
		}
		if list.Continue == "" {
			return total
		}
		opts.Continue = list.Continue
	}
}

// claimAndPod is a one-VF claim of class scale-vf (narrowed by the extra CEL,
// if any) and a pod that uses it, bound to node if one is named.
func claimAndPod(ns, name, node, cel string) (*resourceapi.ResourceClaim, *corev1.Pod) {
	req := resourceapi.ExactDeviceRequest{DeviceClassName: "scale-vf", AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1}
	if cel != "" {
		req.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: cel}}}
	}
	claim := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "vf", Exactly: &req}}}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
		// No kubelet runs these nodes: the pod is scheduled and stays there.
		Containers:     []corev1.Container{{Name: "main", Image: "registry.local/none:scale", Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "vf"}}}}},
		ResourceClaims: []corev1.PodResourceClaim{{Name: "vf", ResourceClaimName: ptr.To(name)}},
	}}
	if node != "" {
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	}
	return claim, pod
}

// allocate creates a claim and its pod and returns the time from the pod's
// creation to the claim's allocation by the scheduler.
func allocate(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name, node, cel string) time.Duration {
	claim, pod := claimAndPod(ns, name, node, cel)
	_, err := client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
	require.NoError(t, err)
	start := time.Now()
	_, err = client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	var got *resourceapi.ResourceClaim
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err = client.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.Allocation != nil, nil
	}), "claim %s not allocated", name)
	elapsed := time.Since(start)
	res := got.Status.Allocation.Devices.Results
	require.Len(t, res, 1)
	if node != "" {
		require.Equal(t, node, res[0].Pool, "allocated on the node asked for")
	}
	return elapsed
}

// churn creates n claims with their pods at once, waits for every
// allocation, then deletes them all, and reports the rates.
func churn(ctx context.Context, t *testing.T, client kubernetes.Interface, ns string, n int, r *report) {
	const workers = 20
	run := func(fn func(i int) error) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		next := atomic.Int64{}
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if err := fn(i); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	name := func(i int) string { return fmt.Sprintf("churn-%04d", i) }
	start := time.Now()
	run(func(i int) error {
		claim, pod := claimAndPod(ns, name(i), "", "")
		if _, err := client.ResourceV1().ResourceClaims(ns).Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	})
	created := time.Since(start)
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.ResourceV1().ResourceClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		allocated := 0
		for _, c := range list.Items {
			if strings.HasPrefix(c.Name, "churn-") && c.Status.Allocation != nil {
				allocated++
			}
		}
		return allocated == n, nil
	}))
	allAllocated := time.Since(start)
	r.add(t, "churn: %d claims and pods created in %s, all allocated %s after the first: %.0f allocations/s",
		n, created.Round(time.Millisecond), allAllocated.Round(time.Millisecond), float64(n)/allAllocated.Seconds())
	start = time.Now()
	run(func(i int) error {
		if err := client.CoreV1().Pods(ns).Delete(ctx, name(i), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			return err
		}
		return client.ResourceV1().ResourceClaims(ns).Delete(ctx, name(i), metav1.DeleteOptions{})
	})
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.ResourceV1().ResourceClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range list.Items {
			if strings.HasPrefix(c.Name, "churn-") {
				return false, nil
			}
		}
		return true, nil
	}))
	r.add(t, "churn: %d claims and pods deleted, all gone %s after the first delete", n, time.Since(start).Round(time.Millisecond))
}

// classicNodeCost measures what the classic device plugin puts in the API
// for the same node: one capacity and one allocatable entry per classic
// resource in the Node's status (here 10 resources of up to 2,048 VFs),
// and nothing per device.
func classicNodeCost(ctx context.Context, t *testing.T, client kubernetes.Interface, r *report) {
	nodes := client.CoreV1().Nodes()
	node, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "scale-classic"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	defer nodes.Delete(context.Background(), node.Name, metav1.DeleteOptions{})
	size := func() int {
		raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + node.Name).DoRaw(ctx)
		require.NoError(t, err)
		return len(raw)
	}
	base := size()
	// The node controllers update a new node too: retry on conflicts.
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Capacity, node.Status.Allocatable = corev1.ResourceList{}, corev1.ResourceList{}
		for i := range 10 {
			name := corev1.ResourceName(fmt.Sprintf("intel.com/intel_sriov_pool_%d", i))
			node.Status.Capacity[name] = *resourceQuantity(205)
			node.Status.Allocatable[name] = *resourceQuantity(205)
		}
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	}))
	r.add(t, "classic device plugin, for comparison: 10 resources (2,048 VFs) add %d bytes to the Node object, nothing per device", size()-base)
}

func resourceQuantity(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.DecimalSI) }
