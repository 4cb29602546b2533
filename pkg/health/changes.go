package health

import (
	"strings"
	"sync"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// Changes tells waiters when the verdicts of an inventory's devices
// changed (the kubelet's health streams wait on it).
type Changes struct {
	mu      sync.Mutex
	last    string        // the unhealthy devices and why, as last computed
	changed chan struct{} // closed when last changes
}

// NewChanges returns a notifier with no verdicts yet.
func NewChanges() *Changes { return &Changes{changed: make(chan struct{})} }

// Observe records the inventory's verdicts and wakes the waiters if they
// differ from the last ones.
func (s *Changes) Observe(inv *discovery.Inventory) {
	if inv == nil {
		return
	}
	var unhealthy []string
	for d := range inv.All() {
		if v := Of(d); !v.Healthy {
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

// Wait returns a channel closed at the next change.
func (s *Changes) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// DevicePlugin is a device's health in the device-plugin API's words.
func DevicePlugin(d *discovery.Device) string {
	if Of(d).Healthy {
		return "Healthy"
	}
	return "Unhealthy"
}
