//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// allocateForPod writes what the scheduler would into a claim's status: the
// device of this driver on node, reserved for the pod.
func allocateForPod(ctx context.Context, t *testing.T, claim *resourceapi.ResourceClaim, node, device string, pod *corev1.Pod) *resourceapi.ResourceClaim {
	t.Helper()
	claim.Status.Allocation = &resourceapi.AllocationResult{
		Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
			Request: claim.Spec.Devices.Requests[0].Name, Driver: driverName, Pool: node, Device: device,
		}}},
	}
	claim.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: pod.Name, UID: pod.UID}}
	out, err := cluster.Client.ResourceV1().ResourceClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	require.NoError(t, err)
	return out
}

// TestPrepareCyclesLeakNothing drives the running daemon the way the kubelet
// does, over its DRA gRPC socket, through 1,000 prepare/unprepare cycles of
// one claim (a VF rebound to vfio-pci and back each time), and reads its
// goroutine and open-file counts from its own /metrics: neither may grow.
func TestPrepareCyclesLeakNothing(t *testing.T) {
	ctx := t.Context()
	const node, device, cycles, warmup = "leak-node", "pci-0000-3b-02-0", 1000, 50
	defer framework.FakeNode(ctx, t, cluster.Client, node)()
	h := newSimHost(t, profiles(t, "e810"))
	dir := t.TempDir()
	sock := filepath.Join(dir, "health.sock")
	// Its own registration dir: the kubelet must not connect to this node's
	// driver; the test is its kubelet.
	startDriver(t, driverOpts{node: node, host: h, rescan: time.Minute, registrar: filepath.Join(dir, "registry"),
		pluginDir: filepath.Join(dir, "plugin"), extraFlags: []string{"--health-socket", sock}})
	classWithConfig(ctx, t, "e2e-leak", fmt.Sprintf(`device.driver == %q`, driverName), `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci"}`)

	ns := framework.Namespace(ctx, t, cluster.Client, "leak")
	claim, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, simpleClaim(ns, "leak", "e2e-leak", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	// A pod bound to a node without a kubelet: it stays Pending, and the
	// driver reads its containers as it would a real consumer's.
	pod := podWithClaims(ns, "leak", "true", "leak")
	pod.Spec.NodeName = node
	pod, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	claim = allocateForPod(ctx, t, claim, node, device, pod)

	socks, err := filepath.Glob(filepath.Join(dir, "plugin", "*.sock"))
	require.NoError(t, err)
	require.Len(t, socks, 1, "the DRA socket")
	conn, err := grpc.NewClient("unix://"+socks[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	plugin := drapb.NewDRAPluginClient(conn)
	ref := []*drapb.Claim{{Namespace: ns, Name: claim.Name, Uid: string(claim.UID)}}

	// No keep-alive: each scrape's connection is closed, not counted.
	metricsClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	counts := func() (goroutines, fds float64) {
		m := scrapeWith(t, metricsClient, "http://driver/metrics")
		return m["go_goroutines"], m["process_open_fds"]
	}
	var g0, f0 float64
	start := time.Now()
	for i := range cycles {
		if i == warmup {
			g0, f0 = counts()
			start = time.Now()
		}
		prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: ref})
		require.NoError(t, err)
		require.Empty(t, prep.Claims[string(claim.UID)].GetError(), "cycle %d: prepare", i)
		require.Len(t, prep.Claims[string(claim.UID)].GetDevices(), 1)
		unprep, err := plugin.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: ref})
		require.NoError(t, err)
		require.Empty(t, unprep.Claims[string(claim.UID)].GetError(), "cycle %d: unprepare", i)
	}
	per := time.Since(start) / (cycles - warmup)
	g1, f1 := counts()
	t.Logf("%d prepare/unprepare cycles (%s each); after %d: %.0f goroutines, %.0f open fds; at the end: %.0f, %.0f",
		cycles, per.Round(10*time.Microsecond), warmup, g0, f0, g1, f1)
	// A leak of one per cycle would show as hundreds; a few allow for the
	// API client's connections and watches coming and going.
	assert.LessOrEqual(t, g1, g0+3, "goroutines grew")
	assert.LessOrEqual(t, f1, f0+2, "open file descriptors grew")
}
