package claims

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodestate"
)

// Unprepare undoes Prepare (the kubelet's NodeUnprepareResources): files
// removed, drivers restored, the entry dropped. A claim this node never
// prepared, or already unprepared, is done.
func (p *Executor) Unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	start := time.Now()
	out, err := p.unprepare(ctx, claims)
	callDone(ctx, "Unprepare", len(claims), start, p.metrics.UnprepareDuration, p.metrics.UnprepareErrors, err)
	return out, err
}

func (p *Executor) unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	cp, unlock, err := p.lockState(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		p.podnet.ForgetStatus(c.UID)
		entry, ok := cp.Claims[string(c.UID)]
		if !ok {
			out[c.UID] = nil
			continue
		}
		if err := p.rollback(ctx, entry); err != nil {
			klog.FromContext(ctx).Error(err, "Unprepare failed; the kubelet will retry", "claim", klog.KRef(entry.Namespace, entry.Name))
			p.metrics.UnprepareErrors.WithLabelValues(metrics.ReasonClaim).Inc()
			out[c.UID] = err
			continue
		}
		delete(cp.Claims, string(c.UID))
		out[c.UID] = nil
	}
	if err := p.state.Save(cp); err != nil {
		return nil, failed(metrics.ReasonCheckpoint, err)
	}
	return out, nil
}

// rollback removes a claim's files and restores the drivers it rebound. A
// device that is gone from the host has nothing to restore.
func (p *Executor) rollback(ctx context.Context, e checkpoint.Claim) error {
	errs := []error{nodestate.RemoveFiles(e)}
	for i := range e.Devices {
		if d := &e.Devices[i]; d.InPod != nil {
			// Its sandbox went while the driver was away: put the netdev
			// back now, or leave it to an operator with the reason logged;
			// the claim is released either way.
			if err := p.podnet.Detach(ctx, d); err != nil {
				klog.FromContext(ctx).Error(err, "Putting back a netdev on unprepare", "device", d.Name, "claim", klog.KRef(e.Namespace, e.Name))
			}
		}
	}
	// The PF's settings before the driver: a VF driver bound again takes
	// the MAC its PF gives it then.
	for _, d := range e.Devices {
		if d.VFSet == nil {
			continue
		}
		if err := p.podnet.RestoreVF(d.VFSet); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.Name, err))
		} else {
			klog.FromContext(ctx).Info("Restored VF settings on the PF", "device", d.Name, "pf", d.VFSet.PF, "vf", d.VFSet.VFIndex)
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
func (p *Executor) logRollback(ctx context.Context, e checkpoint.Claim, err error) {
	if err != nil {
		klog.FromContext(ctx).Error(err, "Rolling back a claim left things behind", "claim", klog.KRef(e.Namespace, e.Name))
	}
}

// lockState takes the node lock and reads the checkpoint (see
// nodestate.Store.Open). The caller releases the lock with unlock.
func (p *Executor) lockState(ctx context.Context) (cp checkpoint.Data, unlock func(), err error) {
	if cp, unlock, err = p.state.Open(ctx); err != nil {
		return cp, nil, failed(metrics.ReasonCheckpoint, err)
	}
	return cp, unlock, nil
}
