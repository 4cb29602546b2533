package v1

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sriov-dra/sriov-dra/pkg/pfrange"
)

var (
	resourceNameRE = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)
	// A prefix is a DNS subdomain, as in an extended resource name.
	resourcePrefixRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hexIDRE          = regexp.MustCompile(`^[0-9a-fA-F]{4}$`)
	pciAddressRE     = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$`)
)

// selectorsByType lists the selector fields each device type accepts, as the
// classic README's tables give them (plus acpiIndexes and pKeys, which the
// current classic plugin accepts for network devices).
var selectorsByType = map[string]map[string]bool{
	DeviceTypeAccelerator: set("vendors", "devices", "drivers", "pciAddresses"),
	DeviceTypeNet: set("vendors", "devices", "drivers", "pciAddresses", "acpiIndexes", "pfNames", "rootDevices",
		"linkTypes", "isRdma", "ddpProfiles", "needVhostNet", "vdpaType", "pKeys"),
	// needVhostNet too: the classic plugin accepts it for auxiliary devices.
	DeviceTypeAuxNet: set("vendors", "devices", "drivers", "pfNames", "rootDevices", "linkTypes", "isRdma", "auxTypes", "needVhostNet"),
}

// selectorKeys are the JSON names of every selector field.
var selectorKeys = func() map[string]bool {
	all := map[string]bool{}
	for _, fields := range selectorsByType {
		for k := range fields {
			all[k] = true
		}
	}
	return all
}()

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// Default fills the pool defaults: the resource prefix (the command line's,
// intel.com unless changed) and the netDevice device type; and it writes
// hexadecimal selector values in lower case.
func (c *Config) Default(defaultPrefix string) {
	if defaultPrefix == "" {
		defaultPrefix = DefaultResourcePrefix
	}
	for i := range c.ResourceList {
		r := &c.ResourceList[i]
		if r.ResourcePrefix == "" {
			r.ResourcePrefix = defaultPrefix
		}
		if r.DeviceType == "" {
			r.DeviceType = DeviceTypeNet
		}
		// Hex IDs, PCI addresses and partition keys in lower case, as
		// sysfs writes them: users write "15B3" too, and validation accepts it.
		for j := range r.Selectors {
			sel := &r.Selectors[j]
			for _, vals := range [][]string{sel.Vendors, sel.Devices, sel.PCIAddresses, sel.RootDevices, sel.PKeys} {
				for k, v := range vals {
					vals[k] = strings.ToLower(v)
				}
			}
		}
	}
}

// Validate returns every problem found, each naming the pool, the field and
// the value. Call Default first.
func (c *Config) Validate() error {
	if len(c.ResourceList) == 0 {
		return errors.New("resourceList: must have at least one pool")
	}
	var errs []error
	seen := map[string]int{}
	for i := range c.ResourceList {
		r := &c.ResourceList[i]
		fail := func(field string, format string, args ...any) {
			errs = append(errs, fmt.Errorf("resourceList[%d] (%s): %s: %s", i, r.ResourceName, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case r.ResourceName == "":
			fail("resourceName", "is required")
		case !resourceNameRE.MatchString(r.ResourceName):
			fail("resourceName", "%q may contain only letters, digits and underscores", r.ResourceName)
		}
		if !resourcePrefixRE.MatchString(r.ResourcePrefix) {
			fail("resourcePrefix", "%q is not a DNS subdomain such as intel.com", r.ResourcePrefix)
		}
		if j, dup := seen[r.FullName()]; dup {
			fail("resourceName", "%q is already used by resourceList[%d]", r.FullName(), j)
		} else {
			seen[r.FullName()] = i
		}
		allowed, ok := selectorsByType[r.DeviceType]
		if !ok {
			fail("deviceType", "%q is not one of netDevice, accelerator, auxNetDevice", r.DeviceType)
			continue
		}
		for k, s := range r.Selectors {
			s.validate(fmt.Sprintf("selectors[%d]", k), r.DeviceType, allowed, fail)
		}
		for key, info := range r.AdditionalInfo {
			for name := range info {
				if name == "" {
					fail(fmt.Sprintf("additionalInfo[%q]", key), "has an empty key")
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Selectors) validate(at, deviceType string, allowed map[string]bool, fail func(string, string, ...any)) {
	for _, k := range s.present {
		if !allowed[k] {
			fail(at+"."+k, "is not a selector for deviceType %s", deviceType)
		}
	}
	each := func(field string, vals []string, check func(string) error) {
		for j, v := range vals {
			if err := check(v); err != nil {
				fail(fmt.Sprintf("%s.%s[%d]", at, field, j), "%q: %v", v, err)
			}
		}
	}
	hexID := func(v string) error {
		if !hexIDRE.MatchString(v) {
			return errors.New("want 4 hexadecimal digits without 0x")
		}
		return nil
	}
	each("vendors", s.Vendors, hexID)
	each("devices", s.Devices, hexID)
	each("pciAddresses", s.PCIAddresses, func(v string) error {
		if !pciAddressRE.MatchString(v) {
			return errors.New("want a PCI address like 0000:3b:02.0")
		}
		return nil
	})
	rangeCheck := func(v string) error { _, err := pfrange.Parse(v); return err }
	each("pfNames", s.PfNames, rangeCheck)
	each("rootDevices", s.RootDevices, rangeCheck)
	if s.VdpaType != "" && s.VdpaType != "vhost" && s.VdpaType != "virtio" {
		fail(at+".vdpaType", "%q is not vhost or virtio", s.VdpaType)
	}
	if s.IsRdma && s.VdpaType != "" {
		fail(at+".isRdma", "true cannot be combined with vdpaType %q", s.VdpaType)
	}
	for _, field := range []struct {
		name string
		vals []string
	}{{"drivers", s.Drivers}, {"linkTypes", s.LinkTypes}, {"auxTypes", s.AuxTypes}, {"ddpProfiles", s.DDPProfiles}, {"acpiIndexes", s.AcpiIndexes}, {"pKeys", s.PKeys}} {
		each(field.name, field.vals, func(v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			return nil
		})
	}
}
