// Package health decides whether a device can carry traffic, and turns host
// events (link changes, hot-plug, driver binds, new VFs) into prompt,
// debounced rescans.
package health

import (
	"fmt"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// Verdict is one device's health.
type Verdict struct {
	Healthy bool
	// Reason says why a device is unhealthy.
	Reason string
}

// Of judges a device from its last discovery: a network device (VF, SF, or
// PF) is unhealthy while its PF's link is down. Accelerators have no link.
func Of(d *discovery.Device) Verdict {
	if d.PFLinkDown {
		pf := d.PFName
		if pf == "" {
			pf = d.RootDevice
		}
		return Verdict{Reason: fmt.Sprintf("link of PF %s is down", pf)}
	}
	return Verdict{Healthy: true}
}
