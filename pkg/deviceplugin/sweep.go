package deviceplugin

import (
	"context"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// SweepDevInfo runs once at start-up, after recovery and the first
// discovery, before any prepare or allocation is served; owned are the
// files prepared claims own (the checkpoint's), shim the shim (nil: none). Every device-info
// file about a device of this node must have an owner: a prepared claim
// (the checkpoint), or the legacy shim while a pod holds its device (the
// shim adopts the files of its pools' devices and lets them go with their
// pods). The rest were left by a crash, an older release or a lost
// checkpoint, and are removed. A file about a device this node does not
// have is another plugin's business and stays.
func SweepDevInfo(ctx context.Context, dir string, owned map[string]bool, inv *discovery.Inventory, pools *selector.Result, shim *Manager) (removed int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			klog.FromContext(ctx).Error(err, "Reading the device-info directory for the start-up sweep", "dir", dir)
		}
		return 0
	}
	byID := map[string]*discovery.Device{}
	for d := range inv.All() {
		byID[d.ID()] = d
	}
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		id, ok := DeviceInfoID(ent.Name())
		dev, ours := byID[id]
		if !ok || !ours || owned[path] {
			continue
		}
		if pools != nil {
			if pool, inPool := pools.PoolFor(dev.Name); inPool && shim.Serves(pool.Name()) {
				shim.AdoptFile(path, id)
				continue
			}
		}
		if err := nodefiles.Remove(path); err != nil {
			klog.FromContext(ctx).Error(err, "Removing a device-info file no claim owns", "path", path)
			continue
		}
		klog.FromContext(ctx).Info("Removed a device-info file no claim or pod owns", "path", path, "device", dev.Name)
		removed++
	}
	return removed
}
