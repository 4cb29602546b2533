// Package v1alpha1 is the opaque device configuration a DeviceClass or a
// ResourceClaim passes to sriov-dra (apiVersion sriov.dra.dev/v1alpha1,
// kind NetConfig).
package v1alpha1

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
)

// Group, Version and Kind identify the type in opaque parameters.
const (
	Group      = "sriov.dra.dev"
	Version    = "v1alpha1"
	Kind       = "NetConfig"
	APIVersion = Group + "/" + Version
)

// NetConfig configures how the devices of a request are prepared. Fields
// left unset keep the value from an earlier config (class before claim).
// A claim may set only the claim-safe fields (see fields.go); the others
// come from its DeviceClass, which may grant some of them in ClaimMaySet.
type NetConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ResourceName names the PCIDEVICE_<NAME> variables ("intel.com/sriov_dpdk").
	ResourceName string `json:"resourceName,omitempty"`
	// NeedVhostNet mounts /dev/vhost-net and /dev/net/tun.
	NeedVhostNet *bool `json:"needVhostNet,omitempty"`
	// RDMA mounts the device's RDMA char devices.
	RDMA *bool `json:"rdma,omitempty"`
	// AdditionalInfo is added to each device's _INFO under "extra".
	AdditionalInfo map[string]string `json:"additionalInfo,omitempty"`
	// Driver binds the device to this kernel driver (e.g. vfio-pci) for the
	// claim's lifetime; the original driver is restored on unprepare.
	Driver string `json:"driver,omitempty"`
	// Network moves the device's netdev into the pod and configures it
	// (needs the driver's --nri).
	Network *Network `json:"network,omitempty"`
	// ClaimMaySet, in a DeviceClass's config, names the class-only fields
	// ("network.vlan", "driver", ...) that claims of this class may set.
	ClaimMaySet []string `json:"claimMaySet,omitempty"`
}

var (
	resourceNameRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9][-A-Za-z0-9_.]*$`)
	driverRE       = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_.]*$`)
)

// IsDriverName tells whether s could name a kernel driver.
func IsDriverName(s string) bool { return driverRE.MatchString(s) }

// Decode reads one opaque parameter strictly and validates it.
func Decode(data []byte) (*NetConfig, error) {
	var c NetConfig
	strictErrs, err := sigsjson.UnmarshalStrict(data, &c, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", Kind, err)
	}
	if err := errors.Join(strictErrs...); err != nil {
		return nil, fmt.Errorf("decode %s: %w", Kind, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate names the field and value of every problem.
func (c *NetConfig) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion: %q, want %q", c.APIVersion, APIVersion))
	}
	if c.Kind != Kind {
		errs = append(errs, fmt.Errorf("kind: %q, want %q", c.Kind, Kind))
	}
	if c.ResourceName != "" && (!resourceNameRE.MatchString(c.ResourceName) || len(c.ResourceName) > 253) {
		errs = append(errs, fmt.Errorf("resourceName: %q is not a resource name like intel.com/sriov_net", c.ResourceName))
	}
	if c.Driver != "" && !driverRE.MatchString(c.Driver) {
		errs = append(errs, fmt.Errorf("driver: %q is not a kernel driver name", c.Driver))
	}
	if c.Network != nil {
		if err := c.Network.Validate("network"); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range c.AdditionalInfo {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, errors.New("additionalInfo: empty key"))
		}
	}
	errs = append(errs, c.validateGrants()...)
	return errors.Join(errs...)
}

// Merge returns c with the fields set in later overriding it.
func (c NetConfig) Merge(later *NetConfig) NetConfig {
	if later == nil {
		return c
	}
	if later.ResourceName != "" {
		c.ResourceName = later.ResourceName
	}
	if later.NeedVhostNet != nil {
		c.NeedVhostNet = later.NeedVhostNet
	}
	if later.RDMA != nil {
		c.RDMA = later.RDMA
	}
	if later.Driver != "" {
		c.Driver = later.Driver
	}
	if len(later.AdditionalInfo) > 0 {
		c.AdditionalInfo = mergeMaps(c.AdditionalInfo, later.AdditionalInfo)
	}
	c.Network = c.Network.merge(later.Network)
	if len(later.ClaimMaySet) > 0 {
		// Several class configs grant together.
		c.ClaimMaySet = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(c.ClaimMaySet), later.ClaimMaySet...))))
	}
	return c
}

// Bool reads an optional flag.
func Bool(b *bool) bool { return b != nil && *b }

// mergeMaps returns a new map with a's entries, overridden by b's.
func mergeMaps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}
