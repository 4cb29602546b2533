package prepare

import (
	"fmt"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

// requestConfig merges the opaque NetConfigs that apply to a request: the
// DeviceClass configs first, then the claim's, each only where it names the
// request, its parent request (for a firstAvailable subrequest) or none.
// A claim's config may set a class-only field only where the class configs
// grant it (claimMaySet); granted lists those it does set.
// Errors name the config as the user wrote it: "claim config[1]" is
// spec.devices.config[1] of the claim, "class sriov-dpdk config[0]" is
// spec.config[0] of that DeviceClass.
func requestConfig(driverName string, c *resourceapi.ResourceClaim, request string) (out netconfig.NetConfig, granted []string, err error) {
	base, _, _ := strings.Cut(request, "/")
	all := c.Status.Allocation.Devices.Config
	for _, source := range []resourceapi.AllocationConfigSource{resourceapi.AllocationConfigSourceClass, resourceapi.AllocationConfigSourceClaim} {
		for i, cfg := range all {
			if cfg.Source != source || cfg.Opaque == nil || cfg.Opaque.Driver != driverName {
				continue
			}
			if len(cfg.Requests) > 0 && !slices.Contains(cfg.Requests, request) && !slices.Contains(cfg.Requests, base) {
				continue
			}
			nc, err := netconfig.Decode(cfg.Opaque.Parameters.Raw)
			if err != nil {
				return out, nil, fmt.Errorf("%s: %w", configName(c, all, i), err)
			}
			if source == resourceapi.AllocationConfigSourceClaim {
				// The grants are those of the class configs the scheduler
				// copied at allocation, merged into out before any claim's.
				used, err := netconfig.CheckClaim(nc, requestClass(c, request), out.ClaimMaySet)
				if err != nil {
					return out, nil, fmt.Errorf("%s: %w", configName(c, all, i), err)
				}
				granted = append(granted, used...)
			}
			out = out.Merge(nc)
		}
	}
	slices.Sort(granted)
	return out, slices.Compact(granted), nil
}

// configName names the i-th allocation config by where the user wrote it:
// the claim's own spec.devices.config index, or the DeviceClass and the
// index among that class's configs (the scheduler copies a class's configs
// once, in order, listing the requests that use the class).
func configName(c *resourceapi.ResourceClaim, all []resourceapi.DeviceAllocationConfiguration, i int) string {
	cfg := all[i]
	if cfg.Source == resourceapi.AllocationConfigSourceClaim {
		for j, spec := range c.Spec.Devices.Config {
			if spec.Opaque != nil && cfg.Opaque != nil && slices.Equal(spec.Requests, cfg.Requests) &&
				string(spec.Opaque.Parameters.Raw) == string(cfg.Opaque.Parameters.Raw) {
				return fmt.Sprintf("claim config[%d]", j)
			}
		}
		return "claim config"
	}
	class := configClass(c, cfg)
	n := 0
	for _, prev := range all[:i] {
		if prev.Source == cfg.Source && configClass(c, prev) == class {
			n++
		}
	}
	if class == "" {
		return fmt.Sprintf("class config[%d]", n)
	}
	return fmt.Sprintf("class %s config[%d]", class, n)
}

// configClass is the DeviceClass a class-sourced config came from: the class
// of the requests it applies to (all of the claim's when it lists none).
func configClass(c *resourceapi.ResourceClaim, cfg resourceapi.DeviceAllocationConfiguration) string {
	if len(cfg.Requests) > 0 {
		return requestClass(c, cfg.Requests[0])
	}
	if len(c.Spec.Devices.Requests) > 0 {
		r := c.Spec.Devices.Requests[0]
		if r.Exactly != nil {
			return r.Exactly.DeviceClassName
		}
	}
	return ""
}

// requestClass is the DeviceClass a request (or "request/subrequest" of a
// firstAvailable list) asked for, or "" if the claim has no such request.
func requestClass(c *resourceapi.ResourceClaim, request string) string {
	base, sub, _ := strings.Cut(request, "/")
	for _, r := range c.Spec.Devices.Requests {
		if r.Name != base {
			continue
		}
		if r.Exactly != nil {
			return r.Exactly.DeviceClassName
		}
		for _, s := range r.FirstAvailable {
			if s.Name == sub {
				return s.DeviceClassName
			}
		}
	}
	return ""
}

// classResourceName is the PCIDEVICE_ name a DeviceClass gives when no
// config names one: its extended resource name (KEP-5004), else its name.
func classResourceName(classes map[string]*resourceapi.DeviceClass, name string) (string, error) {
	class, ok := classes[name]
	if !ok || class == nil {
		return "", fmt.Errorf("device class %s not found", name)
	}
	if ern := class.Spec.ExtendedResourceName; ern != nil && *ern != "" {
		return *ern, nil
	}
	return class.Name, nil
}

// ClassNames lists the DeviceClasses the claims' requests name, so that the
// caller can look them up before planning.
func ClassNames(claims []*resourceapi.ResourceClaim) []string {
	var out []string
	for _, c := range claims {
		for _, r := range c.Spec.Devices.Requests {
			if r.Exactly != nil {
				out = append(out, r.Exactly.DeviceClassName)
			}
			for _, s := range r.FirstAvailable {
				out = append(out, s.DeviceClassName)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
