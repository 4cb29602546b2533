package driver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

func claimStatusOf(t *testing.T, n *testNode, name string) []resourceapi.AllocatedDeviceStatus {
	t.Helper()
	c, err := n.client.ResourceV1().ResourceClaims("ns").Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return c.Status.Devices
}

// TestClaimStatusWrittenWithRetries: the claim's network status is written
// in the background and retried until the API takes it.
func TestClaimStatusWrittenWithRetries(t *testing.T) {
	c := claimFor("st", "", "pci-0000-3b-02-0", "pci-0000-3b-02-1")
	other := resourceapi.AllocatedDeviceStatus{Driver: "other.example.com", Pool: "p", Device: "d"}
	c.Status.Devices = []resourceapi.AllocatedDeviceStatus{other}
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass, c}})
	var failures atomic.Int32
	n.client.PrependReactor("update", "resourceclaims", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failures.Add(1) <= 3 {
			return true, nil, apierrors.NewTooManyRequests("slow down", 0)
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.podnet.Run(ctx)
	require.NoError(t, n.prepareOne(t, c).Err)
	// The simulator names VF netdevs <pf>v<index> and gives the PF the
	// first MAC, so VF 0 and 1 have the next two.
	want := []resourceapi.AllocatedDeviceStatus{other,
		{Driver: testDriver, Pool: "node", Device: "pci-0000-3b-02-0", NetworkData: &resourceapi.NetworkDeviceData{InterfaceName: "ens1f0v0", HardwareAddress: "02:00:00:00:00:02"}},
		{Driver: testDriver, Pool: "node", Device: "pci-0000-3b-02-1", NetworkData: &resourceapi.NetworkDeviceData{InterfaceName: "ens1f0v1", HardwareAddress: "02:00:00:00:00:03"}},
	}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, claimStatusOf(t, n, c.Name)) }, 10*time.Second, 10*time.Millisecond,
		"status after retries; now %v", claimStatusOf(t, n, c.Name))
	assert.GreaterOrEqual(t, failures.Load(), int32(4))
}

// TestClaimStatusRequeuedOnRepeatedPrepare: a prepared claim whose status
// never landed (the driver restarted with it queued) gets it on the
// kubelet's next prepare.
func TestClaimStatusRequeuedOnRepeatedPrepare(t *testing.T) {
	c := claimFor("rq", "", "pci-0000-3b-02-2")
	n := newTestNode(t, nodeOpts{spec: e810(), objects: []runtime.Object{testClass, c}})
	require.NoError(t, n.prepareOne(t, c).Err)
	// A restart before the status was written: the queue is gone.
	restarted := newTestNode(t, nodeOpts{root: n.root, objects: []runtime.Object{testClass, c}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go restarted.podnet.Run(ctx)
	assert.Empty(t, claimStatusOf(t, restarted, c.Name))
	require.NoError(t, restarted.prepareOne(t, c).Err)
	require.Eventually(t, func() bool { return len(claimStatusOf(t, restarted, c.Name)) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "ens1f0v2", claimStatusOf(t, restarted, c.Name)[0].NetworkData.InterfaceName)
}
