package claims

import (
	"context"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

// collectGarbage unprepares claims the API says are gone (deleted, or no
// longer reserved for any pod), which happens when pods went away while no
// driver ran. It retries until the API answers; without an answer nothing is
// removed.
func (p *Executor) collectGarbage(ctx context.Context) {
	logger := klog.FromContext(ctx)
	_ = wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: time.Second, Factor: 2, Cap: time.Minute, Steps: 1 << 30},
		func(ctx context.Context) (bool, error) {
			if err := p.CollectGone(ctx); err != nil {
				logger.Info("Cannot check prepared claims against the API yet; keeping them", "err", err)
				return false, nil
			}
			return true, nil
		})
}

// CollectGone unprepares, once, the claims the API says are gone; an API
// that does not answer is an error, and nothing is removed.
func (p *Executor) CollectGone(ctx context.Context) error {
	cp, unlock, err := p.lockState(ctx)
	if err != nil {
		return err
	}
	unlock() // the API is asked without holding up prepares
	gone, named, err := p.goneClaims(ctx, cp)
	if err != nil || (len(gone) == 0 && len(named) == 0) {
		return err
	}
	if cp, unlock, err = p.lockState(ctx); err != nil {
		return err
	}
	defer unlock()
	for uid, ref := range named {
		if e, ok := cp.Claims[uid]; ok {
			e.Namespace, e.Name = ref.Namespace, ref.Name
			cp.Claims[uid] = e
		}
	}
	for uid := range gone {
		e, ok := cp.Claims[uid]
		if !ok || e.State != checkpoint.StatePrepared {
			continue
		}
		klog.FromContext(ctx).Info("Unpreparing a claim that is gone", "claim", klog.KRef(e.Namespace, e.Name), "uid", uid, "rebuilt", e.Rebuilt)
		if err := p.rollback(ctx, e); err != nil {
			p.logRollback(ctx, e, err)
			continue
		}
		delete(cp.Claims, uid)
	}
	return p.state.Save(cp)
}

// goneClaims asks the API about each prepared claim. It returns the UIDs of
// claims that are gone and the names of rebuilt entries it found. Any error
// means no verdict at all.
func (p *Executor) goneClaims(ctx context.Context, cp checkpoint.Data) (gone map[string]bool, named map[string]metav1.ObjectMeta, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	gone, named = map[string]bool{}, map[string]metav1.ObjectMeta{}
	var all map[string]*resourceapi.ResourceClaim // by UID, listed once if needed
	for uid, e := range cp.Claims {
		var c *resourceapi.ResourceClaim
		if e.Name == "" {
			if all == nil {
				if all, err = p.listClaims(ctx); err != nil {
					return nil, nil, err
				}
			}
			if c = all[uid]; c != nil {
				named[uid] = c.ObjectMeta
			}
		} else {
			c, err = p.lookups.client.ResourceV1().ResourceClaims(e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				c, err = nil, nil
			}
			if err != nil {
				return nil, nil, err
			}
		}
		if c == nil || string(c.UID) != uid || len(c.Status.ReservedFor) == 0 {
			gone[uid] = true
		}
	}
	return gone, named, nil
}

func (p *Executor) listClaims(ctx context.Context) (map[string]*resourceapi.ResourceClaim, error) {
	list, err := p.lookups.client.ResourceV1().ResourceClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*resourceapi.ResourceClaim, len(list.Items))
	for i := range list.Items {
		out[string(list.Items[i].UID)] = &list.Items[i]
	}
	return out, nil
}
