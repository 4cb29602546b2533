// Package publisher keeps the node's ResourceSlices true: it rediscovers
// the host, builds the node's pool from the devices and the classic config,
// and hands it to the slice writer only when it changed.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/slicesync"
)

// Warner posts a warning where an operator sees it (an Event on the Node).
type Warner interface {
	Warn(ctx context.Context, reason, message string)
}

// Config is what the publisher reads and where the pool goes.
type Config struct {
	Host       discovery.Host
	DriverName string
	NodeName   string
	// ConfigPath is the classic config.json (empty: none).
	ConfigPath     string
	ResourcePrefix string
	Metrics        *metrics.Metrics
	// Warn, when set, hears of ignored config fields.
	Warn Warner
	// Client is the API the ResourceSlices are written to; nil: they are
	// not published (the legacy shim alone serves the devices).
	Client kubernetes.Interface
	// OnSynced is called each time the API holds the desired slices, with
	// the number of writes that took.
	OnSynced func(ctx context.Context, writes int)
	// WithholdPool reports the classic pools another path (the legacy
	// shim) serves: their devices stay out of the slices.
	WithholdPool func(pool string) bool
	// LinkDownEffect is the effect of the taint on devices whose PF link
	// is down.
	LinkDownEffect resourceapi.DeviceTaintEffect
	// PodResourcesSocket is the kubelet's PodResources API: devices pods
	// hold through the device-plugin API stay out of the slices. Empty:
	// not asked.
	PodResourcesSocket string
	// Held, when set, returns the devices prepared claims hold, given the
	// inventory just discovered: they keep their classic pool and stay out
	// of the shim's.
	Held func(ctx context.Context, inv *discovery.Inventory) (map[string]selector.Allocated, error)
}

// sink takes the desired pool and writes it; it does not wait for the API.
type sink interface {
	Update(pool resourceslice.Pool)
}

// Publisher turns the host's current inventory into the node's pool and
// hands it on only when it changed.
type Publisher struct {
	host           discovery.Host
	configPath     string
	resourcePrefix string
	// slices writes the pool (nil: not published).
	slices  sink
	writer  *slicesync.Writer
	metrics *metrics.Metrics
	// warn posts warnings on the Node (nil: none are posted).
	warn Warner
	// slices shapes the pool: classic pools another path serves (the
	// legacy shim) left out, the taint of a device whose PF link is down.
	options resourceslices.PoolOptions
	// legacyInUse, when set, returns the devices pods hold through the
	// device-plugin API under the named classic resources: they stay out
	// of the slices until released.
	legacyInUse func(ctx context.Context, resources map[string]bool) (map[string]bool, error)
	// inUseErr is the last error legacyInUse reported, logged once.
	inUseErr string
	// inUse is legacyInUse's last answer; inUseKnown is false while it
	// has none (not asked, or the kubelet did not answer).
	inUse      map[string]bool
	inUseKnown bool
	// allocated is Config.Held; heldLast its last answer, kept while the
	// checkpoint cannot be read.
	allocated func(ctx context.Context, inv *discovery.Inventory) (map[string]selector.Allocated, error)
	heldLast  map[string]selector.Allocated

	configBytes []byte
	config      *classic.Config
	// configUnreadable is the read error last reported, so that a config
	// file that went away is reported once, not on every rescan.
	configUnreadable string
	last             *resourceslice.Pool
	// problems are the discovery and publishing problems of the last scan,
	// logged when they appear and when they go away, not on every rescan.
	problems map[string]bool

	// mu guards the snapshot the prepare path reads.
	mu        sync.Mutex
	inventory *discovery.Inventory
	pools     *selector.Result
}

// New returns the node's publisher. Call Sync once before serving: it
// reads the config (a broken one is an error) and the host.
func New(cfg Config) *Publisher {
	p := &Publisher{host: cfg.Host, configPath: cfg.ConfigPath, resourcePrefix: cfg.ResourcePrefix, metrics: cfg.Metrics, warn: cfg.Warn,
		// Reuse: an unchanged device keeps its attribute map from the last
		// rescan, so that a rescan of a quiet host builds none (and the
		// comparison with the last pool finds them identical at once).
		options: resourceslices.PoolOptions{WithholdPool: cfg.WithholdPool, Reuse: &resourceslices.Reuse{},
			LinkDown: &resourceapi.DeviceTaint{Key: resourceslices.LinkDownTaintKey(cfg.DriverName), Effect: cfg.LinkDownEffect}},
		allocated: cfg.Held}
	if cfg.Client != nil {
		p.writer = slicesync.New(cfg.Client, cfg.DriverName, cfg.NodeName, slicesync.Options{
			OnSynced: cfg.OnSynced,
			OnWrite:  func(verb string) { cfg.Metrics.SliceWrites.WithLabelValues(verb).Inc() },
		})
		p.slices = p.writer
		cfg.Metrics.WatchSlices(p.writer.Synced)
	}
	if cfg.PodResourcesSocket != "" {
		p.legacyInUse = func(ctx context.Context, resources map[string]bool) (map[string]bool, error) {
			return legacyInUse(ctx, cfg.PodResourcesSocket, resources)
		}
	}
	return p
}

// Run writes the slices until ctx ends; without a Client it returns at once.
func (p *Publisher) Run(ctx context.Context) {
	if p.writer != nil {
		p.writer.Run(ctx)
	}
}

// Config is the classic config in force (nil: none).
func (p *Publisher) Config() *classic.Config { return p.config }

// Snapshot returns the last discovered inventory and classic pools.
func (p *Publisher) Snapshot() (*discovery.Inventory, *selector.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inventory, p.pools
}

// LegacyHeld returns the devices pods held through the device-plugin API
// at the last rescan, and whether the kubelet told.
func (p *Publisher) LegacyHeld() (map[string]bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.inUseKnown
}

// Rediscover reads the host now, for a caller that just changed it.
func (p *Publisher) Rediscover(ctx context.Context) (*discovery.Inventory, error) {
	return discovery.Discover(ctx, p.host)
}

// Sync rediscovers the host and hands the pool on if it differs from the
// last one. It reports whether it did; a config that failed to reload is
// reported as an error even when the sync went on with the last good one.
func (p *Publisher) Sync(ctx context.Context) (bool, error) {
	start := time.Now()
	defer func() { p.metrics.RescanDuration.Observe(time.Since(start).Seconds()) }()
	cfgErr := p.LoadConfig(ctx)
	if cfgErr != nil && p.config == nil {
		return false, cfgErr
	}
	inv, err := discovery.Discover(ctx, p.host)
	if err != nil {
		// Keep what was published: an unreadable host is not an empty one.
		return false, errors.Join(cfgErr, fmt.Errorf("discover devices (the last published devices stay): %w", err))
	}
	opts := p.options
	opts.InUse = p.devicesInUse(ctx)
	opts.Allocated = p.devicesHeld(ctx, inv)
	pool, pools, problems, err := resourceslices.DesiredPool(inv, p.config, opts)
	if err != nil {
		return false, err
	}
	p.logProblems(ctx, inv.Problems(), problems)
	p.count(pool, pools, inv)
	p.mu.Lock()
	p.inventory, p.pools = inv, pools
	p.mu.Unlock()
	if p.last != nil && apiequality.Semantic.DeepEqual(p.last, &pool) {
		return false, cfgErr
	}
	if p.slices != nil {
		p.slices.Update(pool)
	}
	p.last = &pool
	klog.FromContext(ctx).Info("Devices changed; queued for publishing", "devices", inv.Len(), "slices", len(pool.Slices))
	return true, cfgErr
}

// devicesInUse asks which devices of the classic pools' resources pods hold
// through the device-plugin API. Without an answer nothing is held back
// (the reason is logged once): a kubelet without the PodResources API has
// no such pods to protect.
func (p *Publisher) devicesInUse(ctx context.Context) map[string]bool {
	if p.legacyInUse == nil || p.config == nil {
		return nil
	}
	names := make(map[string]bool, len(p.config.ResourceList))
	for _, r := range p.config.ResourceList {
		names[r.FullName()] = true
	}
	inUse, err := p.legacyInUse(ctx, names)
	switch {
	case err != nil && err.Error() != p.inUseErr:
		klog.FromContext(ctx).Info("Warning: cannot tell which devices pods hold through the device-plugin API; none held back", "err", err)
		p.inUseErr = err.Error()
	case err == nil && p.inUseErr != "":
		klog.FromContext(ctx).Info("PodResources API answers again")
		p.inUseErr = ""
	}
	p.mu.Lock()
	p.inUse, p.inUseKnown = inUse, err == nil
	p.mu.Unlock()
	return inUse
}

// devicesHeld returns the devices prepared claims hold. An unreadable
// checkpoint keeps the last answer: a device is never offered to the shim
// because its claim could not be read.
func (p *Publisher) devicesHeld(ctx context.Context, inv *discovery.Inventory) map[string]selector.Allocated {
	if p.allocated == nil {
		return nil
	}
	held, err := p.allocated(ctx, inv)
	if err != nil {
		return p.heldLast // the reader logged why
	}
	p.heldLast = held
	return held
}

// count records the published devices by type and classic pool, and the
// unhealthy ones.
func (p *Publisher) count(pool resourceslice.Pool, pools *selector.Result, inv *discovery.Inventory) {
	published := map[string]bool{}
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			published[d.Name] = true
		}
	}
	p.metrics.DevicesPublished.Reset()
	unhealthy := 0
	for d := range inv.All() {
		if !health.Of(d).Healthy {
			unhealthy++
		}
		if !published[d.Name] {
			continue
		}
		poolName := ""
		if pools != nil {
			if cp, ok := pools.PoolFor(d.Name); ok {
				poolName = cp.Name()
			}
		}
		p.metrics.DevicesPublished.WithLabelValues(string(d.DeviceType), poolName).Inc()
	}
	p.metrics.DevicesUnhealthy.Set(float64(unhealthy))
}

// logProblems logs each problem when it first appears and when it is gone.
func (p *Publisher) logProblems(ctx context.Context, found []discovery.Problem, dropped []resourceslices.Problem) {
	logger := klog.FromContext(ctx)
	now := make(map[string]bool, len(found)+len(dropped))
	for _, pr := range found {
		now[pr.String()] = true
	}
	for _, pr := range dropped {
		now[pr.String()] = true
	}
	for msg := range now {
		if !p.problems[msg] {
			logger.Info("Device problem", "problem", msg)
		}
	}
	for msg := range p.problems {
		if !now[msg] {
			logger.Info("Device problem resolved", "problem", msg)
		}
	}
	p.problems = now
}

// Device is a device as last discovered.
func (p *Publisher) Device(name string) (discovery.Device, bool) {
	inv, _ := p.Snapshot()
	if inv == nil {
		return discovery.Device{}, false
	}
	return inv.Get(name)
}

// Desired is the pool last handed to the slice writer (nil before the
// first).
func (p *Publisher) Desired() *resourceslice.Pool { return p.last }
