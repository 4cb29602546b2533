package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// Unprepare undoes Prepare (the kubelet's NodeUnprepareResources): files
// removed, drivers restored, the entry dropped. A claim this node never
// prepared, or already unprepared, is done.
func (p *preparer) Unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	start := time.Now()
	out, err := p.unprepare(ctx, claims)
	callDone(ctx, "Unprepare", len(claims), start, p.metrics.UnprepareDuration, p.metrics.UnprepareErrors, err)
	return out, err
}

func (p *preparer) unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	cp, unlock, err := p.lockState(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		p.status.forget(c.UID)
		entry, ok := cp.Claims[string(c.UID)]
		if !ok {
			out[c.UID] = nil
			continue
		}
		if err := p.rollback(ctx, entry); err != nil {
			klog.FromContext(ctx).Error(err, "Unprepare failed; the kubelet will retry", "claim", klog.KRef(entry.Namespace, entry.Name))
			p.metrics.UnprepareErrors.WithLabelValues(reasonClaim).Inc()
			out[c.UID] = err
			continue
		}
		delete(cp.Claims, string(c.UID))
		out[c.UID] = nil
	}
	if err := p.state.save(cp); err != nil {
		return nil, failed(reasonCheckpoint, err)
	}
	return out, nil
}

// rollback removes a claim's files and restores the drivers it rebound. A
// device that is gone from the host has nothing to restore.
func (p *preparer) rollback(ctx context.Context, e checkpoint.Claim) error {
	errs := []error{removeFiles(e)}
	for i := range e.Devices {
		if d := &e.Devices[i]; d.InPod != nil {
			// Its sandbox went while the driver was away: put the netdev
			// back now, or leave it to an operator with the reason logged;
			// the claim is released either way.
			if err := p.detachDevice(ctx, d); err != nil {
				klog.FromContext(ctx).Error(err, "Putting back a netdev on unprepare", "device", d.Name, "claim", klog.KRef(e.Namespace, e.Name))
			}
		}
	}
	for _, d := range e.Devices {
		if d.BoundDriver == "" {
			continue
		}
		_, err := p.host.BindDriver(d.PCIAddress, d.OriginalDriver)
		switch {
		case errors.Is(err, host.ErrNoDevice):
			klog.FromContext(ctx).Info("Device is gone from the host; nothing to restore", "device", d.Name, "claim", klog.KRef(e.Namespace, e.Name))
		case err != nil:
			errs = append(errs, fmt.Errorf("restore %s to %q: %w", d.Name, d.OriginalDriver, err))
		default:
			klog.FromContext(ctx).Info("Restored device driver", "device", d.Name, "driver", d.OriginalDriver)
		}
	}
	return errors.Join(errs...)
}

// logRollback reports a rollback that did not complete.
func (p *preparer) logRollback(ctx context.Context, e checkpoint.Claim, err error) {
	if err != nil {
		klog.FromContext(ctx).Error(err, "Rolling back a claim left things behind", "claim", klog.KRef(e.Namespace, e.Name))
	}
}

// lockState takes the node lock and reads the checkpoint (see loadState).
// The caller releases the lock with unlock.
func (p *preparer) lockState(ctx context.Context) (cp checkpoint.Data, unlock func(), err error) {
	if unlock, err = p.state.lock(ctx); err != nil {
		return cp, nil, failed(reasonCheckpoint, err)
	}
	if cp, err = p.loadState(ctx); err != nil {
		unlock()
		return cp, nil, failed(reasonCheckpoint, err)
	}
	return cp, unlock, nil
}

// loadState reads the checkpoint for a prepare or unprepare. An unreadable
// checkpoint stops both, loudly and without changing anything: nothing
// destructive is ever decided from a state that could not be read. A
// restart sets the file aside and rebuilds (see reconcile).
func (p *preparer) loadState(ctx context.Context) (checkpoint.Data, error) {
	cp, err := p.state.load(ctx)
	if errors.Is(err, checkpoint.ErrUnreadable) {
		err = p.stateUnreadable(ctx, err)
	}
	return cp, err
}

// stateUnreadable records an unreadable checkpoint: reported once, the
// health check failing from now on, so that the kubelet restarts the
// daemon, which keeps the file aside and rebuilds.
func (p *preparer) stateUnreadable(ctx context.Context, err error) error {
	err = fmt.Errorf("%w; preparing and unpreparing stop until the driver restarts, which keeps the file aside and rebuilds the state", err)
	if p.state.markCorrupt() {
		klog.FromContext(ctx).Error(err, "Checkpoint unreadable")
		p.events.warn(ctx, "CheckpointUnreadable", err.Error())
		p.metrics.CheckpointReadable.Set(0)
	}
	return err
}

// checkState reads the checkpoint once per rescan, on the inventory just
// discovered: a file that became unreadable is noticed then, not at the
// next prepare; prepared devices gone from the host are warned about; and
// it returns the devices the claims hold, for the pools. Read without the
// lock: an entry is written before its device is rebound, so a rescan that
// sees the new driver sees the entry too.
func (p *preparer) checkState(ctx context.Context, inv *discovery.Inventory) (map[string]selector.Allocated, error) {
	cp, err := p.state.peek()
	switch {
	case errors.Is(err, checkpoint.ErrUnreadable):
		return nil, p.stateUnreadable(ctx, err)
	case err != nil:
		klog.FromContext(ctx).Error(err, "Reading the checkpoint at a rescan")
		return nil, err
	}
	p.warnVanished(ctx, cp, inv)
	return heldDevices(cp), nil
}

// warnVanished warns, once per device, about a prepared device that is no
// longer on the host (its VFs were removed, its NIC unplugged): its pod
// runs on without it. Unprepare will still succeed.
func (p *preparer) warnVanished(ctx context.Context, cp checkpoint.Data, inv *discovery.Inventory) {
	if inv == nil {
		return
	}
	gone := map[string]bool{}
	for _, e := range cp.Claims {
		for _, d := range e.Devices {
			if _, ok := inv.Get(d.Name); ok {
				continue
			}
			gone[d.Name] = true
			if p.vanished[d.Name] {
				continue
			}
			msg := fmt.Sprintf("device %s, prepared for claim %s/%s, is gone from the host; its pod runs without it", d.Name, e.Namespace, e.Name)
			klog.FromContext(ctx).Info("Warning: "+msg, "device", d.Name, "claim", klog.KRef(e.Namespace, e.Name))
			p.events.warn(ctx, "PreparedDeviceGone", msg)
		}
	}
	p.vanished = gone
}
