package podnet

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestClaimStatusDroppedForGoneClaim: a claim deleted meanwhile is not retried.
func TestClaimStatusDroppedForGoneClaim(t *testing.T) {
	w := newStatusWriter(fake.NewClientset(), "sriov.dra.dev")
	w.set("nope", claimStatus{namespace: "ns", name: "nope", devices: []resourceapi.AllocatedDeviceStatus{{Driver: "sriov.dra.dev", Pool: "node", Device: "x"}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, 1)
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.wanted) == 0 && w.queue.Len() == 0
	}, 5*time.Second, 10*time.Millisecond)
}
