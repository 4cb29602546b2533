// Package driver is the node daemon: it wires the publisher, the legacy
// shim, the claims executor and the pod network side for the mode the
// config asks for (DRA, legacy resources only, or both) and runs them.
package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	metadatav1beta1 "k8s.io/dynamic-resource-allocation/api/metadata/v1beta1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/claims"
	"github.com/sriov-dra/sriov-dra/pkg/deviceplugin"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodestate"
	"github.com/sriov-dra/sriov-dra/pkg/podnet"
	"github.com/sriov-dra/sriov-dra/pkg/publisher"
)

// Host is what the daemon needs from the OS: reading devices, hearing of
// their changes, and preparing them. *host.Host is the real one,
// *simhost.Host a simulated one.
type Host interface {
	claims.Host
	podnet.Host
	health.Source
	BootID() string
}

// debounce is how long the daemon waits after a host event before it
// rescans, so that a burst of events (a PF's 128 VFs created) is one rescan.
const debounce = 200 * time.Millisecond

// Driver implements kubeletplugin.DRAPlugin.
type Driver struct {
	cfg     Config
	metrics *metrics.Metrics
	health  *health.Changes
	pub     *publisher.Publisher
	// shim is nil without legacy resources.
	shim *deviceplugin.Manager
	// The DRA side: nil in legacy-only mode.
	state  *nodestate.Store
	claims *claims.Executor
	podnet *podnet.PodNet
	// sockets are the DRA helper's sockets (registration and dra.sock).
	sockets nodestate.Sockets
	// published is set once the first desired pool is in the API,
	// registration once the helper runs. The health endpoints read them
	// from their own goroutines.
	published    atomic.Bool
	registration atomic.Pointer[kubeletplugin.Helper]
	start        time.Time
	cancel       context.CancelCauseFunc
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// Run serves the node's devices until ctx ends: through the DRA kubelet
// plugin and ResourceSlices, through the legacy device-plugin shim, or
// both. A fatal background error from the helper also ends it.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.complete(); err != nil {
		return err
	}
	// First: a second instance must leave the first's sockets and files alone.
	unlock, err := nodestate.LockInstance(ctx, cfg.PluginDir, cfg.PodUID != "")
	if err != nil {
		return err
	}
	defer unlock()
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var d *Driver
	if cfg.DRA {
		d = newDRA(cfg)
	} else {
		d = newLegacyOnly(cfg)
	}
	d.start, d.cancel = time.Now(), cancel
	// Validate the config before serving, so that a broken install fails
	// at once with the reason instead of serving nothing.
	if err := d.pub.LoadConfig(ctx); err != nil {
		return err
	}
	if err := deviceplugin.CheckResources(cfg.LegacyResources, d.pub.Config()); err != nil {
		return err
	}
	for _, dir := range cfg.workDirs() {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if cfg.MetricsAddr != "" || cfg.HealthSocket != "" {
		if err := d.metrics.Serve(ctx, metrics.ServeConfig{Addr: cfg.MetricsAddr, Socket: cfg.HealthSocket, Profiling: cfg.Profiling}, metrics.Checks{Alive: d.alive, Ready: d.ready}); err != nil {
			return err
		}
	}
	if cfg.DRA {
		helper, err := d.startDRA(ctx)
		if err != nil {
			return err
		}
		defer helper.Stop()
	} else if err := d.startLegacyOnly(ctx); err != nil {
		return err
	}
	if d.shim != nil {
		inv, pools := d.pub.Snapshot()
		d.shim.Update(ctx, inv, pools)
		shimDone := make(chan struct{})
		go func() { d.shim.Run(ctx); close(shimDone) }()
		// The shim's sockets are removed before the instance lock is
		// released: the next instance finds the directory as it should.
		defer func() { cancel(nil); <-shimDone }()
	}
	logger.Info("Serving", "driver", cfg.DriverName, "node", cfg.NodeName, "dra", cfg.DRA, "legacyResources", cfg.LegacyResources,
		"sinceStart", time.Since(d.start).Round(time.Millisecond))
	// Host events (link changes, hot-plug, binds, new VFs) rescan at once;
	// the periodic rescan catches anything no event reports.
	watcher := &health.Watcher{Source: cfg.Host, Debounce: debounce, Periodic: cfg.RescanInterval,
		Rescan: func(ctx context.Context, reason string) {
			klog.FromContext(ctx).V(4).Info("Rescan", "reason", reason)
			cause := "event"
			if reason == "periodic" {
				cause = "periodic"
			}
			d.metrics.Rescans.WithLabelValues(cause).Inc()
			d.rescan(ctx)
		}}
	watcher.Run(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	logger.Info("Shutting down")
	return nil
}

// newLegacyOnly is the daemon without the DRA plugin: the shim serves the
// classic resources, nothing is published and no API is needed.
func newLegacyOnly(cfg Config) *Driver {
	d := &Driver{cfg: cfg, metrics: metrics.New(), health: health.NewChanges()}
	d.shim = newShim(cfg, d.metrics)
	d.pub = publisher.New(d.publisherConfig())
	return d
}

// newDRA is the DRA kubelet plugin, with the shim beside it when legacy
// resources are named: the node's state, the publisher (whose pools keep
// the devices prepared claims hold), the claims executor and the pod
// network side.
func newDRA(cfg Config) *Driver {
	d := &Driver{cfg: cfg, metrics: metrics.New(), health: health.NewChanges()}
	if len(cfg.LegacyResources) > 0 {
		d.shim = newShim(cfg, d.metrics)
	}
	warn := newNodeEvents(cfg)
	d.state = nodestate.New(nodestate.Config{PluginDir: cfg.PluginDir, BootID: cfg.Host.BootID(), Warn: warn, Readable: d.metrics.CheckpointReadable})
	pc := d.publisherConfig()
	pc.Warn, pc.Client, pc.PodResourcesSocket = warn, cfg.KubeClient, cfg.PodResourcesSocket
	// Each rescan reads the checkpoint once, there: the held devices, an
	// unreadable file, prepared devices gone.
	pc.Held = d.state.Check
	pc.OnSynced = func(ctx context.Context, writes int) {
		d.published.Store(true)
		if writes > 0 {
			klog.FromContext(ctx).Info("ResourceSlices published", "writes", writes, "sinceStart", time.Since(d.start).Round(time.Millisecond))
		}
	}
	d.pub = publisher.New(pc)
	d.podnet = podnet.New(podnet.Config{DriverName: cfg.DriverName, Host: cfg.Host, State: d.state, Devices: d.pub, Client: cfg.KubeClient,
		Metrics: d.metrics, NRISocket: cfg.NRISocket})
	d.claims = claims.New(d.claimsConfig())
	return d
}

// claimsConfig is the executor's, over the DRA side's state, publisher and
// pod network side.
func (d *Driver) claimsConfig() claims.Config {
	cfg := d.cfg
	return claims.Config{DriverName: cfg.DriverName, NodeName: cfg.NodeName, CDIRoot: cfg.CDIRoot, DevInfoDir: cfg.DevInfoDir,
		PluginDir: cfg.PluginDir, Host: cfg.Host, State: d.state, Devices: d.pub, PodNet: d.podnet, Client: cfg.KubeClient, Metrics: d.metrics,
		AllowedDrivers: cfg.AllowedDrivers, Shared: cfg.PodUID != ""}
}

// publisherConfig is what every mode's publisher has.
func (d *Driver) publisherConfig() publisher.Config {
	return publisher.Config{Host: d.cfg.Host, DriverName: d.cfg.DriverName, NodeName: d.cfg.NodeName, ConfigPath: d.cfg.ConfigPath,
		ResourcePrefix: d.cfg.ResourcePrefix, Metrics: d.metrics, WithholdPool: d.shim.Serves, LinkDownEffect: d.cfg.LinkDownEffect}
}

func newShim(cfg Config, m *metrics.Metrics) *deviceplugin.Manager {
	return deviceplugin.New(deviceplugin.Config{DriverName: cfg.DriverName, Dir: cfg.DevicePluginDir, Resources: cfg.LegacyResources,
		Host: cfg.Host, DevInfoDir: cfg.DevInfoDir, CDI: cfg.LegacyCDI, CDIRoot: cfg.CDIRoot, Health: health.DevicePlugin, Instance: cfg.PodUID,
		OnAllocate: func(resource string) { m.LegacyAllocations.WithLabelValues(resource).Inc() }})
}

// startLegacyOnly discovers the devices and sweeps the device-info files.
func (d *Driver) startLegacyOnly(ctx context.Context) error {
	if _, err := d.pub.Sync(ctx); err != nil {
		return fmt.Errorf("first discovery: %w", err)
	}
	if err := d.sweepDevInfo(ctx); err != nil {
		return err
	}
	inv, _ := d.pub.Snapshot()
	d.health.Observe(inv)
	return nil
}

// sweepDevInfo runs once at start-up, after recovery and the first
// discovery: the device-info files about this node's devices that neither a
// prepared claim nor the shim owns go (see deviceplugin.SweepDevInfo). In
// legacy-only mode there are no claims: every file is the shim's or
// nobody's.
func (d *Driver) sweepDevInfo(ctx context.Context) error {
	inv, pools := d.pub.Snapshot()
	if d.claims == nil {
		deviceplugin.SweepDevInfo(ctx, d.cfg.DevInfoDir, nil, inv, pools, d.shim)
		return nil
	}
	err := d.claims.SweepFiles(ctx, func(owned map[string]bool) {
		deviceplugin.SweepDevInfo(ctx, d.cfg.DevInfoDir, owned, inv, pools, d.shim)
	})
	if err != nil {
		return fmt.Errorf("start-up sweep of device-info files: %w", err)
	}
	return nil
}

// startDRA recovers the prepared claims, publishes the devices and
// registers the DRA plugin with the kubelet.
func (d *Driver) startDRA(ctx context.Context) (*kubeletplugin.Helper, error) {
	if err := d.claims.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recover prepared claims: %w", err)
	}
	// Discover before registering, so that the first prepare finds the
	// devices; publishing runs in the background and never holds anything
	// up, whether or not the API server answers.
	if _, err := d.pub.Sync(ctx); err != nil {
		return nil, fmt.Errorf("first discovery: %w", err)
	}
	if err := d.sweepDevInfo(ctx); err != nil {
		return nil, err
	}
	inv, _ := d.pub.Snapshot()
	d.health.Observe(inv)
	// After the first discovery: a sandbox event needs the devices' netdevs.
	go d.podnet.Run(ctx)
	go d.pub.Run(ctx)
	go d.claims.Run(ctx)
	opts := append(helperOptions(d.cfg), kubeletplugin.PluginListener(d.sockets.Listen), kubeletplugin.RegistrarListener(d.sockets.Listen))
	helper, err := kubeletplugin.Start(ctx, d, opts...)
	if err != nil {
		return nil, fmt.Errorf("start kubelet plugin: %w", err)
	}
	d.registration.Store(helper)
	return helper, nil
}

// rescan rediscovers the host and hands the result to whoever serves it.
func (d *Driver) rescan(ctx context.Context) {
	if _, err := d.pub.Sync(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Rescan reported a problem")
	}
	inv, pools := d.pub.Snapshot()
	d.health.Observe(inv)
	if d.shim != nil {
		d.shim.Update(ctx, inv, pools)
		if inUse, known := d.pub.LegacyHeld(); known {
			d.shim.ReleaseFiles(ctx, inUse, time.Now())
		}
	}
}

func helperOptions(cfg Config) []kubeletplugin.Option {
	opts := []kubeletplugin.Option{
		kubeletplugin.DriverName(cfg.DriverName),
		kubeletplugin.NodeName(cfg.NodeName),
		kubeletplugin.KubeClient(cfg.KubeClient),
		kubeletplugin.CDIDirectory(cfg.CDIRoot),
		kubeletplugin.PluginDataDirectoryPath(cfg.PluginDir),
		// Each container of a claim reads its devices' attributes from a
		// file (KEP-5304), as KubeVirt-style consumers expect.
		kubeletplugin.EnableDeviceMetadata(true, []schema.GroupVersion{metadatav1beta1.SchemeGroupVersion}),
	}
	if cfg.RegistrarDir != "" {
		opts = append(opts, kubeletplugin.RegistrarDirectoryPath(cfg.RegistrarDir))
	}
	if cfg.PodUID != "" {
		opts = append(opts, kubeletplugin.RollingUpdate(types.UID(cfg.PodUID)))
	}
	return opts
}

// PrepareResourceClaims is the kubelet's NodePrepareResources.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	return d.claims.Prepare(ctx, claims)
}

// UnprepareResourceClaims is the kubelet's NodeUnprepareResources.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	return d.claims.Unprepare(ctx, claims)
}

// HandleError logs background errors; the helper marks ResourceSlice
// publishing errors recoverable, anything else ends the daemon.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	logger := klog.FromContext(ctx)
	if errors.Is(err, kubeletplugin.ErrRecoverable) {
		logger.Error(err, msg)
		return
	}
	logger.Error(err, "Fatal background error: "+msg)
	d.cancel(fmt.Errorf("%s: %w", msg, err))
}
