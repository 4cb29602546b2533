package podnet

// The way back from a pod: a sandbox stopped, sandboxes gone while the
// driver was away, and the repair of half-done attachments.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/nriplugin"
)

// SandboxStopped puts back the netdevs a sandbox holds. The runtime calls it
// on stop (before the namespace goes) and again on removal: the second time
// finds nothing to do.
func (p *PodNet) SandboxStopped(ctx context.Context, sb nriplugin.Sandbox) error {
	held := func(at *checkpoint.InPod) bool { return at.SandboxID == sb.ID }
	if !p.mayHave(func(cp checkpoint.Data) bool { return len(inPod(cp, held)) > 0 }) {
		return nil
	}
	return p.detachWhere(ctx, held)
}

// mayHave reads the checkpoint without the lock and reports whether want
// holds; an unreadable one may hold anything.
func (p *PodNet) mayHave(want func(checkpoint.Data) bool) bool {
	cp, err := p.state.Peek()
	return err != nil || want(cp)
}

// SandboxesExist repairs, when the runtime (re)connects, what sandboxes
// that are gone left behind, and what a crash in the middle of an attach
// left half done.
func (p *PodNet) SandboxesExist(ctx context.Context, all []nriplugin.Sandbox) {
	listed := make(map[string]bool, len(all))
	for _, sb := range all {
		listed[sb.ID] = true
	}
	ctx = repairing(ctx)
	if err := p.detachWhere(ctx, gone(listed)); err != nil {
		klog.FromContext(ctx).Error(err, "Repairing netdevs of sandboxes that are gone")
	}
}

// Repair puts back, at start-up (under the lock, in cp), the netdevs of
// sandboxes that went while no driver ran and of attachments a crash left
// half done.
func (p *PodNet) Repair(ctx context.Context, cp checkpoint.Data) error {
	_, err := p.detachIn(repairing(ctx), cp, gone(nil))
	return err
}

// repairing marks what is put back for sandboxes that went while the
// driver did not hear of it, in the log ("Netdev back on the host" with
// repair="sandbox gone").
func repairing(ctx context.Context) context.Context {
	return klog.NewContext(ctx, klog.FromContext(ctx).WithValues("repair", "sandbox gone"))
}

// gone matches the records of sandboxes that are gone: stopped while the
// driver was down (their network namespace is removed at stop, though the
// runtime lists a stopped sandbox until it is removed), not listed by the
// runtime (listed nil: not known), or left half attached by a crash.
func gone(listed map[string]bool) func(*checkpoint.InPod) bool {
	return func(at *checkpoint.InPod) bool {
		return at.State != checkpoint.InPodAttached || namespaceGone(at.NetNS) || (listed != nil && !listed[at.SandboxID])
	}
}

// detachWhere puts back every netdev whose record matches.
func (p *PodNet) detachWhere(ctx context.Context, match func(*checkpoint.InPod) bool) error {
	cp, unlock, err := p.state.Open(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	done, err := p.detachIn(ctx, cp, match)
	if len(done) == 0 {
		return err
	}
	return errors.Join(err, p.state.Save(cp))
}

// detachIn puts back, in cp, every netdev whose record matches, and asks
// for the status of their claims; it returns those it tried. Call it with
// the lock held.
func (p *PodNet) detachIn(ctx context.Context, cp checkpoint.Data, match func(*checkpoint.InPod) bool) ([]podDevice, error) {
	done := inPod(cp, match)
	var errs []error
	for _, pd := range done {
		d := &cp.Claims[pd.claim].Devices[pd.index]
		if err := p.Detach(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.Name, err))
		}
	}
	p.setStatuses(cp, done)
	return done, errors.Join(errs...)
}

// inPod locates the records of netdevs in pods that match.
func inPod(cp checkpoint.Data, match func(*checkpoint.InPod) bool) []podDevice {
	var out []podDevice
	for uid, c := range cp.Claims {
		for i := range c.Devices {
			if at := c.Devices[i].InPod; at != nil && match(at) {
				out = append(out, podDevice{claim: uid, index: i})
			}
		}
	}
	return out
}

// Detach moves a device's netdev back to the host as it was and puts
// back its VF settings; the record is dropped once both are done. A netdev
// that is gone (destroyed with its namespace) leaves only the VF settings
// to put back.
func (p *PodNet) Detach(ctx context.Context, d *checkpoint.Device) error {
	at := d.InPod
	// The PF first: a VF driver that defers to it takes the original MAC
	// back from it.
	errs := []error{p.restoreVF(at)}
	err := p.host.MoveLinkToHost(at.NetNS, at.IfName, hostLink(at.Host))
	switch {
	case errors.Is(err, host.ErrLinkGone):
		klog.FromContext(ctx).Info("Netdev is gone; nothing to move back", "device", d.Name, "netdev", at.Host.Name, "pod", at.Pod)
	case err != nil:
		errs = append(errs, fmt.Errorf("move %s back from pod %s: %w", at.Host.Name, at.Pod, err))
	}
	if err := errors.Join(errs...); err != nil {
		p.metrics.NetdevMoves.WithLabelValues("host", "error").Inc()
		return err
	}
	p.metrics.NetdevMoves.WithLabelValues("host", "ok").Inc()
	klog.FromContext(ctx).Info("Netdev back on the host", "device", d.Name, "netdev", at.Host.Name, "pod", at.Pod)
	d.InPod = nil
	return nil
}

// namespaceGone reports whether a sandbox's network namespace was removed:
// its file is gone from a directory this process sees. A directory it does
// not see (the runtime's netns directory not mounted into the driver's
// container) says nothing, and a live pod's netdev is not taken from it.
func namespaceGone(path string) bool {
	if _, err := os.Stat(path); err == nil {
		return false
	}
	_, err := os.Stat(filepath.Dir(path))
	return err == nil
}

// setStatuses asks for the status of the claims of devs to be rewritten.
func (p *PodNet) setStatuses(cp checkpoint.Data, devs []podDevice) {
	seen := map[string]bool{}
	for _, pd := range devs {
		if seen[pd.claim] {
			continue
		}
		seen[pd.claim] = true
		if e, ok := cp.Claims[pd.claim]; ok && e.State == checkpoint.StatePrepared {
			p.status.set(types.UID(pd.claim), statusOf(p.driverName, e))
		}
	}
}
