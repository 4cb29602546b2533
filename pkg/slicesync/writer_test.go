package slicesync_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/sriov-dra/sriov-dra/pkg/slicesync"
)

const driver, node = "sriov.dra.dev", "node-a"

// pool has one slice per count, of devices named <slice>-<i>.
func pool(counts ...int) resourceslice.Pool {
	var p resourceslice.Pool
	for s, n := range counts {
		var devs []resourceapi.Device
		for i := range n {
			devs = append(devs, resourceapi.Device{Name: fmt.Sprintf("dev-%d-%d", s, i)})
		}
		p.Slices = append(p.Slices, resourceslice.Slice{Devices: devs})
	}
	return p
}

type harness struct {
	client *fake.Clientset
	w      *slicesync.Writer
	mu     sync.Mutex
	verbs  map[string]int64 // as reported to Options.OnWrite
}

const resyncDelay = 20 * time.Millisecond

func start(t *testing.T, withNode bool) *harness {
	t.Helper()
	client := fake.NewClientset()
	if withNode {
		_, err := client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: "node-uid"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	// The fake stores no resourceVersions; the apiserver sets a new one on
	// every write, and the writer tells its own writes by them.
	var rv atomic.Int64
	for _, verb := range []string{"create", "update"} {
		client.PrependReactor(verb, "resourceslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if s, ok := a.(k8stesting.CreateAction).GetObject().(*resourceapi.ResourceSlice); ok {
				s.ResourceVersion = strconv.FormatInt(rv.Add(1), 10)
			}
			return false, nil, nil
		})
	}
	h := &harness{client: client, verbs: map[string]int64{}}
	h.w = slicesync.New(client, driver, node, slicesync.Options{ResyncDelay: resyncDelay, OnWrite: func(verb string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.verbs[verb]++
	}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go h.w.Run(ctx)
	return h
}

func (h *harness) slices(t *testing.T) []resourceapi.ResourceSlice {
	t.Helper()
	list, err := h.client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	slices.SortFunc(list.Items, func(a, b resourceapi.ResourceSlice) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// publish hands the writer a pool and waits until it says the API matches.
func (h *harness) publish(t *testing.T, p resourceslice.Pool) {
	t.Helper()
	h.w.Update(p)
	require.Eventually(t, h.w.Synced, 5*time.Second, 5*time.Millisecond)
}

// writes is the number of writes since the last call, as reported to
// Options.OnWrite: creates, updates, deletes.
func (h *harness) writes(last *[3]int64) [3]int64 {
	h.mu.Lock()
	now := [3]int64{h.verbs["create"], h.verbs["update"], h.verbs["delete"]}
	h.mu.Unlock()
	delta := [3]int64{now[0] - last[0], now[1] - last[1], now[2] - last[2]}
	*last = now
	return delta
}

func deviceNames(s resourceapi.ResourceSlice) []string {
	var out []string
	for _, d := range s.Spec.Devices {
		out = append(out, d.Name)
	}
	return out
}

func TestWriterPublishesAndUpdatesOnlyWhatChanged(t *testing.T) {
	h := start(t, true)
	var last [3]int64
	h.publish(t, pool(2, 3, 1))
	got := h.slices(t)
	require.Len(t, got, 3)
	for i, s := range got {
		assert.Equal(t, fmt.Sprintf("%05x-sriov.dra.dev-node-a", i), s.Name, "the index leads: the scheduler tries slices in name order")
		assert.Equal(t, int64(1), s.Spec.Pool.Generation)
		assert.Equal(t, int64(3), s.Spec.Pool.ResourceSliceCount)
		assert.Equal(t, node, s.Spec.Pool.Name)
		assert.Equal(t, node, *s.Spec.NodeName)
		require.Len(t, s.OwnerReferences, 1)
		assert.Equal(t, metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: node, UID: "node-uid", Controller: s.OwnerReferences[0].Controller}, s.OwnerReferences[0])
	}
	assert.Equal(t, []string{"dev-1-0", "dev-1-1", "dev-1-2"}, deviceNames(got[1]))
	assert.Equal(t, [3]int64{3, 0, 0}, h.writes(&last))

	h.publish(t, pool(2, 3, 1))
	assert.Equal(t, [3]int64{0, 0, 0}, h.writes(&last), "an unchanged pool writes nothing")

	h.publish(t, pool(2, 4, 1))
	assert.Equal(t, [3]int64{0, 1, 0}, h.writes(&last), "one slice changed: one update, same generation")
	got = h.slices(t)
	assert.Equal(t, int64(1), got[1].Spec.Pool.Generation)
	assert.Len(t, got[1].Spec.Devices, 4)

	h.publish(t, pool(3, 5, 1))
	assert.Equal(t, [3]int64{0, 3, 0}, h.writes(&last), "two changed: the generation goes up on every slice")
	for _, s := range h.slices(t) {
		assert.Equal(t, int64(2), s.Spec.Pool.Generation)
	}

	h.publish(t, pool(3, 5))
	assert.Equal(t, [3]int64{0, 2, 1}, h.writes(&last), "a slice fewer: it is deleted, the count changes on the others")
	got = h.slices(t)
	require.Len(t, got, 2)
	for _, s := range got {
		assert.Equal(t, int64(2), s.Spec.Pool.ResourceSliceCount)
		assert.Equal(t, int64(3), s.Spec.Pool.Generation)
	}
}

// TestWriterRestoresDeletedSlices: the kubelet deletes a node's slices when
// it starts; they come back without waiting for anything else.
func TestWriterRestoresDeletedSlices(t *testing.T) {
	h := start(t, true)
	h.publish(t, pool(2, 2))
	api := h.client.ResourceV1().ResourceSlices()
	creates := func() int {
		n := 0
		for _, a := range h.client.Actions() {
			if a.GetVerb() == "create" && a.GetResource().Resource == "resourceslices" {
				n++
			}
		}
		return n
	}
	// Let the echoes of its own writes pass first: a sync they queued
	// would restore the slices without the deletion ever being noticed.
	time.Sleep(10 * resyncDelay)
	before := creates()
	// One by one: the fake clientset's DeleteCollection deletes nothing.
	for _, s := range h.slices(t) {
		require.NoError(t, api.Delete(context.Background(), s.Name, metav1.DeleteOptions{}))
	}
	deleted := time.Now()
	require.Eventually(t, func() bool { return len(h.slices(t)) == 2 && creates() == before+2 }, 5*time.Second, 5*time.Millisecond,
		"both slices written again")
	t.Logf("slices back %s after their deletion", time.Since(deleted).Round(time.Millisecond))
	for _, s := range h.slices(t) {
		assert.Equal(t, int64(2), s.Spec.Pool.ResourceSliceCount)
	}
}

// TestWriterRemovesForeignSlicesOfItsPool: slices of the pool under other
// names (an older version's, or a stale copy) are deleted.
func TestWriterRemovesForeignSlicesOfItsPool(t *testing.T) {
	h := start(t, true)
	nodeName := node
	stray := &resourceapi.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: "old-random-name"},
		Spec: resourceapi.ResourceSliceSpec{Driver: driver, NodeName: &nodeName, Pool: resourceapi.ResourcePool{Name: node, Generation: 7, ResourceSliceCount: 1}}}
	other := stray.DeepCopy()
	other.Name, other.Spec.Driver = "another-driver", "gpu.example.com"
	for _, s := range []*resourceapi.ResourceSlice{stray, other} {
		_, err := h.client.ResourceV1().ResourceSlices().Create(context.Background(), s, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	h.publish(t, pool(1))
	var names []string
	for _, s := range h.slices(t) {
		names = append(names, s.Name)
		if s.Spec.Driver == driver {
			assert.Equal(t, int64(8), s.Spec.Pool.Generation, "above every generation seen")
		}
	}
	assert.Equal(t, []string{"00000-sriov.dra.dev-node-a", "another-driver"}, names)
}

// TestWriterWaitsForItsNode: without the Node (the owner) nothing is
// written and Synced stays false; once the Node exists the pool goes out.
func TestWriterWaitsForItsNode(t *testing.T) {
	h := start(t, false)
	h.w.Update(pool(1))
	assert.Never(t, h.w.Synced, 300*time.Millisecond, 10*time.Millisecond)
	assert.Empty(t, h.slices(t))
	_, err := h.client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, UID: "late"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, h.w.Synced, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "late", string(h.slices(t)[0].OwnerReferences[0].UID))
}

func TestSliceNameStaysValid(t *testing.T) {
	long := ""
	for len(long) < 250 {
		long += "node-name."
	}
	name := slicesync.SliceName(driver, long, 3)
	assert.LessOrEqual(t, len(name), 253)
	assert.Regexp(t, `^00003-sriov\.dra\.dev-[0-9a-f]{24}$`, name)
}

// TestWriterIgnoresItsOwnEchoes: the informer reports the writer's own
// writes back; those need no list of every device of the pool.
// A change by someone else still does (TestWriterRestoresDeletedSlices).
func TestWriterIgnoresItsOwnEchoes(t *testing.T) {
	h := start(t, true)
	var lists atomic.Int64
	h.client.PrependReactor("list", "resourceslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	settle := func() { time.Sleep(300 * time.Millisecond) } // 15 resync delays
	h.publish(t, pool(2, 3, 1))
	settle()
	before := lists.Load()
	var last [3]int64
	h.writes(&last)
	h.publish(t, pool(2, 4, 1))
	settle()
	assert.Equal(t, [3]int64{0, 1, 0}, h.writes(&last))
	assert.Equal(t, before+1, lists.Load(), "one sync for the new pool, none for the echo of its update")
	h.publish(t, pool(2, 4))
	settle()
	assert.Equal(t, [3]int64{0, 2, 1}, h.writes(&last))
	assert.Equal(t, before+2, lists.Load(), "one sync for the new pool, none for the echoes of its delete and updates")
}

// TestWriterKeepsTaintTimes: a taint that stays keeps the time the API
// server gave it when another device of its slice changes; a rewrite would
// restart the tolerationSeconds of pods on a NoExecute-tainted device.
func TestWriterKeepsTaintTimes(t *testing.T) {
	h := start(t, true)
	added := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	// As the API server does: a taint written without a time gets one.
	h.client.PrependReactor("create", "resourceslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateAction).GetObject().(*resourceapi.ResourceSlice)
		for i := range s.Spec.Devices {
			for j := range s.Spec.Devices[i].Taints {
				if s.Spec.Devices[i].Taints[j].TimeAdded == nil {
					s.Spec.Devices[i].Taints[j].TimeAdded = &added
				}
			}
		}
		return false, nil, nil
	})
	tainted := func(devices int) resourceslice.Pool {
		p := pool(devices)
		p.Slices[0].Devices[0].Taints = []resourceapi.DeviceTaint{{Key: "sriov.dra.dev/link-down", Value: "ens1f0", Effect: resourceapi.DeviceTaintEffectNoExecute}}
		return p
	}
	h.publish(t, tainted(2))
	require.Equal(t, &added, h.slices(t)[0].Spec.Devices[0].Taints[0].TimeAdded)
	h.publish(t, tainted(3))
	stored := h.slices(t)[0].Spec.Devices
	require.Len(t, stored, 3, "the slice was rewritten")
	require.Len(t, stored[0].Taints, 1)
	assert.Equal(t, &added, stored[0].Taints[0].TimeAdded, "the taint's time is carried over")
}
