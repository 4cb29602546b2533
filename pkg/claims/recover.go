package claims

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/klog/v2"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// Recover runs at start-up, under the node lock, and needs no API: it sets
// an unreadable checkpoint aside, rolls back claims a crash left
// half-prepared, and adopts CDI specs of this driver that no entry owns (the
// checkpoint was lost or deleted), so that they are cleaned up only once the
// API says their claims are gone.
func (p *Executor) Recover(ctx context.Context) error {
	unlock, err := p.state.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cp, err := p.state.Load(ctx)
	if errors.Is(err, checkpoint.ErrUnreadable) {
		cp, err = p.state.SetAside(ctx, err)
	}
	if err != nil {
		return err
	}
	for uid, e := range cp.Claims {
		if e.State == checkpoint.StatePrepared {
			continue
		}
		klog.FromContext(ctx).Info("Rolling back a claim a crash left half-prepared", "claim", klog.KRef(e.Namespace, e.Name))
		if err := p.rollback(ctx, e); err != nil {
			p.logRollback(ctx, e, err)
			continue
		}
		delete(cp.Claims, uid)
	}
	p.sweepTemps(ctx, time.Now())
	p.adoptSpecs(ctx, &cp)
	if err := p.podnet.Repair(ctx, cp); err != nil {
		klog.FromContext(ctx).Error(err, "Repairing netdevs of sandboxes that are gone")
	}
	return p.state.Save(cp)
}

// staleTempAge is how old a temporary file in the CDI directory must be
// before recovery removes it while another instance may run (a rolling
// update): a write takes milliseconds.
const staleTempAge = time.Minute

// sweepTemps removes the temporary files of this driver's writes that a
// killed process left in the CDI directory: its own specs' and the kubelet
// plugin helper's device metadata files'. They are never renamed into
// place and nothing else removes them. An instance that runs alone (no
// --pod-uid) removes them all; beside another instance only the stale ones.
func (p *Executor) sweepTemps(ctx context.Context, now time.Time) {
	patterns := []string{
		"." + prepare.SpecFilePrefix(prepare.CDIKind(p.driverName)) + "*.tmp", // pkg/atomicfile
		"." + p.driverName + "_metadata_*.tmp",                                // the kubeletplugin helper
	}
	for _, pattern := range patterns {
		paths, _ := filepath.Glob(filepath.Join(p.cdiRoot, pattern))
		for _, path := range paths {
			if st, err := os.Stat(path); err != nil || p.shared && now.Sub(st.ModTime()) < staleTempAge {
				continue
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				klog.FromContext(ctx).Error(err, "Removing a temporary file a killed driver left", "path", path)
				continue
			}
			klog.FromContext(ctx).Info("Removed a temporary file a killed driver left", "path", path)
		}
	}
}

// adoptSpecs adds a rebuilt "prepared" entry for every CDI spec of this
// driver that no entry owns. The spec names its claim (the file name) and
// its devices; the device-info files name the devices.
func (p *Executor) adoptSpecs(ctx context.Context, cp *checkpoint.Data) {
	owned := map[string]bool{}
	for _, e := range cp.Claims {
		owned[e.CDISpec] = true
	}
	prefix := prepare.SpecFilePrefix(prepare.CDIKind(p.driverName))
	entries, _ := os.ReadDir(p.cdiRoot)
	// Recovery runs before the first rescan: the devices' PCI addresses,
	// which name their device-info files, come from a discovery of its own.
	var inv *discovery.Inventory
	for _, ent := range entries {
		name := ent.Name()
		path := filepath.Join(p.cdiRoot, name)
		uid, ok := strings.CutPrefix(strings.TrimSuffix(name, ".json"), prefix)
		if !ok || !strings.HasSuffix(name, ".json") || owned[path] {
			continue
		}
		if inv == nil {
			inv = p.inventoryNow(ctx)
		}
		e, err := p.rebuildEntry(path, uid, inv)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Cannot adopt a CDI spec no checkpoint entry owns; leaving it", "path", path)
			continue
		}
		klog.FromContext(ctx).Info("Adopted a CDI spec no checkpoint entry owned", "path", path, "claimUID", uid, "devices", len(e.Devices))
		cp.Claims[uid] = e
	}
}

// inventoryNow is the last discovery, or a new one when there is none yet;
// nil when that fails (logged).
func (p *Executor) inventoryNow(ctx context.Context) *discovery.Inventory {
	if inv, _ := p.devices.Snapshot(); inv != nil {
		return inv
	}
	inv, err := p.devices.Rediscover(ctx)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Discovery for adopting CDI specs failed; their device-info files stay until the start-up sweep")
	}
	return inv
}

func (p *Executor) rebuildEntry(specPath, uid string, inv *discovery.Inventory) (checkpoint.Claim, error) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return checkpoint.Claim{}, err
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return checkpoint.Claim{}, err
	}
	e := checkpoint.Claim{State: checkpoint.StatePrepared, CDISpec: specPath, Rebuilt: true}
	for _, d := range spec.Devices {
		dev := checkpoint.Device{Name: strings.TrimPrefix(d.Name, uid+"-"), CDIDeviceIDs: []string{spec.Kind + "=" + d.Name}}
		if inv != nil {
			if found, ok := inv.Get(dev.Name); ok {
				dev.PCIAddress = found.PCIAddress
			}
		}
		if dev.PCIAddress != "" {
			infos, _ := filepath.Glob(filepath.Join(p.devInfoDir, "*-"+dev.PCIAddress+"-device.json"))
			e.InfoFiles = append(e.InfoFiles, infos...)
		}
		e.Devices = append(e.Devices, dev)
	}
	return e, nil
}
