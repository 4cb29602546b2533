package podnet

import (
	"errors"
	"fmt"
	"strings"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// The settings of a VF without a netdev to move (vfio-pci, uio: a DPDK pod,
// a VM) are set on its PF when the claim is prepared, and put back when it
// is unprepared: the claims executor records what ReadVF returns before it
// calls SetVF, and calls RestoreVF on rollback.

// ReadVF reads what n would change on the VF's PF and returns the record
// that puts it back; nil when n changes nothing.
func (p *PodNet) ReadVF(dev discovery.Device, n *netconfig.Network) (*checkpoint.VFSet, error) {
	c := vfConfig(n)
	if c.Empty() {
		return nil, nil
	}
	if dev.PFName == "" {
		return nil, fmt.Errorf("device %s: its PF has no netdev to hold VF settings", dev.Name)
	}
	orig, err := p.host.VF(dev.PFName, dev.VFIndex)
	if err != nil {
		return nil, fmt.Errorf("device %s: read VF %d on %s: %w", dev.Name, dev.VFIndex, dev.PFName, err)
	}
	return &checkpoint.VFSet{PF: dev.PFName, VFIndex: dev.VFIndex, Restore: vfRecord(orig.Restore(c))}, nil
}

// SetVF sets n's VF settings through the PF and reads them back: a PF
// driver that takes a setting without an error and does not apply it is
// refused as one that returns an error.
func (p *PodNet) SetVF(set *checkpoint.VFSet, n *netconfig.Network) error {
	c := vfConfig(n)
	if err := p.host.SetVF(set.PF, set.VFIndex, c); err != nil {
		return fmt.Errorf("the PF's driver refused: %w", err)
	}
	now, err := p.host.VF(set.PF, set.VFIndex)
	if err != nil {
		return fmt.Errorf("read back VF %d on %s: %w", set.VFIndex, set.PF, err)
	}
	if missing := now.Differs(c); len(missing) > 0 {
		return fmt.Errorf("PF %s did not apply to VF %d: %s", set.PF, set.VFIndex, strings.Join(missing, "; "))
	}
	return nil
}

// RestoreVF puts back what SetVF changed, and only that (see
// host.VFState.Changes). A PF that is gone (its NIC removed) has nothing
// left to put back.
func (p *PodNet) RestoreVF(set *checkpoint.VFSet) error {
	now, err := p.host.VF(set.PF, set.VFIndex)
	if err == nil {
		err = p.host.SetVF(set.PF, set.VFIndex, now.Changes(hostVF(set.Restore)))
	}
	if errors.Is(err, host.ErrLinkGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore VF %d on %s: %w", set.VFIndex, set.PF, err)
	}
	return nil
}
