// Package deviceplugin is the legacy shim: it serves classic
// sriov-network-device-plugin resources (intel.com/intel_sriov_dpdk) to the
// kubelet through the device-plugin API, one gRPC server per resource, with
// the same device nodes, PCIDEVICE_ variables and device-info files the DRA
// path gives, from the same planner.
package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// All is the --legacy-resources value that serves every pool.
const All = "all"

// DefaultDir is the kubelet's device-plugins directory.
const DefaultDir = pluginapi.DevicePluginPath

// Config configures the shim.
type Config struct {
	// DriverName names the CDI kind and the sockets.
	DriverName string
	// Dir is the kubelet's device-plugins directory (kubelet.sock is there).
	Dir string
	// Resources are the classic resource names to serve, or [All].
	Resources []string
	// Host answers which /dev nodes exist.
	Host prepare.DevNodes
	// DevInfoDir receives Network Plumbing WG device-info files.
	DevInfoDir string
	// CDI (--legacy-cdi) answers with CDI device names from a spec per
	// resource in CDIRoot, instead of device nodes.
	CDI     bool
	CDIRoot string
	// Health tells a device's health; nil means always Healthy.
	Health func(*discovery.Device) string
	// PollInterval is how often the kubelet's socket is checked for a
	// kubelet restart. Default 100ms.
	PollInterval time.Duration
	// OnAllocate is called for each Allocate answered, with the resource.
	OnAllocate func(resource string)
	// FileGrace is how long a device-info file is kept before its device
	// must be held by a pod (DefaultFileGrace).
	FileGrace time.Duration
	// Instance is the rolling-update identity (the DaemonSet pod's UID), or
	// empty. Set, a digest of it is in every socket name, so that the old
	// and the new pod of a rolling update never make the same path and the
	// kubelet holds both endpoints during the handover (see socket.go).
	Instance string
}

// CheckResources verifies --legacy-resources against a classic config: each
// name must be a pool's full name.
func CheckResources(names []string, cfg *classic.Config) error {
	if len(names) == 0 {
		return nil
	}
	if cfg == nil {
		return errors.New("--legacy-resources needs --config: the classic config defines the resources")
	}
	if slices.Equal(names, []string{All}) {
		return nil
	}
	var errs []error
	for _, n := range names {
		if !slices.ContainsFunc(cfg.ResourceList, func(r classic.ResourceConfig) bool { return r.FullName() == n }) {
			errs = append(errs, fmt.Errorf("--legacy-resources: %q is not a resource of the config (want <prefix>/<resourceName>, or %q)", n, All))
		}
	}
	return errors.Join(errs...)
}

// Manager runs the resources' servers and keeps them registered.
type Manager struct {
	cfg Config

	instance string // instanceTag(cfg.Instance)

	mu        sync.Mutex
	resources map[string]*resource
	// starts counts, per resource, the sockets this process has made, so
	// that none is registered twice with one kubelet (see socket.go).
	starts map[string]int
	kick   chan struct{}
	files  infoFiles
}

// New returns a shim for the configured resources.
func New(cfg Config) *Manager {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.FileGrace <= 0 {
		cfg.FileGrace = DefaultFileGrace
	}
	if cfg.Health == nil {
		cfg.Health = func(*discovery.Device) string { return pluginapi.Healthy }
	}
	return &Manager{cfg: cfg, instance: instanceTag(cfg.Instance), resources: map[string]*resource{}, starts: map[string]int{},
		kick: make(chan struct{}, 1)}
}

// nextStart numbers the next socket of a resource.
func (m *Manager) nextStart(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.starts[name]
	m.starts[name]++
	return n
}

// Serves reports whether a classic pool's devices go through the shim (and
// so must not be published in ResourceSlices).
func (m *Manager) Serves(poolName string) bool {
	return m != nil && (slices.Equal(m.cfg.Resources, []string{All}) || slices.Contains(m.cfg.Resources, poolName))
}

func (m *Manager) kubeletSocket() string { return filepath.Join(m.cfg.Dir, "kubelet.sock") }

// Update hands the shim the devices of the last rescan. Pools added start
// a server, pools gone stop theirs, changed pools send a new device list.
func (m *Manager) Update(ctx context.Context, inv *discovery.Inventory, pools *selector.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	if pools != nil {
		for i := range pools.Pools {
			p := &pools.Pools[i]
			if !m.Serves(p.Name()) {
				continue
			}
			seen[p.Name()] = true
			r, ok := m.resources[p.Name()]
			if !ok {
				r = newResource(m, p.Name())
				m.resources[p.Name()] = r
			}
			r.update(p, inv, m.cfg.Health)
			if m.cfg.CDI {
				m.writeSpec(ctx, r, p, inv)
			}
		}
	}
	for name, r := range m.resources {
		if !seen[name] {
			klog.FromContext(ctx).Info("Classic resource is gone from the config; no longer served", "resource", name)
			r.update(&selector.Pool{Config: &classic.ResourceConfig{}}, inv, m.cfg.Health) // tell the kubelet: no devices
			r.stop()
			if m.cfg.CDI {
				_ = nodefiles.Remove(filepath.Join(m.cfg.CDIRoot, prepare.SpecFileName(prepare.CDIKind(m.cfg.DriverName), r.cdiID())))
			}
			delete(m.resources, name)
		}
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// writeSpec writes the resource's CDI spec: one CDI device per pool device
// with its nodes; the variables come with each allocation.
func (m *Manager) writeSpec(ctx context.Context, r *resource, pool *selector.Pool, inv *discovery.Inventory) {
	var devices []discovery.Device
	for _, d := range pool.Devices {
		devices = append(devices, *d)
	}
	var cdiDevices []prepare.CDIDevice
	for _, d := range devices {
		// One device at a time, so that a device missing a node leaves
		// only itself out (its allocations then fail, naming the node).
		rd := prepare.Render(m.cfg.DriverName, []prepare.ClaimPlan{prepare.PoolPlan(r.cdiID(), pool, []discovery.Device{d})}, inv, m.cfg.Host)[0]
		if rd.Err != nil {
			klog.FromContext(ctx).Error(rd.Err, "Device left out of the CDI spec", "resource", r.name, "device", d.Name)
			continue
		}
		cdiDevices = append(cdiDevices, prepare.CDIDevice{Name: rd.Devices[0].CDIName, Nodes: rd.Devices[0].Edits.Nodes})
	}
	kind := prepare.CDIKind(m.cfg.DriverName)
	path := filepath.Join(m.cfg.CDIRoot, prepare.SpecFileName(kind, r.cdiID()))
	if err := nodefiles.WriteSpec(path, prepare.Spec(kind, cdiDevices, nil)); err != nil {
		klog.FromContext(ctx).Error(err, "Writing the CDI spec of a classic resource failed", "resource", r.name, "path", path)
	}
}

// Run keeps every resource served and registered until ctx ends: a
// resource not serving (just added, its socket removed by a restarting
// kubelet or replaced by another process) gets a new endpoint, registered
// as soon as the kubelet's socket is there, before the old one stops.
func (m *Manager) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	tick := time.NewTicker(m.cfg.PollInterval)
	defer tick.Stop()
	defer m.stopAll()
	var kubelet os.FileInfo
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-m.kick:
		}
		st, err := os.Stat(m.kubeletSocket())
		if err != nil {
			kubelet = nil
			continue // no kubelet (yet): nothing to register with
		}
		restarted := kubelet == nil || !sameFile(kubelet, st)
		kubelet = st
		m.mu.Lock()
		resources := make([]*resource, 0, len(m.resources))
		for _, r := range m.resources {
			resources = append(resources, r)
		}
		m.mu.Unlock()
		for _, r := range resources {
			if !restarted && r.serving() {
				continue
			}
			start := time.Now()
			if err := r.start(ctx); err != nil {
				logger.Error(err, "Serving a classic resource failed; retrying", "resource", r.name)
				continue
			}
			logger.Info("Classic resource registered with the kubelet", "resource", r.name, "socket", r.socket(),
				"kubeletSocketAge", time.Since(st.ModTime()).Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// Registered reports whether every resource is served and registered.
func (m *Manager) Registered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.resources {
		if !r.serving() {
			return false
		}
	}
	return true
}

// Check reports, for /healthz, the resources whose socket is gone or was
// replaced by another process's since they registered: the kubelet can no
// longer reach them through it. Run repairs that within a poll when it can
// (a restarting kubelet removes every socket); a failure that lasts means
// the shim no longer serves what it registered.
func (m *Manager) Check() error {
	m.mu.Lock()
	resources := make([]*resource, 0, len(m.resources))
	for _, r := range m.resources {
		resources = append(resources, r)
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range resources {
		if r.socket() == "" {
			continue // never registered yet: /readyz says so
		}
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("classic resource %s: %w", r.name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.resources {
		r.stop()
	}
}

// sameFile reports whether two stats are of the same socket (a restarted
// kubelet makes a new one).
func sameFile(a, b os.FileInfo) bool {
	sa, okA := a.Sys().(*syscall.Stat_t)
	sb, okB := b.Sys().(*syscall.Stat_t)
	if !okA || !okB {
		return os.SameFile(a, b)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino && a.ModTime().Equal(b.ModTime())
}
