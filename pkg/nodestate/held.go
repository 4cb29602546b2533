package nodestate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// Check reads the checkpoint once per rescan, on the inventory just
// discovered: a file that became unreadable is noticed then, not at the
// next prepare; prepared devices gone from the host are warned about; and
// it returns the devices the claims hold, for the pools. Read without the
// lock: an entry is written before its device is rebound, so a rescan that
// sees the new driver sees the entry too. Call it from one goroutine.
func (s *Store) Check(ctx context.Context, inv *discovery.Inventory) (map[string]selector.Allocated, error) {
	cp, err := s.Peek()
	switch {
	case errors.Is(err, checkpoint.ErrUnreadable):
		return nil, s.markUnreadable(ctx, err)
	case err != nil:
		klog.FromContext(ctx).Error(err, "Reading the checkpoint at a rescan")
		return nil, err
	}
	s.warnVanished(ctx, cp, inv)
	return Held(cp), nil
}

// warnVanished warns, once per device, about a prepared device that is no
// longer on the host (its VFs were removed, its NIC unplugged): its pod
// runs on without it. Unprepare will still succeed.
func (s *Store) warnVanished(ctx context.Context, cp checkpoint.Data, inv *discovery.Inventory) {
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
			if s.vanished[d.Name] {
				continue
			}
			msg := fmt.Sprintf("device %s, prepared for claim %s/%s, is gone from the host; its pod runs without it", d.Name, e.Namespace, e.Name)
			klog.FromContext(ctx).Info("Warning: "+msg, "device", d.Name, "claim", klog.KRef(e.Namespace, e.Name))
			s.warnf(ctx, "PreparedDeviceGone", msg)
		}
	}
	s.vanished = gone
}

// Held are the devices the prepared (and preparing) claims of d hold, with
// the classic pool each was in when prepared.
func Held(d checkpoint.Data) map[string]selector.Allocated {
	out := map[string]selector.Allocated{}
	for _, c := range d.Claims {
		for _, dev := range c.Devices {
			a := selector.Allocated{PoolKnown: dev.ClassicPool != nil}
			if a.PoolKnown {
				a.Pool = *dev.ClassicPool
			}
			out[dev.Name] = a
		}
	}
	return out
}

// PreparedDevices are the names of the devices prepared claims hold,
// sorted, read without the lock; nil when the checkpoint cannot be read.
func (s *Store) PreparedDevices() []string {
	cp, err := s.Peek()
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range cp.Claims {
		for _, d := range e.Devices {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
