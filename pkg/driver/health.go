package driver

import (
	"context"
	"time"

	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/health"
)

// healthResend is how often the health of prepared devices is reported
// even when nothing changed: the kubelet shows a device as Unknown when no
// report refreshed it within healthTimeout.
const (
	healthResend  = 10 * time.Second
	healthTimeout = 30 * time.Second
)

// WatchHealthStatus reports the health of every prepared device to the
// kubelet (KEP-4680): at once, on every change, and every healthResend.
// A prepared device that is gone from the host is Unhealthy.
func (d *Driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	tick := time.NewTicker(healthResend)
	defer tick.Stop()
	for {
		changed := d.health.Wait()
		select {
		case reports <- d.healthReport():
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

// healthReport is the verdict of each device of the prepared claims, by
// health.Of on the last discovery.
func (d *Driver) healthReport() kubeletplugin.DeviceHealthReport {
	var report kubeletplugin.DeviceHealthReport
	inv, _ := d.pub.Snapshot()
	names := d.state.PreparedDevices()
	if inv == nil {
		return report // nothing known: the kubelet's entries age to Unknown
	}
	now := time.Now()
	for _, name := range names {
		h := kubeletplugin.DeviceHealth{PoolName: d.cfg.NodeName, DeviceName: name, Health: kubeletplugin.HealthStatusHealthy,
			LastUpdated: now, HealthCheckTimeout: healthTimeout}
		if found, ok := inv.Get(name); !ok {
			h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, "gone from the host"
		} else if v := health.Of(&found); !v.Healthy {
			h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, v.Reason
		}
		report.Devices = append(report.Devices, h)
	}
	return report
}
