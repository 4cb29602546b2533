package deviceplugin

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
)

// DefaultFileGrace is how long a device-info file the shim wrote is kept
// before its device must show up as held by a pod: the kubelet records an
// allocation only after Allocate returned.
const DefaultFileGrace = 30 * time.Second

// infoFiles are the device-info files the shim wrote, by path. The device-
// plugin API never says when a pod lets its devices go, so each file is
// owned by its device's allocation for as long as the kubelet's
// PodResources API lists the device as held (see ReleaseFiles).
type infoFiles struct {
	mu      sync.Mutex
	written map[string]infoFile
}

type infoFile struct {
	deviceID string
	at       time.Time
}

func (f *infoFiles) record(path, deviceID string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.written == nil {
		f.written = map[string]infoFile{}
	}
	f.written[path] = infoFile{deviceID: deviceID, at: at}
}

// DeviceInfoID is the device ID a device-info file's name ends with
// (<resource>-<deviceID>-device.json); device IDs (PCI addresses,
// auxiliary device names) hold no "-".
func DeviceInfoID(fileName string) (string, bool) {
	base, ok := strings.CutSuffix(fileName, "-device.json")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", false
	}
	return base[i+1:], true
}

// AdoptFile makes a device-info file found at start-up the shim's: it goes
// at the first ReleaseFiles that finds its device held by no pod.
func (m *Manager) AdoptFile(path, deviceID string) {
	m.files.record(path, deviceID, time.Time{})
}

// ReleaseFiles removes the device-info files whose devices no pod holds
// any more, by the kubelet's PodResources answer inUse (device IDs held
// under the shim's resources). A file younger than the grace is kept: its
// allocation may not be recorded yet. It returns how many went.
func (m *Manager) ReleaseFiles(ctx context.Context, inUse map[string]bool, now time.Time) int {
	if m == nil {
		return 0
	}
	m.files.mu.Lock()
	defer m.files.mu.Unlock()
	removed := 0
	for path, f := range m.files.written {
		if inUse[f.deviceID] || now.Sub(f.at) < m.cfg.FileGrace {
			continue
		}
		if err := nodefiles.Remove(path); err != nil {
			klog.FromContext(ctx).Error(err, "Removing the device-info file of a released device", "path", path)
			continue
		}
		klog.FromContext(ctx).V(2).Info("Removed the device-info file of a device no pod holds", "path", path, "device", f.deviceID)
		delete(m.files.written, path)
		removed++
	}
	return removed
}
