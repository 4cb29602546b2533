package driver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/health"
)

// healthResend is how often the health of prepared devices is reported
// even when nothing changed: the kubelet shows a device as Unknown when no
// report refreshed it within healthTimeout.
const (
	healthResend  = 10 * time.Second
	healthTimeout = 30 * time.Second
)

// healthState tells the kubelet's health streams when a verdict changed.
type healthState struct {
	mu      sync.Mutex
	last    string        // the unhealthy devices and why, as last computed
	changed chan struct{} // closed when last changes
}

func newHealthState() *healthState { return &healthState{changed: make(chan struct{})} }

// observe records the inventory's verdicts and wakes the streams if they
// differ from the last ones.
func (s *healthState) observe(inv *discovery.Inventory) {
	if inv == nil {
		return
	}
	var unhealthy []string
	for d := range inv.All() {
		if v := health.Of(d); !v.Healthy {
			unhealthy = append(unhealthy, d.Name+": "+v.Reason)
		}
	}
	key := strings.Join(unhealthy, "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	if key != s.last {
		s.last = key
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

func (s *healthState) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// WatchHealthStatus reports the health of every prepared device to the
// kubelet (KEP-4680): at once, on every change, and every healthResend.
// A prepared device that is gone from the host is Unhealthy.
func (d *Driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	tick := time.NewTicker(healthResend)
	defer tick.Stop()
	for {
		changed := d.health.wait()
		inv, _ := d.pub.snapshot()
		select {
		case reports <- d.prep.healthReport(inv):
		case <-ctx.Done():
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-changed:
		}
	}
}

// healthReport is the verdict of each device of the prepared claims.
func (p *preparer) healthReport(inv *discovery.Inventory) kubeletplugin.DeviceHealthReport {
	var report kubeletplugin.DeviceHealthReport
	cp, _, err := checkpoint.Load(p.state.path, p.state.bootID)
	if err != nil || inv == nil {
		return report // nothing known: the kubelet's entries age to Unknown
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, e := range cp.Claims {
		for _, dev := range e.Devices {
			if seen[dev.Name] {
				continue
			}
			seen[dev.Name] = true
			h := kubeletplugin.DeviceHealth{PoolName: p.nodeName, DeviceName: dev.Name, Health: kubeletplugin.HealthStatusHealthy,
				LastUpdated: now, HealthCheckTimeout: healthTimeout}
			if found, ok := inv.Get(dev.Name); !ok {
				h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, "gone from the host"
			} else if v := health.Of(&found); !v.Healthy {
				h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, v.Reason
			}
			report.Devices = append(report.Devices, h)
		}
	}
	slices.SortFunc(report.Devices, func(a, b kubeletplugin.DeviceHealth) int { return strings.Compare(a.DeviceName, b.DeviceName) })
	return report
}
