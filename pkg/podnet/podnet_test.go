package podnet

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// TestEnabledByTheNRISocket: netdevs move into pods only when the runtime's
// NRI socket is configured; connected only once it answers.
func TestEnabledByTheNRISocket(t *testing.T) {
	off := New(Config{DriverName: "sriov.dra.dev", Client: fake.NewClientset()})
	assert.False(t, off.Enabled())
	assert.False(t, off.Connected())
	on := New(Config{DriverName: "sriov.dra.dev", Client: fake.NewClientset(), NRISocket: filepath.Join(t.TempDir(), "nri.sock")})
	assert.True(t, on.Enabled())
	assert.False(t, on.Connected(), "not run, so not connected")
}
