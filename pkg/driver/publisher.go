package driver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// publisher turns the host's current inventory into the node's pool and
// hands it on only when it changed.
type publisher struct {
	host           discovery.Host
	poolName       string
	configPath     string
	resourcePrefix string
	// publish hands the pool on to be written; it does not wait for the API.
	publish func(pool resourceslice.Pool)
	metrics *metrics.Metrics
	// events posts warnings on the Node (nil: none are posted).
	events *nodeEvents
	// slices shapes the pool: classic pools another path serves (the
	// legacy shim) left out, the taint of a device whose PF link is down.
	slices resourceslices.PoolOptions
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
	// allocated, when set, returns the devices prepared claims hold, given
	// the inventory just discovered: they keep their classic pool and stay
	// out of the shim's. heldLast is the last answer, kept while the
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

// snapshot returns the last discovered inventory and classic pools.
func (p *publisher) snapshot() (*discovery.Inventory, *selector.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inventory, p.pools
}

// legacyHeld returns the devices pods held through the device-plugin API
// at the last rescan, and whether the kubelet told.
func (p *publisher) legacyHeld() (map[string]bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.inUseKnown
}

// rediscover reads the host now, for a caller that just changed it.
func (p *publisher) rediscover(ctx context.Context) (*discovery.Inventory, error) {
	return discovery.Discover(ctx, p.host)
}

// loadConfig (re)reads the classic config when its bytes changed. A bad new
// config is reported and the last good one stays in force.
func (p *publisher) loadConfig(ctx context.Context) error {
	if p.configPath == "" {
		return nil
	}
	data, err := os.ReadFile(p.configPath)
	if err != nil {
		err = fmt.Errorf("read config %s: %w", p.configPath, err)
		if p.config != nil {
			if err.Error() == p.configUnreadable {
				return nil // reported already; the last good config stays
			}
			p.configUnreadable = err.Error()
			return fmt.Errorf("%w; keeping the last good config", err)
		}
		return err
	}
	if p.configUnreadable != "" {
		klog.FromContext(ctx).Info("Config file readable again", "path", p.configPath)
		p.configUnreadable = ""
	}
	if p.config != nil && bytes.Equal(data, p.configBytes) {
		return nil
	}
	cfg, warnings, err := classic.ParseLenient(data, p.resourcePrefix)
	p.warnIgnored(ctx, data, warnings)
	if err != nil {
		if p.config != nil {
			err = fmt.Errorf("config %s is invalid, keeping the last good one: %w", p.configPath, err)
		} else {
			err = fmt.Errorf("config %s: %w", p.configPath, err)
		}
		p.configBytes = data // report a bad file once, not on every rescan
		return err
	}
	if p.config != nil {
		klog.FromContext(ctx).Info("Classic config changed, reloaded", "path", p.configPath, "pools", len(cfg.ResourceList))
	}
	p.config, p.configBytes = cfg, data
	p.metrics.ConfigWarnings.Set(float64(len(warnings)))
	return nil
}

// warnIgnored reports the fields a config version's parse ignored. The
// classic plugin ignores a field it does not know; so do we, but loudly:
// it is often a misspelt one ("driver" for "drivers"), and a selector
// field dropped widens its pool in silence. Each is logged, and the
// version gets one Warning event on the Node.
func (p *publisher) warnIgnored(ctx context.Context, data []byte, warnings []error) {
	if len(warnings) == 0 {
		return
	}
	fields := make([]string, len(warnings))
	for i, w := range warnings {
		fields[i] = w.Error()
		klog.FromContext(ctx).Info("Warning: classic config field ignored", "path", p.configPath, "field", fields[i])
	}
	sum := sha256.Sum256(data)
	p.events.warn(ctx, "ClassicConfigFieldsIgnored", fmt.Sprintf("classic config %s (sha256 %x): %d field(s) ignored, check for misspellings (an ignored selector widens its pool): %s",
		p.configPath, sum[:6], len(fields), strings.Join(fields, "; ")))
}

// sync rediscovers the host and hands the pool on if it differs from the
// last one. It reports whether it did; a config that failed to reload is
// reported as an error even when the sync went on with the last good one.
func (p *publisher) sync(ctx context.Context) (bool, error) {
	start := time.Now()
	defer func() { p.metrics.RescanDuration.Observe(time.Since(start).Seconds()) }()
	cfgErr := p.loadConfig(ctx)
	if cfgErr != nil && p.config == nil {
		return false, cfgErr
	}
	inv, err := discovery.Discover(ctx, p.host)
	if err != nil {
		// Keep what was published: an unreadable host is not an empty one.
		return false, errors.Join(cfgErr, fmt.Errorf("discover devices (the last published devices stay): %w", err))
	}
	opts := p.slices
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
	p.publish(pool)
	p.last = &pool
	klog.FromContext(ctx).Info("Devices changed; queued for publishing", "devices", inv.Len(), "slices", len(pool.Slices))
	return true, cfgErr
}

// devicesInUse asks which devices of the classic pools' resources pods hold
// through the device-plugin API. Without an answer nothing is held back
// (the reason is logged once): a kubelet without the PodResources API has
// no such pods to protect.
func (p *publisher) devicesInUse(ctx context.Context) map[string]bool {
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
func (p *publisher) devicesHeld(ctx context.Context, inv *discovery.Inventory) map[string]selector.Allocated {
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
func (p *publisher) count(pool resourceslice.Pool, pools *selector.Result, inv *discovery.Inventory) {
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
func (p *publisher) logProblems(ctx context.Context, found []discovery.Problem, dropped []resourceslices.Problem) {
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
