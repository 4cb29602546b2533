// Package v1 holds the classic sriov-network-device-plugin configuration
// (the "config.json" of its ConfigMap), read verbatim so that existing
// ConfigMaps keep working with sriov-dra.
package v1

import "maps"

// DefaultResourcePrefix is the classic plugin's default --resource-prefix.
const DefaultResourcePrefix = "intel.com"

// Device types a pool may hold.
const (
	DeviceTypeNet         = "netDevice"
	DeviceTypeAccelerator = "accelerator"
	DeviceTypeAuxNet      = "auxNetDevice"
)

// Config is the whole classic config file.
type Config struct {
	ResourceList []ResourceConfig `json:"resourceList"`
}

// ResourceConfig is one resource pool.
type ResourceConfig struct {
	ResourceName    string `json:"resourceName"`
	ResourcePrefix  string `json:"resourcePrefix,omitempty"`
	DeviceType      string `json:"deviceType,omitempty"`
	ExcludeTopology bool   `json:"excludeTopology,omitempty"`
	// Selectors is one selector object or an array of them; a device
	// matching any of them joins the pool.
	Selectors SelectorList `json:"selectors,omitempty"`
	// AdditionalInfo maps "*" or a device ID to extra key/values for the
	// device's _INFO environment.
	AdditionalInfo map[string]map[string]string `json:"additionalInfo,omitempty"`
}

// FullName is the extended resource name, "<prefix>/<name>".
func (r *ResourceConfig) FullName() string {
	return r.ResourcePrefix + "/" + r.ResourceName
}

// Selectors narrows the devices of a pool. Fields are ANDed; the values
// within one field are ORed.
type Selectors struct {
	Vendors      []string `json:"vendors,omitempty"`
	Devices      []string `json:"devices,omitempty"`
	Drivers      []string `json:"drivers,omitempty"`
	PCIAddresses []string `json:"pciAddresses,omitempty"`
	AcpiIndexes  []string `json:"acpiIndexes,omitempty"`
	PfNames      []string `json:"pfNames,omitempty"`
	RootDevices  []string `json:"rootDevices,omitempty"`
	LinkTypes    []string `json:"linkTypes,omitempty"`
	DDPProfiles  []string `json:"ddpProfiles,omitempty"`
	PKeys        []string `json:"pKeys,omitempty"`
	IsRdma       bool     `json:"isRdma,omitempty"`
	NeedVhostNet bool     `json:"needVhostNet,omitempty"`
	VdpaType     string   `json:"vdpaType,omitempty"`
	AuxTypes     []string `json:"auxTypes,omitempty"`

	// present records the JSON keys that were written, so validation can
	// name a selector that does not belong to the pool's device type even
	// when its value is empty.
	present []string
}

// SelectorList is the selectors field: one object or an array of objects.
type SelectorList []Selectors

// AdditionalInfoFor returns the extra info for a device: the "*" entries,
// overridden key by key by the entries for the device's ID.
func (r *ResourceConfig) AdditionalInfoFor(id string) map[string]string {
	all, specific := r.AdditionalInfo["*"], r.AdditionalInfo[id]
	if len(all) == 0 && len(specific) == 0 {
		return nil
	}
	out := make(map[string]string, len(all)+len(specific))
	maps.Copy(out, all)
	maps.Copy(out, specific)
	return out
}
