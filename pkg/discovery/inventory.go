package discovery

import (
	"fmt"
	"slices"
	"strings"
)

// Problem records a device or attribute that discovery skipped, and why.
// Problems are also logged; keeping them lets callers and tests see them.
type Problem struct {
	// Device is the PCI address or auxiliary device name concerned.
	Device string
	// Attribute is the attribute left out, or empty when the whole device was skipped.
	Attribute string
	Err       error
}

func (p Problem) String() string {
	if p.Attribute == "" {
		return fmt.Sprintf("device %s skipped: %v", p.Device, p.Err)
	}
	return fmt.Sprintf("device %s: attribute %s skipped: %v", p.Device, p.Attribute, p.Err)
}

// Exclusion is a network or accelerator PCI function that is not a device,
// and why.
type Exclusion struct {
	PCIAddress string
	IfName     string
	Reason     string
}

// Inventory is an immutable snapshot of a host's devices, sorted by name.
type Inventory struct {
	devices  []Device
	byName   map[string]int
	problems []Problem
	excluded []Exclusion
	uplinks  Uplinks
}

func newInventory(devs []Device, problems []Problem) *Inventory {
	slices.SortFunc(devs, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	inv := &Inventory{devices: devs, byName: make(map[string]int, len(devs)), problems: problems}
	for i := range devs {
		inv.byName[devs[i].Name] = i
	}
	return inv
}

// NewInventory builds an inventory from devices, for tests and tools that
// need one without a host.
func NewInventory(devs []Device) *Inventory {
	return newInventory(slices.Clone(devs), nil)
}

// Len is the number of devices.
func (inv *Inventory) Len() int { return len(inv.devices) }

// Devices returns the devices sorted by name. The slice is a copy; the
// Device values share their slices with the inventory and must not be modified.
func (inv *Inventory) Devices() []Device { return slices.Clone(inv.devices) }

// All iterates the devices in name order without copying the list.
func (inv *Inventory) All() func(yield func(*Device) bool) {
	return func(yield func(*Device) bool) {
		for i := range inv.devices {
			if !yield(&inv.devices[i]) {
				return
			}
		}
	}
}

// Get returns the device with the given name.
func (inv *Inventory) Get(name string) (Device, bool) {
	i, ok := inv.byName[name]
	if !ok {
		return Device{}, false
	}
	return inv.devices[i], true
}

// Problems lists what discovery skipped.
func (inv *Inventory) Problems() []Problem { return slices.Clone(inv.problems) }

// Excluded lists the functions that are not devices, by PCI address.
func (inv *Inventory) Excluded() []Exclusion { return slices.Clone(inv.excluded) }

// Uplinks are the functions carrying the host's default routes, as found by
// this discovery.
func (inv *Inventory) Uplinks() Uplinks { return inv.uplinks }
