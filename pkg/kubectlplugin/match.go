package kubectlplugin

import (
	"context"
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/cel"
)

// matcher evaluates DeviceSelectors with the CEL library and environment the
// scheduler's allocator uses, so a verdict here is the scheduler's.
type matcher struct {
	driver string
	cache  *cel.Cache
}

func newMatcher(driver string) *matcher {
	// Both features on: an expression the cluster accepted compiles here
	// whatever its gates; they only widen what compiles.
	return &matcher{driver: driver, cache: cel.NewCache(100, cel.Features{EnableConsumableCapacity: true, EnableListTypeAttributes: true})}
}

// selector is one CEL selector and where it comes from, for messages.
type selector struct {
	From       string // "class vf" or "request"
	Index      int    // 1-based, as a person counts
	Expression string
}

func (s selector) String() string {
	return fmt.Sprintf("%s selector %d (%s)", s.From, s.Index, s.Expression)
}

// selectorsOf lists the CEL selectors of a class, then a request's: the
// order in which the allocator tests them.
func selectorsOf(class *resourceapi.DeviceClass, request []resourceapi.DeviceSelector) []selector {
	var out []selector
	add := func(from string, sels []resourceapi.DeviceSelector) {
		for i, s := range sels {
			if s.CEL != nil {
				out = append(out, selector{From: from, Index: i + 1, Expression: s.CEL.Expression})
			}
		}
	}
	if class != nil {
		add("class "+class.Name, class.Spec.Selectors)
	}
	add("request", request)
	return out
}

func (m *matcher) matches(ctx context.Context, s selector, d *Device) (bool, error) {
	expr := m.cache.GetOrCompile(s.Expression)
	if expr.Error != nil {
		return false, fmt.Errorf("%s: %w", s, expr.Error)
	}
	ok, _, err := expr.DeviceMatches(ctx, cel.Device{
		Driver: m.driver, AllowMultipleAllocations: d.AllowMultipleAllocations,
		Attributes: d.Attributes, Capacity: d.Capacity,
	})
	if err != nil {
		return false, fmt.Errorf("%s on device %s: %w", s, d.Name, cel.EnhanceRuntimeError(err))
	}
	return ok, nil
}

// narrowing is the devices left after each selector.
type narrowing struct {
	Matched []*Device
	// Emptied is the selector that left no device (nil when some match or
	// there was none to begin with), and Before how many it was given.
	Emptied *selector
	Before  int
}

// narrow applies the selectors in order. The allocator stops at the first
// selector a device fails, so the selector that empties the set is the
// one that stands in the way; a CEL error stops here as it does there.
func (m *matcher) narrow(ctx context.Context, devices []*Device, sels []selector) (narrowing, error) {
	left := devices
	for _, s := range sels {
		var next []*Device
		for _, d := range left {
			ok, err := m.matches(ctx, s, d)
			if err != nil {
				return narrowing{}, err
			}
			if ok {
				next = append(next, d)
			}
		}
		if len(next) == 0 && len(left) > 0 {
			return narrowing{Emptied: &s, Before: len(left)}, nil
		}
		left = next
	}
	return narrowing{Matched: left}, nil
}
