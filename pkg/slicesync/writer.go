// Package slicesync keeps one node's pool of ResourceSlices in the API equal
// to the pool the driver last asked for: slices created, updated and deleted
// concurrently, only where they differ, owned by the Node, and restored at
// once when someone else (the kubelet, when it starts) deletes them.
package slicesync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"
)

// Options tune a Writer; the zero value is a sensible default.
type Options struct {
	// ResyncDelay is how long after a change it did not make (a slice
	// deleted or edited by someone else) the writer looks again. Default 100ms.
	ResyncDelay time.Duration
	// Parallel bounds concurrent API writes. Default 16.
	Parallel int
	// OnSynced is called after every sync that left the API equal to the
	// desired pool, with the number of writes it took.
	OnSynced func(ctx context.Context, writes int)
	// OnWrite is called for every write that succeeded: create, update
	// or delete.
	OnWrite func(verb string)
}

// Writer publishes a node's pool. Create it with New, run it with Run, and
// hand it pools with Update.
type Writer struct {
	client     kubernetes.Interface
	driverName string
	nodeName   string
	opts       Options
	// informer only tells the writer that something changed; each sync
	// reads the slices afresh, so that no cache can be stale.
	informer cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	desired *resourceslice.Pool
	version int64 // of desired
	synced  int64 // the desired version the API matched at the last sync
	nodeUID types.UID
	// own is what the writer already knows of each slice, by name: the
	// resourceVersion its last list showed or its own create or update
	// returned, or ownDelete. While the informer shows just that, a sync
	// need not list and compare every device of the pool (tens of MB for
	// 2,048 devices): only a change by someone else calls for it.
	own map[string]string
	// listed is what the last list showed: until the echo of the writer's
	// own update or delete of a slice arrives, the informer still shows
	// the listed version, which is no change by someone else. (A create
	// has no such grace: a slice the informer lacks may have been deleted.)
	listed map[string]string
}

// ownDelete marks a slice the writer deleted itself.
const ownDelete = "\x00deleted"

// record notes a slice's version the writer knows the content of.
func (w *Writer) record(name, resourceVersion string) {
	w.mu.Lock()
	w.own[name] = resourceVersion
	w.mu.Unlock()
}

// knowsAll reports whether the slices the informer shows are all at the
// versions the writer already knows, and none it wrote has gone: then
// nothing changed that it did not do itself.
func (w *Writer) knowsAll() bool {
	if !w.informer.HasSynced() {
		return false
	}
	cached := map[string]string{}
	for _, obj := range w.informer.GetStore().List() {
		s, ok := obj.(*resourceapi.ResourceSlice)
		if !ok || s.ResourceVersion == "" {
			return false
		}
		cached[s.Name] = s.ResourceVersion
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, rv := range cached {
		if w.own[name] != rv && w.listed[name] != rv {
			return false
		}
	}
	for name, rv := range w.own {
		if _, ok := cached[name]; !ok && rv != ownDelete {
			return false
		}
	}
	return true
}

const queueKey = "pool"

// New sets up a Writer for the node's pool of driverName.
func New(client kubernetes.Interface, driverName, nodeName string, opts Options) *Writer {
	if opts.ResyncDelay <= 0 {
		opts.ResyncDelay = 100 * time.Millisecond
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.AndSelectors(fields.OneTermEqualSelector("spec.nodeName", nodeName),
			fields.OneTermEqualSelector("spec.driver", driverName)).String()
	}))
	w := &Writer{
		client: client, driverName: driverName, nodeName: nodeName, opts: opts, own: map[string]string{},
		informer: factory.Resource().V1().ResourceSlices().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "resourceslices"}),
	}
	// The cache holds only what identifies a slice, not its devices.
	_ = w.informer.SetTransform(func(obj any) (any, error) {
		if s, ok := obj.(*resourceapi.ResourceSlice); ok {
			slim := *s // a copy: the object may be shared with its source
			slim.Spec.Devices, slim.ManagedFields = nil, nil
			return &slim, nil
		}
		return obj, nil
	})
	_, _ = w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.queue.AddAfter(queueKey, w.opts.ResyncDelay) },
		UpdateFunc: func(any, any) { w.queue.AddAfter(queueKey, w.opts.ResyncDelay) },
		DeleteFunc: func(any) { w.queue.AddAfter(queueKey, w.opts.ResyncDelay) },
	})
	return w
}

// Update sets the pool to publish. It returns at once.
func (w *Writer) Update(pool resourceslice.Pool) {
	w.mu.Lock()
	w.desired = &pool
	w.version++
	w.mu.Unlock()
	w.queue.Add(queueKey)
}

// Synced reports whether the API matched the latest pool given to Update
// at the writer's last look.
func (w *Writer) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired != nil && w.synced == w.version
}

// Run writes until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	go w.informer.RunWithContext(ctx)
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	// No wait for the informer: each sync lists the slices itself, and the
	// informer only reports later changes. Waiting for it would also hide a
	// down API server, whose failures only a sync reports.
	failing := time.Time{}
	for {
		key, quit := w.queue.Get()
		if quit {
			return
		}
		err := w.sync(ctx)
		switch {
		case err == nil:
			if !failing.IsZero() {
				logger.Info("Publishing ResourceSlices works again", "after", time.Since(failing).Round(time.Millisecond))
				failing = time.Time{}
			}
			w.queue.Forget(key)
		case ctx.Err() != nil:
		default:
			if failing.IsZero() {
				failing = time.Now()
			}
			logger.Error(err, "Publishing ResourceSlices failed; retrying", "failingFor", time.Since(failing).Round(time.Millisecond))
			w.queue.AddRateLimited(key)
		}
		w.queue.Done(key)
	}
}

// sync makes the API match the desired pool.
func (w *Writer) sync(ctx context.Context) error {
	w.mu.Lock()
	desired, version, synced := w.desired, w.version, w.synced
	w.mu.Unlock()
	if desired == nil {
		return nil
	}
	if version == synced && w.knowsAll() {
		// Only echoes of the writer's own writes (or of what its last
		// list saw) since the API last matched: no list needed.
		return nil
	}
	if err := w.ensureOwner(ctx); err != nil {
		return err
	}
	stored, err := w.list(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]string, len(stored))
	for i := range stored {
		seen[stored[i].Name] = stored[i].ResourceVersion
	}
	w.mu.Lock()
	w.own = seen // what the writer knows now; its writes below add to it
	w.listed = maps.Clone(seen)
	w.mu.Unlock()
	plan := w.plan(desired, stored)
	writes := len(plan.deletes) + len(plan.updates) + len(plan.creates)
	if writes > 0 {
		stale, err := w.apply(ctx, plan)
		if err != nil {
			return err
		}
		if stale {
			// Someone wrote in between: the queued retry looks again.
			return nil
		}
	}
	w.mu.Lock()
	if w.version == version {
		w.synced = version
	}
	w.mu.Unlock()
	if w.opts.OnSynced != nil {
		w.opts.OnSynced(ctx, writes)
	}
	return nil
}

// ensureOwner reads the Node's UID once: the slices are owned by the Node,
// so that deleting it deletes them.
func (w *Writer) ensureOwner(ctx context.Context) error {
	if w.nodeUID != "" {
		return nil
	}
	// Short: a client retries a reset connection until the deadline, and a
	// down API server must be reported within seconds.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	node, err := w.client.CoreV1().Nodes().Get(ctx, w.nodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node %s (owner of the slices): %w", w.nodeName, err)
	}
	w.nodeUID = node.UID
	return nil
}

// list reads the node's slices of this driver from the API.
func (w *Writer) list(ctx context.Context) ([]resourceapi.ResourceSlice, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := w.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("spec.nodeName", w.nodeName),
			fields.OneTermEqualSelector("spec.driver", w.driverName)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list ResourceSlices: %w", err)
	}
	return list.Items, nil
}

// SliceName is the name of the index-th slice of a node's pool. The index
// comes first, as the scheduler tries slices in name order; names are
// stable, so a slice someone deleted comes back under the same name.
func SliceName(driverName, nodeName string, index int) string {
	name := fmt.Sprintf("%05x-%s-%s", index, driverName, nodeName)
	if len(name) > 253 {
		sum := sha256.Sum256([]byte(nodeName))
		name = fmt.Sprintf("%05x-%s-%s", index, driverName, hex.EncodeToString(sum[:12]))
	}
	return strings.ToLower(name)
}

// writePlan is what one sync writes.
type writePlan struct {
	deletes, updates, creates []*resourceapi.ResourceSlice
}

// plan compares the stored slices with the desired pool. The pool's
// generation goes up whenever more than one slice must change, so that the
// scheduler never mixes slices of two versions of the pool.
func (w *Writer) plan(desired *resourceslice.Pool, stored []resourceapi.ResourceSlice) writePlan {
	byName := map[string]*resourceapi.ResourceSlice{}
	var generation int64
	var plan writePlan
	for i := range stored {
		s := &stored[i]
		if s.Spec.Driver != w.driverName || s.Spec.NodeName == nil || *s.Spec.NodeName != w.nodeName {
			continue
		}
		byName[s.Name] = s
		generation = max(generation, s.Spec.Pool.Generation)
	}
	want := make([]*resourceapi.ResourceSlice, len(desired.Slices))
	var eq devicesEqual
	changed, missing := 0, 0
	current := make([]*resourceapi.ResourceSlice, len(desired.Slices))
	for i := range desired.Slices {
		name := SliceName(w.driverName, w.nodeName, i)
		want[i] = w.slice(name, desired.Slices[i].Devices)
		if cur, ok := byName[name]; ok && cur.Spec.Pool.Generation == generation {
			current[i] = cur
			delete(byName, name)
			if cur.Spec.Pool.ResourceSliceCount != int64(len(desired.Slices)) || !eq.equal(cur.Spec.Devices, want[i].Spec.Devices) {
				changed++
			}
			continue
		}
		missing++
	}
	for _, s := range byName {
		plan.deletes = append(plan.deletes, s) // other names, or an older generation
	}
	bump := generation == 0 || missing > 0 || changed > 1
	if bump {
		generation++
	}
	for i, s := range want {
		s.Spec.Pool.Generation = generation
		s.Spec.Pool.ResourceSliceCount = int64(len(want))
		cur := current[i]
		switch {
		case cur == nil:
			plan.creates = append(plan.creates, s)
		case bump || cur.Spec.Pool.ResourceSliceCount != int64(len(desired.Slices)) || !eq.equal(cur.Spec.Devices, s.Spec.Devices):
			s.ResourceVersion = cur.ResourceVersion
			keepTaintTimes(s.Spec.Devices, cur.Spec.Devices)
			plan.updates = append(plan.updates, s)
		}
	}
	return plan
}

// keepTaintTimes carries over when a taint that stays was added (the API
// server sets it): rewriting it would restart the tolerationSeconds of the
// pods on a NoExecute-tainted device.
func keepTaintTimes(desired, stored []resourceapi.Device) {
	added := map[string]*metav1.Time{}
	for _, d := range stored {
		for _, t := range d.Taints {
			added[d.Name+"/"+t.Key+"="+t.Value+":"+string(t.Effect)] = t.TimeAdded
		}
	}
	for i := range desired {
		for j := range desired[i].Taints {
			t := &desired[i].Taints[j]
			if t.TimeAdded == nil {
				t.TimeAdded = added[desired[i].Name+"/"+t.Key+"="+t.Value+":"+string(t.Effect)]
			}
		}
	}
}

// slice is the desired object for one slice, generation not yet set.
func (w *Writer) slice(name string, devices []resourceapi.Device) *resourceapi.ResourceSlice {
	node := w.nodeName
	return &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: w.nodeName, UID: w.nodeUID,
				Controller: func() *bool { t := true; return &t }()}},
		},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   w.driverName,
			NodeName: &node,
			Pool:     resourceapi.ResourcePool{Name: w.nodeName},
			Devices:  devices,
		},
	}
}

// apply writes a plan: deletes first (devices the driver no longer has go
// even if the new slices cannot be stored), then updates and creates, each
// step in parallel. A create that finds the name taken, or an update that
// finds a newer object, means the plan was made from a stale view: it
// reports stale and queues another sync.
func (w *Writer) apply(ctx context.Context, plan writePlan) (stale bool, err error) {
	api := w.client.ResourceV1().ResourceSlices()
	count := func(verb string) {
		if w.opts.OnWrite != nil {
			w.opts.OnWrite(verb)
		}
	}
	var conflicts atomic.Bool
	if err := w.parallel(ctx, plan.deletes, func(ctx context.Context, s *resourceapi.ResourceSlice) error {
		err := api.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err == nil {
			w.record(s.Name, ownDelete)
		}
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			count("delete")
			return nil
		}
		return fmt.Errorf("delete ResourceSlice %s: %w", s.Name, err)
	}); err != nil {
		return false, err
	}
	for _, step := range []struct {
		slices []*resourceapi.ResourceSlice
		write  func(context.Context, *resourceapi.ResourceSlice) (*resourceapi.ResourceSlice, error)
		verb   string
	}{
		{plan.updates, func(ctx context.Context, s *resourceapi.ResourceSlice) (*resourceapi.ResourceSlice, error) {
			return api.Update(ctx, s, metav1.UpdateOptions{})
		}, "update"},
		{plan.creates, func(ctx context.Context, s *resourceapi.ResourceSlice) (*resourceapi.ResourceSlice, error) {
			return api.Create(ctx, s, metav1.CreateOptions{})
		}, "create"},
	} {
		if err := w.parallel(ctx, step.slices, func(ctx context.Context, s *resourceapi.ResourceSlice) error {
			stored, err := step.write(ctx, s)
			if err != nil {
				if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
					conflicts.Store(true)
					return nil
				}
				return fmt.Errorf("%s ResourceSlice %s: %w", step.verb, s.Name, err)
			}
			w.record(stored.Name, stored.ResourceVersion)
			count(step.verb)
			return nil
		}); err != nil {
			return false, err
		}
	}
	if conflicts.Load() {
		w.queue.Add(queueKey)
	}
	return conflicts.Load(), nil
}

// parallel runs fn on each slice with at most Parallel at once, and
// returns the first error.
func (w *Writer) parallel(ctx context.Context, slices []*resourceapi.ResourceSlice, fn func(context.Context, *resourceapi.ResourceSlice) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sem := make(chan struct{}, w.opts.Parallel)
	errs := make(chan error, len(slices))
	var wg sync.WaitGroup
	for _, s := range slices {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs <- fn(ctx, s)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
