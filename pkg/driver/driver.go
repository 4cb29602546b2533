// Package driver is the node daemon: the DRA kubelet plugin that publishes
// the node's devices as ResourceSlices, keeps them true, and carries out
// prepare plans for the kubelet.
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
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/deviceplugin"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nriplugin"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/slicesync"
)

// Host is what the daemon needs from the OS: reading devices, hearing of
// their changes, and preparing them. *host.Host is the real one,
// *simhost.Host a simulated one.
type Host interface {
	discovery.Host
	PrepareHost
	health.Source
}

// debounce is how long the daemon waits after a host event before it
// rescans, so that a burst of events (a PF's 128 VFs created) is one rescan.
const debounce = 200 * time.Millisecond

// Driver implements kubeletplugin.DRAPlugin.
type Driver struct {
	helper *kubeletplugin.Helper
	pub    *publisher
	prep   *preparer
	slices *slicesync.Writer
	shim   *deviceplugin.Manager
	health *healthState
	// sockets are the DRA helper's sockets (registration and dra.sock).
	sockets sockets
	// published is set once the first desired pool is in the API;
	// registration, state and nri once the DRA side runs. The health endpoints
	// read them from their own goroutines.
	published    atomic.Bool
	registration atomic.Pointer[kubeletplugin.Helper]
	state        atomic.Pointer[nodeState]
	nri          atomic.Pointer[nriplugin.Plugin]
	dra          bool
	metrics      *metrics.Metrics
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
	unlock, err := lockInstance(ctx, &cfg)
	if err != nil {
		return err
	}
	defer unlock()
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	d := &Driver{cancel: cancel, health: newHealthState(), metrics: metrics.New(), dra: cfg.DRA}
	if len(cfg.LegacyResources) > 0 {
		d.shim = deviceplugin.New(deviceplugin.Config{DriverName: cfg.DriverName, Dir: cfg.DevicePluginDir, Resources: cfg.LegacyResources,
			Host: cfg.Host, DevInfoDir: cfg.DevInfoDir, CDI: cfg.LegacyCDI, CDIRoot: cfg.CDIRoot, Health: shimHealth, Instance: cfg.PodUID,
			OnAllocate: func(resource string) { d.metrics.LegacyAllocations.WithLabelValues(resource).Inc() }})
	}
	d.pub = &publisher{host: cfg.Host, poolName: cfg.NodeName, configPath: cfg.ConfigPath, resourcePrefix: cfg.ResourcePrefix, metrics: d.metrics,
		slices: resourceslices.PoolOptions{WithholdPool: d.shim.Serves,
			LinkDown: &resourceapi.DeviceTaint{Key: resourceslices.LinkDownTaintKey(cfg.DriverName), Effect: cfg.LinkDownEffect}},
		publish: func(resourceslice.Pool) {}, events: newNodeEvents(cfg.KubeClient, cfg.NodeName, cfg.DriverName)}
	if cfg.PodResourcesSocket != "" {
		d.pub.legacyInUse = func(ctx context.Context, resources map[string]bool) (map[string]bool, error) {
			return legacyInUse(ctx, cfg.PodResourcesSocket, resources)
		}
	}
	// Validate the config before serving, so that a broken install fails
	// at once with the reason instead of serving nothing.
	if err := d.pub.loadConfig(ctx); err != nil {
		return err
	}
	if err := deviceplugin.CheckResources(cfg.LegacyResources, d.pub.config); err != nil {
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
		if err := d.startDRA(ctx, cfg, start); err != nil {
			return err
		}
		defer d.helper.Stop()
	} else if _, err := d.pub.sync(ctx); err != nil {
		return fmt.Errorf("first discovery: %w", err)
	}
	inv, pools := d.pub.snapshot()
	if !cfg.DRA {
		// No claims on this path: every file is the shim's or nobody's.
		sweepDevInfo(ctx, cfg.DevInfoDir, nil, inv, pools, d.shim)
	}
	d.health.observe(inv)
	if d.shim != nil {
		d.shim.Update(ctx, inv, pools)
		shimDone := make(chan struct{})
		go func() { d.shim.Run(ctx); close(shimDone) }()
		// The shim's sockets are removed before the instance lock is
		// released: the next instance finds the directory as it should.
		defer func() { cancel(nil); <-shimDone }()
	}
	logger.Info("Serving", "driver", cfg.DriverName, "node", cfg.NodeName, "dra", cfg.DRA, "legacyResources", cfg.LegacyResources,
		"sinceStart", time.Since(start).Round(time.Millisecond))
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

// alive answers /healthz: the daemon runs, can read its state, and the
// kubelet can still reach what it registered. An unreadable checkpoint
// fails it, so that the kubelet restarts the daemon, which sets the file
// aside and rebuilds; so does a socket of the DRA plugin or of the shim
// that is gone or was replaced by another process's: the kubelet would
// dial nothing, or someone else, and only a restart registers anew.
func (d *Driver) alive() error {
	var errs []error
	if st := d.state.Load(); st != nil && !st.healthy() {
		errs = append(errs, errors.New("the checkpoint cannot be read"))
	}
	errs = append(errs, d.sockets.check())
	if d.shim != nil {
		errs = append(errs, d.shim.Check())
	}
	return errors.Join(errs...)
}

// ready answers /readyz: registered with the kubelet, and the devices
// published (DRA) or served (legacy resources).
func (d *Driver) ready() error {
	if d.dra {
		helper := d.registration.Load()
		if helper == nil {
			return errors.New("not started yet")
		}
		if st := helper.RegistrationStatus(); st == nil || !st.PluginRegistered {
			return errors.New("not registered with the kubelet yet")
		}
		if !d.published.Load() {
			return errors.New("devices not published yet")
		}
		if nri := d.nri.Load(); nri != nil && !nri.Connected() {
			return errors.New("not connected to the container runtime's NRI")
		}
	}
	if d.shim != nil && !d.shim.Registered() {
		return errors.New("legacy resources not registered with the kubelet yet")
	}
	return nil
}

// shimHealth is a device's health in the device-plugin API's words.
func shimHealth(d *discovery.Device) string {
	if health.Of(d).Healthy {
		return "Healthy"
	}
	return "Unhealthy"
}

// startDRA recovers the prepared claims, publishes the devices and
// registers the DRA plugin with the kubelet.
func (d *Driver) startDRA(ctx context.Context, cfg Config, start time.Time) error {
	d.slices = slicesync.New(cfg.KubeClient, cfg.DriverName, cfg.NodeName, slicesync.Options{
		OnSynced: func(ctx context.Context, writes int) {
			d.published.Store(true)
			if writes > 0 {
				klog.FromContext(ctx).Info("ResourceSlices published", "writes", writes, "sinceStart", time.Since(start).Round(time.Millisecond))
			}
		},
		OnWrite: func(verb string) { d.metrics.SliceWrites.WithLabelValues(verb).Inc() },
	})
	d.pub.publish = d.slices.Update
	d.prep = newPreparer(cfg, d.pub, d.metrics)
	d.state.Store(d.prep.state)
	// Each rescan reads the checkpoint once, there: the held devices, an
	// unreadable file, prepared devices gone.
	d.pub.allocated = d.prep.checkState
	if err := d.prep.recover(ctx); err != nil {
		return fmt.Errorf("recover prepared claims: %w", err)
	}
	// Discover before registering, so that the first prepare finds the
	// devices; publishing runs in the background and never holds anything
	// up, whether or not the API server answers.
	if _, err := d.pub.sync(ctx); err != nil {
		return fmt.Errorf("first discovery: %w", err)
	}
	if err := d.prep.sweepFiles(ctx, d.shim); err != nil {
		return fmt.Errorf("start-up sweep of device-info files: %w", err)
	}
	// After the first discovery: a sandbox event needs the devices' netdevs.
	if cfg.NRISocket != "" {
		nri := nriplugin.New(nriplugin.Config{Socket: cfg.NRISocket, Name: cfg.DriverName, Index: "10",
			OnConnected:    func() { d.metrics.NRIConnected.Set(1) },
			OnDisconnected: func() { d.metrics.NRIConnected.Set(0) }}, d.prep)
		d.prep.nri = nri
		d.nri.Store(nri)
		go nri.Run(ctx)
	}
	go d.slices.Run(ctx)
	d.prep.lookups.start(ctx)
	go d.prep.status.run(ctx, 4)
	go d.prep.collectGarbage(ctx)
	opts := append(helperOptions(cfg), kubeletplugin.PluginListener(d.sockets.listen), kubeletplugin.RegistrarListener(d.sockets.listen))
	helper, err := kubeletplugin.Start(ctx, d, opts...)
	if err != nil {
		return fmt.Errorf("start kubelet plugin: %w", err)
	}
	d.helper = helper
	d.registration.Store(helper)
	return nil
}

// rescan rediscovers the host and hands the result to whoever serves it.
func (d *Driver) rescan(ctx context.Context) {
	if _, err := d.pub.sync(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Rescan reported a problem")
	}
	inv, pools := d.pub.snapshot()
	d.health.observe(inv)
	if d.shim != nil {
		d.shim.Update(ctx, inv, pools)
		if inUse, known := d.pub.legacyHeld(); known {
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

func newPreparer(cfg Config, pub *publisher, m *metrics.Metrics) *preparer {
	return &preparer{
		metrics:    m,
		driverName: cfg.DriverName, nodeName: cfg.NodeName, cdiRoot: cfg.CDIRoot, devInfoDir: cfg.DevInfoDir,
		host: cfg.Host, pluginDir: cfg.PluginDir, devices: pub, allowedDrivers: cfg.AllowedDrivers, shared: cfg.PodUID != "",
		state:   newNodeState(cfg.PluginDir, cfg.Host.BootID()),
		lookups: newLookups(cfg.KubeClient, cfg.NodeName),
		status:  newStatusWriter(cfg.KubeClient, cfg.DriverName),
		events:  newNodeEvents(cfg.KubeClient, cfg.NodeName, cfg.DriverName),
	}
}

// PrepareResourceClaims is the kubelet's NodePrepareResources.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	return d.prep.Prepare(ctx, claims)
}

// UnprepareResourceClaims is the kubelet's NodeUnprepareResources.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	return d.prep.Unprepare(ctx, claims)
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
