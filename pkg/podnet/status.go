package podnet

import (
	"context"
	"sync"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

// claimStatus is the network status (KEP-4817) the driver wants a claim to
// show: status.devices entries for its netdev devices.
type claimStatus struct {
	namespace, name string
	devices         []resourceapi.AllocatedDeviceStatus
}

// statusWriter writes claims' network status in the background, retrying
// with back-off until each write lands, so that a slow or rate-limited API
// never fails or delays a prepare. It keeps only the latest wanted status
// per claim.
type statusWriter struct {
	client     kubernetes.Interface
	driverName string
	queue      workqueue.TypedRateLimitingInterface[types.UID]

	mu     sync.Mutex
	wanted map[types.UID]claimStatus
}

func newStatusWriter(client kubernetes.Interface, driverName string) *statusWriter {
	return &statusWriter{
		client:     client,
		driverName: driverName,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "claim-status"}),
		wanted: map[types.UID]claimStatus{},
	}
}

// set asks for a claim's status to be written. A claim without netdev
// devices needs none.
func (w *statusWriter) set(uid types.UID, st claimStatus) {
	if len(st.devices) == 0 {
		return
	}
	w.mu.Lock()
	w.wanted[uid] = st
	w.mu.Unlock()
	w.queue.Add(uid)
}

// forget drops a claim that is unprepared.
func (w *statusWriter) forget(uid types.UID) {
	w.mu.Lock()
	delete(w.wanted, uid)
	w.mu.Unlock()
	w.queue.Forget(uid)
}

// run writes statuses until ctx ends.
func (w *statusWriter) run(ctx context.Context, workers int) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	wg.Wait()
}

func (w *statusWriter) next(ctx context.Context) bool {
	uid, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(uid)
	w.mu.Lock()
	st, ok := w.wanted[uid]
	w.mu.Unlock()
	if !ok {
		w.queue.Forget(uid)
		return true
	}
	done, err := w.write(ctx, uid, st)
	switch {
	case err != nil:
		klog.FromContext(ctx).Error(err, "Setting claim network status failed; retrying", "claim", klog.KRef(st.namespace, st.name), "attempts", w.queue.NumRequeues(uid)+1)
		w.queue.AddRateLimited(uid)
	case done:
		w.mu.Lock()
		if cur, ok := w.wanted[uid]; ok && apiequality.Semantic.DeepEqual(cur.devices, st.devices) {
			delete(w.wanted, uid)
		}
		w.mu.Unlock()
		w.queue.Forget(uid)
	}
	return true
}

// write sets the claim's status.devices entries of this driver. It reports
// done when the claim shows them or is gone.
func (w *statusWriter) write(ctx context.Context, uid types.UID, st claimStatus) (bool, error) {
	claims := w.client.ResourceV1().ResourceClaims(st.namespace)
	c, err := claims.Get(ctx, st.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && c.UID != uid) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if hasStatus(c, w.driverName, st.devices) {
		return true, nil
	}
	kept := make([]resourceapi.AllocatedDeviceStatus, 0, len(c.Status.Devices)+len(st.devices))
	for _, d := range c.Status.Devices {
		if d.Driver != w.driverName {
			kept = append(kept, d)
		}
	}
	c.Status.Devices = append(kept, st.devices...)
	if _, err := claims.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	}
	return true, nil
}

// hasStatus reports whether the claim already shows exactly these devices
// for the driver.
func hasStatus(c *resourceapi.ResourceClaim, driverName string, want []resourceapi.AllocatedDeviceStatus) bool {
	var have []resourceapi.AllocatedDeviceStatus
	for _, d := range c.Status.Devices {
		if d.Driver == driverName {
			have = append(have, d)
		}
	}
	return apiequality.Semantic.DeepEqual(have, want)
}

// ReportStatus asks for the status of a claim prepared earlier, when the
// claim does not show it yet (its write was lost with a restart).
func (p *PodNet) ReportStatus(c *resourceapi.ResourceClaim, e checkpoint.Claim) {
	if st := statusOf(p.driverName, e); !hasStatus(c, p.driverName, st.devices) {
		p.status.set(c.UID, st)
	}
}

// SetStatus asks for the status of a claim just prepared.
func (p *PodNet) SetStatus(uid types.UID, e checkpoint.Claim) {
	p.status.set(uid, statusOf(p.driverName, e))
}

// ForgetStatus drops what was asked for a claim being unprepared.
func (p *PodNet) ForgetStatus(uid types.UID) { p.status.forget(uid) }

// statusOf is the status a prepared claim's checkpoint entry calls for.
func statusOf(driverName string, e checkpoint.Claim) claimStatus {
	st := claimStatus{namespace: e.Namespace, name: e.Name}
	for _, d := range e.Devices {
		if d.InterfaceName == "" && d.HardwareAddress == "" {
			continue // no netdev, and no MAC set on its PF
		}
		nd := &resourceapi.NetworkDeviceData{InterfaceName: d.InterfaceName, HardwareAddress: d.HardwareAddress}
		if at := d.InPod; at != nil && at.State == checkpoint.InPodAttached {
			// In the pod: what the pod sees.
			nd = &resourceapi.NetworkDeviceData{InterfaceName: at.IfName, HardwareAddress: at.MAC, IPs: at.IPs}
		}
		st.devices = append(st.devices, resourceapi.AllocatedDeviceStatus{Driver: driverName, Pool: d.Pool, Device: d.Name, NetworkData: nd})
	}
	return st
}
