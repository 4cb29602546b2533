package deviceplugin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// These tests talk to the shim as the kubelet does: a gRPC client on the
// resource's Unix socket.

// healthBoard is a Health func whose answers the test sets per device ID,
// standing for the driver's health source (a PF's link going down).
type healthBoard struct {
	mu        sync.Mutex
	unhealthy map[string]bool
}

func (b *healthBoard) set(id string, unhealthy bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unhealthy[id] = unhealthy
}

func (b *healthBoard) health(d *discovery.Device) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unhealthy[d.ID()] {
		return pluginapi.Unhealthy
	}
	return pluginapi.Healthy
}

// healthOf is a device list as ID → health.
func healthOf(resp *pluginapi.ListAndWatchResponse) map[string]string {
	out := map[string]string{}
	for _, d := range resp.Devices {
		out[d.ID] = d.Health
	}
	return out
}

// TestListAndWatchResendsOnHealthChange: the kubelet learns of a device
// going unhealthy, and of its recovery, only through a new list on the open
// ListAndWatch stream; without it, it keeps admitting pods to a dead VF.
func TestListAndWatchResendsOnHealthChange(t *testing.T) {
	board := &healthBoard{unhealthy: map[string]bool{}}
	s := newShimWith(t, shimOptions{pools: poolsJSON, health: board.health}, "intel.com/dpdk")
	// Generous, only so that a list that never comes fails the test instead
	// of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := s.client(t, "intel.com/dpdk").ListAndWatch(ctx, &pluginapi.Empty{})
	require.NoError(t, err)

	// The dpdk pool is ens1f0's VFs 6 and 7 (on vfio-pci in the e810 profile).
	const vf6, vf7 = "0000:3b:02.6", "0000:3b:02.7"
	first, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, map[string]string{vf6: pluginapi.Healthy, vf7: pluginapi.Healthy}, healthOf(first))

	steps := []struct {
		name      string
		unhealthy bool
		want      map[string]string
	}{
		{"VF 7 goes unhealthy", true, map[string]string{vf6: pluginapi.Healthy, vf7: pluginapi.Unhealthy}},
		{"VF 7 recovers", false, map[string]string{vf6: pluginapi.Healthy, vf7: pluginapi.Healthy}},
	}
	for _, step := range steps {
		board.set(vf7, step.unhealthy)
		s.update(t) // the rescan that follows a health event
		next, err := stream.Recv()
		require.NoError(t, err, "%s: a new list is sent", step.name)
		assert.Equal(t, step.want, healthOf(next), step.name)
		numa0 := &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: 0}}}
		for _, d := range next.Devices {
			assert.Equal(t, numa0.String(), d.Topology.String(), "%s: %s keeps its NUMA node", step.name, d.ID)
		}
	}
}

// mixedPool takes every VF of the e810 and cx6dx profiles by device ID
// (the e810's VF is 8086:1889, the ConnectX-6 Dx's 15b3:101e), so that one
// resource spans two NUMA nodes and three PFs.
const mixedPool = `{"resourceList":[{"resourceName":"mixed","selectors":{"devices":["1889","101e"]}}]}`

// TestGetPreferredAllocationOverGRPC: the kubelet's preferred-allocation
// call is answered from the resource's pool as preferred.go's doc comment
// promises: must-include devices kept first, then the same NUMA node, then
// the same PF, lowest VF index first; without must-include devices, the
// NUMA node and PF with the most available devices. The expected IDs come
// from the profiles' layout (VF address = PF routing ID + offset + index):
//
//	ens1f0    PF 0000:3b:00.0, NUMA 0, offset 16:  VFs 0-7 are 0000:3b:02.0-7
//	ens1f1    PF 0000:3b:00.1, NUMA 0, offset 135: VFs 0-3 are 0000:3b:11.0-3
//	ens2f0np0 PF 0000:5e:00.0, NUMA 1, offset 2:   VFs 0-3 are 0000:5e:00.2-5
func TestGetPreferredAllocationOverGRPC(t *testing.T) {
	s := newShimWith(t, shimOptions{pools: mixedPool}, "intel.com/mixed")
	c := s.client(t, "intel.com/mixed")

	opts, err := c.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
	require.NoError(t, err)
	require.True(t, opts.GetPreferredAllocationAvailable, "the kubelet asks only when offered")

	var all []string
	for i := range 8 {
		all = append(all, fmt.Sprintf("0000:3b:02.%d", i))
	}
	for i := range 4 {
		all = append(all, fmt.Sprintf("0000:3b:11.%d", i), fmt.Sprintf("0000:5e:00.%d", 2+i))
	}
	// The premise: the pool is exactly those 16 VFs.
	stream, err := c.ListAndWatch(context.Background(), &pluginapi.Empty{})
	require.NoError(t, err)
	listed, err := stream.Recv()
	require.NoError(t, err)
	require.ElementsMatch(t, all, slices.Collect(maps.Keys(healthOf(listed))))

	// The kubelet's list has no useful order: reversed, so that an answer
	// that keeps the request's order is not mistaken for a choice.
	slices.Reverse(all)

	tests := []struct {
		name            string
		available, must []string
		size            int32
		want            []string
	}{
		{"no must-include: NUMA 0 (12 VFs) and ens1f0 (8), lowest VF index first",
			all, nil, 2, []string{"0000:3b:02.0", "0000:3b:02.1"}},
		{"must-include on NUMA 1 anchors there: its PF's VFs by index",
			all, []string{"0000:5e:00.4"}, 3, []string{"0000:5e:00.4", "0000:5e:00.2", "0000:5e:00.3"}},
		{"must-include's PF first, then its NUMA node's other PF, not NUMA 1",
			all, []string{"0000:3b:11.2"}, 6, []string{"0000:3b:11.2", "0000:3b:11.0", "0000:3b:11.1", "0000:3b:11.3", "0000:3b:02.0", "0000:3b:02.1"}},
		{"the NUMA node with the most available devices wins, not the lowest",
			[]string{"0000:3b:02.5", "0000:5e:00.5", "0000:5e:00.3"}, nil, 2, []string{"0000:5e:00.3", "0000:5e:00.5"}},
		{"spills to the other NUMA node when its own runs out, by PF then index",
			[]string{"0000:3b:11.1", "0000:5e:00.3", "0000:3b:02.7", "0000:5e:00.2"}, []string{"0000:5e:00.2"}, 4,
			[]string{"0000:5e:00.2", "0000:5e:00.3", "0000:3b:02.7", "0000:3b:11.1"}},
		{"must-include kept in the kubelet's order, even against NUMA",
			all, []string{"0000:5e:00.3", "0000:3b:02.4"}, 2, []string{"0000:5e:00.3", "0000:3b:02.4"}},
	}
	t.Run("one container each", func(t *testing.T) {
		for _, tc := range tests {
			resp, err := c.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
				ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
					{AvailableDeviceIDs: tc.available, MustIncludeDeviceIDs: tc.must, AllocationSize: tc.size}}})
			require.NoError(t, err, tc.name)
			require.Len(t, resp.ContainerResponses, 1, tc.name)
			assert.Equal(t, tc.want, resp.ContainerResponses[0].DeviceIDs, tc.name)
		}
	})
	t.Run("all containers in one call, answered in order", func(t *testing.T) {
		req := &pluginapi.PreferredAllocationRequest{}
		for _, tc := range tests {
			req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerPreferredAllocationRequest{
				AvailableDeviceIDs: tc.available, MustIncludeDeviceIDs: tc.must, AllocationSize: tc.size})
		}
		resp, err := c.GetPreferredAllocation(context.Background(), req)
		require.NoError(t, err)
		require.Len(t, resp.ContainerResponses, len(tests))
		for i, tc := range tests {
			assert.Equal(t, tc.want, resp.ContainerResponses[i].DeviceIDs, tc.name)
		}
	})
}
