package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	metadatav1beta1 "k8s.io/dynamic-resource-allocation/api/metadata/v1beta1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// Prepare prepares claims (the kubelet's NodePrepareResources). The API is
// read first, outside the node lock; under it: record intent, bind, write
// the files, record the result.
func (p *Executor) Prepare(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	start := time.Now()
	out, err := p.prepare(ctx, claims)
	callDone(ctx, "Prepare", len(claims), start, p.metrics.PrepareDuration, p.metrics.PrepareErrors, err)
	klog.FromContext(ctx).V(2).Info("Prepare done", "claims", len(claims), "duration", time.Since(start))
	return out, err
}

func (p *Executor) prepare(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	in := prepare.Input{DriverName: p.driverName, PoolName: p.nodeName, PodNetwork: p.podnet.Enabled(), AllowedDrivers: p.allowedDrivers,
		Classes: p.lookups.deviceClasses(ctx, prepare.ClassNames(claims)), Pods: p.lookups.claimPods(ctx, claims)}
	cp, unlock, err := p.lockState(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, c := range claims {
		entry, ok := cp.Claims[string(c.UID)]
		if ok && entry.State == checkpoint.StatePrepared {
			out[c.UID] = resultFor(entry, c, p.storedMetadata)
			p.podnet.ReportStatus(c, entry)
			continue
		}
		if ok {
			// A crash left it half-prepared: undo, then prepare again.
			p.logRollback(ctx, entry, p.rollback(ctx, entry))
			delete(cp.Claims, string(c.UID))
		}
		in.Claims = append(in.Claims, c)
	}
	if len(in.Claims) == 0 {
		return out, nil
	}
	plans, err := p.resolve(ctx, in)
	if err != nil {
		return nil, failed(metrics.ReasonDiscovery, err)
	}
	logGrants(ctx, plans)
	// Record intent, the drivers and VF settings to restore, before
	// touching anything.
	for i := range plans {
		if plans[i].Err != nil {
			continue
		}
		if e, err := p.entryFor(&plans[i]); err != nil {
			plans[i].Err = err
		} else {
			cp.Claims[plans[i].ID] = e
		}
	}
	if err := p.state.Save(cp); err != nil {
		return nil, failed(metrics.ReasonCheckpoint, err)
	}
	inv, err := p.bind(ctx, plans)
	if err != nil {
		return nil, failed(metrics.ReasonBind, err)
	}
	p.setVFs(plans, cp)
	for i, r := range prepare.Render(p.driverName, plans, inv, p.host) {
		entry := cp.Claims[r.ID]
		if r.Err == nil {
			r.Err = p.writeFiles(&r, &entry)
		}
		claim := plans[i].Claim
		if r.Err != nil {
			klog.FromContext(ctx).Error(r.Err, "Prepare failed", "claim", klog.KObj(claim))
			p.metrics.PrepareErrors.WithLabelValues(metrics.ReasonClaim).Inc()
			if _, recorded := cp.Claims[r.ID]; recorded {
				p.logRollback(ctx, entry, p.rollback(ctx, entry))
				delete(cp.Claims, r.ID)
			}
			out[claim.UID] = kubeletplugin.PrepareResult{Err: r.Err}
			continue
		}
		entry.State = checkpoint.StatePrepared
		cp.Claims[r.ID] = entry
		out[claim.UID] = resultFor(entry, claim, p.storedMetadata)
	}
	if err := p.state.Save(cp); err != nil {
		return nil, failed(metrics.ReasonCheckpoint, err)
	}
	for uid, res := range out {
		if res.Err == nil {
			p.podnet.SetStatus(uid, cp.Claims[string(uid)])
		}
	}
	return out, nil
}

// resolve plans the claims on the last discovered devices, and once more on
// a fresh discovery when a claim names a device the last one did not see.
func (p *Executor) resolve(ctx context.Context, in prepare.Input) ([]prepare.ClaimPlan, error) {
	// Read now: which NIC carries the node's traffic must not be a rescan old.
	uplinks, err := discovery.FindUplinks(ctx, p.host)
	if err != nil {
		uplinks.Unresolved = append(uplinks.Unresolved, "(route table unreadable)")
	}
	in.Uplinks = uplinks
	in.Inventory, in.Pools = p.devices.Snapshot()
	if in.Inventory == nil {
		if in.Inventory, err = p.devices.Rediscover(ctx); err != nil {
			return nil, err
		}
	}
	plans := prepare.Resolve(in)
	for _, pl := range plans {
		if errors.Is(pl.Err, prepare.ErrUnknownDevice) {
			if in.Inventory, err = p.devices.Rediscover(ctx); err != nil {
				return nil, err
			}
			plans = prepare.Resolve(in)
			break
		}
	}
	p.needRuntime(plans)
	return plans, nil
}

// logGrants says which class-only fields claims set because their class
// grants them: a tenant reconfiguring the node is worth a line at V(0).
func logGrants(ctx context.Context, plans []prepare.ClaimPlan) {
	for _, pl := range plans {
		for _, d := range pl.Devices {
			if pl.Err == nil && len(d.Granted) > 0 {
				klog.FromContext(ctx).Info("Claim sets fields its DeviceClass grants it", "claim", klog.KObj(pl.Claim),
					"request", d.Request, "device", d.Device.Name, "fields", d.Granted)
			}
		}
	}
}

// needRuntime fails the plans that move a netdev into a pod while the
// runtime's NRI is not connected: the sandbox would start without it. The
// kubelet retries the prepare.
func (p *Executor) needRuntime(plans []prepare.ClaimPlan) {
	if !p.podnet.Enabled() || p.podnet.Connected() {
		return
	}
	for i := range plans {
		for _, d := range plans[i].Devices {
			if d.Options.Network != nil && plans[i].Err == nil {
				plans[i].Err = fmt.Errorf("device %s: its netdev goes into the pod, and the container runtime's NRI is not connected (is NRI enabled in containerd?)", d.Device.Name)
			}
		}
	}
}

// bind rebinds devices as the plans ask, and returns the inventory the
// edits are computed from: a fresh one when anything was rebound, since a
// rebound device's netdev and vfio group changed.
func (p *Executor) bind(ctx context.Context, plans []prepare.ClaimPlan) (*discovery.Inventory, error) {
	rebound := false
	for i := range plans {
		for _, d := range plans[i].Devices {
			driver, ok := d.Rebind()
			if !ok || plans[i].Err != nil {
				continue
			}
			if _, err := p.host.BindDriver(d.Device.PCIAddress, driver); err != nil {
				plans[i].Err = fmt.Errorf("bind %s to %s: %w", d.Device.Name, driver, err)
				continue
			}
			klog.FromContext(ctx).Info("Rebound device for claim", "device", d.Device.Name, "from", d.Device.Driver, "to", driver, "claim", klog.KObj(plans[i].Claim))
			p.metrics.Rebinds.Inc()
			rebound = true
		}
	}
	if !rebound {
		inv, _ := p.devices.Snapshot()
		return inv, nil
	}
	return p.devices.Rediscover(ctx)
}

// setVFs sets the VF settings of devices without a netdev (recorded by
// entryFor) through their PFs; a PF that refuses fails the claim, and the
// devices after it are not touched, nor put back (restoring a MAC that was
// never changed is not harmless: igb then pins it).
func (p *Executor) setVFs(plans []prepare.ClaimPlan, cp checkpoint.Data) {
	for i := range plans {
		pl := &plans[i]
		if pl.Err != nil {
			continue
		}
		devs := cp.Claims[pl.ID].Devices
		for j, d := range pl.Devices {
			if devs[j].VFSet == nil {
				continue
			}
			if pl.Err != nil {
				devs[j].VFSet = nil
				continue
			}
			if err := p.podnet.SetVF(devs[j].VFSet, d.Options.Network); err != nil {
				pl.Err = fmt.Errorf("device %s: %w", d.Device.Name, err)
			}
		}
	}
}

// entryFor is a claim's "preparing" checkpoint entry, with the VF settings
// to put back read from the PFs; one that cannot be read fails the claim.
func (p *Executor) entryFor(pl *prepare.ClaimPlan) (checkpoint.Claim, error) {
	e := checkpoint.Claim{Namespace: pl.Claim.Namespace, Name: pl.Claim.Name, State: checkpoint.StatePreparing,
		CDISpec: filepath.Join(p.cdiRoot, prepare.SpecFileName(prepare.CDIKind(p.driverName), pl.ID))}
	for _, d := range pl.Devices {
		cd := checkpoint.Device{Request: d.Request, Pool: d.Pool, Name: d.Device.Name, PCIAddress: d.Device.PCIAddress,
			ClassicPool: &d.ClassicPool}
		if driver, ok := d.Rebind(); ok {
			cd.OriginalDriver, cd.BoundDriver = d.Device.Driver, driver
		}
		if d.SettingsAtPrepare() {
			// No netdev to move: its VF settings are set now.
			set, err := p.podnet.ReadVF(d.Device, d.Options.Network)
			if err != nil {
				return checkpoint.Claim{}, err
			}
			cd.VFSet = set
		} else {
			cd.Network = d.Options.Network // its netdev goes into the pod
		}
		e.Devices = append(e.Devices, cd)
	}
	for _, r := range pl.Claim.Status.ReservedFor {
		if r.Resource == "pods" && r.APIGroup == "" {
			e.Pods = append(e.Pods, string(r.UID))
		}
	}
	return e, nil
}

// writeFiles writes a rendered claim's CDI spec and device-info files and
// records them, its CDI devices and its netdevs in the entry.
func (p *Executor) writeFiles(r *prepare.Rendered, e *checkpoint.Claim) error {
	for i := range r.Devices {
		e.Devices[i].CDIDeviceIDs = []string{r.CDIDeviceID(p.driverName, &r.Devices[i])}
		e.Devices[i].Metadata = r.Devices[i].Metadata()
	}
	if err := nodefiles.WriteSpec(filepath.Join(p.cdiRoot, r.SpecFile), r.Spec); err != nil {
		return err
	}
	for _, f := range r.InfoFiles {
		path := filepath.Join(p.devInfoDir, f.Name)
		if err := nodefiles.WriteFile(path, f.Data); err != nil {
			return fmt.Errorf("device-info file: %w", err)
		}
		e.InfoFiles = append(e.InfoFiles, path)
	}
	for _, st := range r.Status {
		for i := range e.Devices {
			if e.Devices[i].Name == st.Device {
				e.Devices[i].InterfaceName, e.Devices[i].HardwareAddress = st.NetworkData.InterfaceName, st.NetworkData.HardwareAddress
			}
		}
	}
	return nil
}

// resultFor is what the kubelet gets for a prepared claim: one CDI device
// per allocated device. An entry rebuilt from files lacks request and pool
// names, which the claim's allocation has. An entry read back from the
// checkpoint lacks the devices' metadata, which stored reads back from the
// file the helper wrote for them (the helper rewrites that file from what it
// gets, and a running container reads it).
func resultFor(e checkpoint.Claim, c *resourceapi.ResourceClaim,
	stored func(c *resourceapi.ResourceClaim, request, device string) map[string]resourceapi.DeviceAttribute) kubeletplugin.PrepareResult {
	allocated := map[string]resourceapi.DeviceRequestAllocationResult{}
	if c.Status.Allocation != nil {
		for _, r := range c.Status.Allocation.Devices.Results {
			allocated[r.Device] = r
		}
	}
	var res kubeletplugin.PrepareResult
	for _, d := range e.Devices {
		if d.Request == "" {
			d.Request, d.Pool = allocated[d.Name].Request, allocated[d.Name].Pool
		}
		dev := kubeletplugin.Device{Requests: []string{d.Request}, PoolName: d.Pool, DeviceName: d.Name, CDIDeviceIDs: d.CDIDeviceIDs}
		if d.Metadata == nil {
			d.Metadata = stored(c, d.Request, d.Name)
		}
		if d.Metadata != nil {
			dev.Metadata = &kubeletplugin.DeviceMetadata{Attributes: d.Metadata}
		}
		res.Devices = append(res.Devices, dev)
	}
	return res
}

// storedMetadata reads a device's attributes back from the metadata file
// the helper wrote for the claim's request (its layout:
// <plugin dir>/dra-device-metadata/<namespace>_<name>/<request>/metadata.json,
// a JSON stream whose first object is the newest version); nil when there
// is none.
func (p *Executor) storedMetadata(c *resourceapi.ResourceClaim, request, device string) map[string]resourceapi.DeviceAttribute {
	base, _, _ := strings.Cut(request, "/")
	f, err := os.Open(filepath.Join(p.pluginDir, "dra-device-metadata", c.Namespace+"_"+c.Name, base, "metadata.json"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var m metadatav1beta1.DeviceMetadata
	if err := json.NewDecoder(f).Decode(&m); err != nil {
		return nil
	}
	for _, r := range m.Requests {
		for _, d := range r.Devices {
			if d.Name == device && d.Attributes != nil {
				out := make(map[string]resourceapi.DeviceAttribute, len(d.Attributes))
				for k, v := range d.Attributes {
					out[string(k)] = v
				}
				return out
			}
		}
	}
	return nil
}
