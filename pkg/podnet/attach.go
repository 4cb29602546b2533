package podnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"k8s.io/klog/v2"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/nriplugin"
)

// SandboxCreated moves the pod's netdevs (devices whose config has a
// network section) into its sandbox's network namespace. A failure leaves
// every one of them on the host and fails the sandbox.
func (p *PodNet) SandboxCreated(ctx context.Context, sb nriplugin.Sandbox) error {
	// Every pod of the node comes here: most have nothing to move, and
	// need not wait for the node lock to learn it (their claims, if any,
	// were prepared before the sandbox was asked for).
	if !p.mayHave(func(cp checkpoint.Data) bool { return len(podDevices(cp, sb.PodUID)) > 0 }) {
		return nil
	}
	cp, unlock, err := p.state.Open(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	devs := podDevices(cp, sb.PodUID)
	if len(devs) == 0 {
		return nil
	}
	if sb.NetNS == "" {
		return fmt.Errorf("pod %s/%s uses the host's network; its claims' netdevs cannot be moved into it", sb.Namespace, sb.Name)
	}
	names, err := interfaceNames(cp, devs)
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	var todo []podDevice
	for _, pd := range devs {
		d := &cp.Claims[pd.claim].Devices[pd.index]
		if at := d.InPod; at != nil {
			switch {
			case at.SandboxID == sb.ID && at.State == checkpoint.InPodAttached:
				continue // told twice
			case at.PodUID != sb.PodUID:
				return fmt.Errorf("device %s: its netdev is in pod %s; a netdev can be in one pod only", d.Name, at.Pod)
			}
			// An earlier sandbox of this pod kept it: take it back first.
			if err := p.Detach(ctx, d); err != nil {
				return fmt.Errorf("device %s: taking its netdev back from the pod's earlier sandbox: %w", d.Name, err)
			}
		}
		todo = append(todo, pd)
	}
	// Intent first, with everything needed to undo it.
	for _, pd := range todo {
		d := &cp.Claims[pd.claim].Devices[pd.index]
		at, err := p.intent(d, sb, names[pd])
		if err != nil {
			return p.abandon(ctx, cp, todo, 0, fmt.Errorf("device %s: %w", d.Name, err))
		}
		d.InPod = at
	}
	if err := p.state.Save(cp); err != nil {
		return err
	}
	for i, pd := range todo {
		d := &cp.Claims[pd.claim].Devices[pd.index]
		if err := p.attach(d); err != nil {
			p.metrics.NetdevMoves.WithLabelValues("pod", "error").Inc()
			return p.abandon(ctx, cp, todo, i+1, fmt.Errorf("device %s (%s): %w", d.Name, d.InPod.Host.Name, err))
		}
		p.metrics.NetdevMoves.WithLabelValues("pod", "ok").Inc()
		klog.FromContext(ctx).Info("Moved netdev into pod", "device", d.Name, "netdev", d.InPod.Host.Name, "as", d.InPod.IfName,
			"pod", klog.KRef(sb.Namespace, sb.Name), "addresses", d.InPod.IPs)
	}
	if err := p.state.Save(cp); err != nil {
		return err
	}
	p.setStatuses(cp, todo)
	return nil
}

// intent reads what attaching will change, so that it can be put back.
func (p *PodNet) intent(d *checkpoint.Device, sb nriplugin.Sandbox, ifName string) (*checkpoint.InPod, error) {
	dev, ok := p.devices.Device(d.Name)
	if !ok {
		return nil, errors.New("not on the host any more")
	}
	if dev.IfName == "" {
		return nil, fmt.Errorf("has no netdev on the host (driver %q)", dev.Driver)
	}
	at := &checkpoint.InPod{State: checkpoint.InPodAttaching, PodUID: sb.PodUID, Pod: sb.Namespace + "/" + sb.Name,
		SandboxID: sb.ID, NetNS: sb.NetNS, IfName: ifName}
	link, err := p.host.HostLink(dev.IfName)
	if err != nil {
		return nil, fmt.Errorf("read netdev: %w", err)
	}
	at.Host = linkRecord(link)
	if c := vfConfig(d.Network); !c.Empty() {
		orig, err := p.host.VF(dev.PFName, dev.VFIndex)
		if err != nil {
			return nil, fmt.Errorf("read VF %d on %s: %w", dev.VFIndex, dev.PFName, err)
		}
		restore := vfRecord(orig.Restore(c))
		at.PF, at.VFIndex, at.VFRestore = dev.PFName, dev.VFIndex, &restore
	}
	return at, nil
}

// attach sets the VF up on its PF, then moves and configures its netdev.
func (p *PodNet) attach(d *checkpoint.Device) error {
	at, n := d.InPod, d.Network
	if at.VFRestore != nil {
		if err := p.host.SetVF(at.PF, at.VFIndex, vfConfig(n)); err != nil {
			return err
		}
	}
	link, err := podLink(n, at)
	if err != nil {
		return err
	}
	if _, err := p.host.MoveLinkToPod(at.Host.Name, link); err != nil {
		if at.VFRestore == nil {
			return err
		}
		// The move put the netdev back, but a VF driver that defers to
		// the PF kept the PF's new MAC: the PF first, then the netdev
		// again (abandon puts the PF back once more; that is harmless).
		return errors.Join(err, p.restoreVF(at), p.host.MoveLinkToHost(at.NetNS, at.IfName, hostLink(at.Host)))
	}
	// In the pod from here on: a failure below takes it back out.
	at.State = checkpoint.InPodAttached
	at.MAC, at.IPs, err = p.host.PodLinkAddrs(at.NetNS, at.IfName)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	return nil
}

// abandon undoes the attachments of a failed sandbox and records that;
// it returns cause. The first tried of devs were attached or tried: a
// netdev whose move failed was put back by the move, and has only its VF
// settings to put back; the others were not touched (restoring a VF's MAC
// on the PF is not harmless: igb then pins it).
func (p *PodNet) abandon(ctx context.Context, cp checkpoint.Data, devs []podDevice, tried int, cause error) error {
	for i, pd := range devs {
		d := &cp.Claims[pd.claim].Devices[pd.index]
		switch {
		case d.InPod == nil:
		case i >= tried:
			d.InPod = nil
		case d.InPod.State == checkpoint.InPodAttached:
			if err := p.Detach(ctx, d); err != nil {
				klog.FromContext(ctx).Error(err, "Putting a netdev back after a failed sandbox", "device", d.Name)
			}
		default:
			if err := p.restoreVF(d.InPod); err != nil {
				klog.FromContext(ctx).Error(err, "Putting VF settings back after a failed sandbox", "device", d.Name)
				continue
			}
			d.InPod = nil
		}
	}
	if err := p.state.Save(cp); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// restoreVF puts back the VF settings an attachment changed on the PF.
func (p *PodNet) restoreVF(at *checkpoint.InPod) error {
	if at.VFRestore == nil {
		return nil
	}
	return p.RestoreVF(&checkpoint.VFSet{PF: at.PF, VFIndex: at.VFIndex, Restore: *at.VFRestore})
}

// podDevices are the prepared devices with a network section of the
// claims reserved for the pod, in a stable order: by claim, then as
// allocated.
func podDevices(cp checkpoint.Data, podUID string) []podDevice {
	var out []podDevice
	for uid, c := range cp.Claims {
		if c.State != checkpoint.StatePrepared || !slices.Contains(c.Pods, podUID) {
			continue
		}
		for i, d := range c.Devices {
			if d.Network != nil {
				out = append(out, podDevice{claim: uid, index: i})
			}
		}
	}
	slices.SortFunc(out, func(a, b podDevice) int {
		ca, cb := cp.Claims[a.claim], cp.Claims[b.claim]
		return cmp.Or(cmp.Compare(ca.Namespace+"/"+ca.Name, cb.Namespace+"/"+cb.Name), cmp.Compare(a.index, b.index))
	})
	return out
}

// interfaceNames names each device's netdev in the pod: the configured
// name, else the first free of net1, net2, ...
func interfaceNames(cp checkpoint.Data, devs []podDevice) (map[podDevice]string, error) {
	names := make(map[podDevice]string, len(devs))
	owner := map[string]string{}
	for _, pd := range devs {
		d := cp.Claims[pd.claim].Devices[pd.index]
		if n := d.Network.InterfaceName; n != "" {
			if other, taken := owner[n]; taken {
				return nil, fmt.Errorf("devices %s and %s both ask for interface name %q", other, d.Name, n)
			}
			owner[n], names[pd] = d.Name, n
		}
	}
	next := 1
	for _, pd := range devs {
		if _, named := names[pd]; named {
			continue
		}
		for ; owner["net"+strconv.Itoa(next)] != ""; next++ {
		}
		n := "net" + strconv.Itoa(next)
		owner[n], names[pd] = cp.Claims[pd.claim].Devices[pd.index].Name, n
	}
	return names, nil
}

// vfConfig is what a network section sets on the VF through its PF.
func vfConfig(n *netconfig.Network) host.VFConfig {
	var c host.VFConfig
	if n == nil {
		return c
	}
	if mac := n.NormalizedMAC(); mac != "" {
		c.MAC = &mac
	}
	c.VLAN, c.QoS, c.Trust, c.SpoofChk = n.VLAN, n.VLANQoS, n.Trust, n.SpoofChk
	if c.QoS != nil && c.VLAN == nil {
		c.QoS = nil
	}
	c.MinTxRate, c.MaxTxRate = n.MinTxRate, n.MaxTxRate
	if n.LinkState != "" {
		ls := n.LinkState
		c.LinkState = &ls
	}
	return c
}

// podLink is how the netdev is set up in the pod.
func podLink(n *netconfig.Network, at *checkpoint.InPod) (host.PodLink, error) {
	l := host.PodLink{NetNS: at.NetNS, Name: at.IfName, MAC: n.NormalizedMAC(), MACOnPF: at.VFRestore != nil && at.VFRestore.MAC != nil}
	if n.MTU != nil {
		l.MTU = *n.MTU
	}
	for _, a := range n.Addresses {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			return l, fmt.Errorf("network.addresses: %w", err)
		}
		l.Addresses = append(l.Addresses, pfx)
	}
	for _, r := range n.Routes {
		dst, err := netip.ParsePrefix(r.Destination)
		if err != nil {
			return l, fmt.Errorf("network.routes: %w", err)
		}
		rt := host.PodRoute{Destination: dst.Masked()}
		if r.Gateway != "" {
			if rt.Gateway, err = netip.ParseAddr(r.Gateway); err != nil {
				return l, fmt.Errorf("network.routes: %w", err)
			}
		}
		l.Routes = append(l.Routes, rt)
	}
	return l, nil
}

// The checkpoint keeps its own records of host state (its format must not
// follow pkg/host's types); these convert both ways.

func linkRecord(l host.LinkState) checkpoint.Link {
	return checkpoint.Link{Index: l.Index, Name: l.Name, MAC: l.MAC, MTU: l.MTU, Up: l.Up}
}

func hostLink(l checkpoint.Link) host.LinkState {
	return host.LinkState{Index: l.Index, Name: l.Name, MAC: l.MAC, MTU: l.MTU, Up: l.Up}
}

func vfRecord(c host.VFConfig) checkpoint.VFSettings {
	return checkpoint.VFSettings{MAC: c.MAC, VLAN: c.VLAN, QoS: c.QoS, Trust: c.Trust, SpoofChk: c.SpoofChk,
		MinTxRate: c.MinTxRate, MaxTxRate: c.MaxTxRate, LinkState: c.LinkState}
}

func hostVF(c checkpoint.VFSettings) host.VFConfig {
	return host.VFConfig{MAC: c.MAC, VLAN: c.VLAN, QoS: c.QoS, Trust: c.Trust, SpoofChk: c.SpoofChk,
		MinTxRate: c.MinTxRate, MaxTxRate: c.MaxTxRate, LinkState: c.LinkState}
}
