package convert

import (
	"fmt"
	"strconv"
	"strings"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/pfrange"
)

// SelectorExpression is the CEL that selects exactly what pool i of cfg
// selects: a device of the pool's type that one of its selector objects
// matches, and that no earlier pool of the same type took (the classic
// plugin hands each device to the first pool that selects it).
func SelectorExpression(cfg *classic.Config, i int, driver string) (string, error) {
	a := "device.attributes[" + quote(driver) + "]"
	own, err := poolMatch(&cfg.ResourceList[i], a)
	if err != nil {
		return "", err
	}
	parts := []string{"device.driver == " + quote(driver), own}
	for j := range i {
		earlier := &cfg.ResourceList[j]
		if earlier.DeviceType != cfg.ResourceList[i].DeviceType {
			continue // a device of another type was never offered to it
		}
		m, err := poolMatch(earlier, a)
		if err != nil {
			return "", fmt.Errorf("resourceList[%d] (%s), taken first: %w", j, earlier.FullName(), err)
		}
		parts = append(parts, "!("+m+")")
	}
	return strings.Join(parts, " && "), nil
}

// poolMatch is a pool's own condition: its device type and any of its
// selector objects.
func poolMatch(r *classic.ResourceConfig, a string) (string, error) {
	typ := fmt.Sprintf("%s.%s == %s", a, discovery.AttrDeviceType, quote(r.DeviceType))
	if len(r.Selectors) == 0 {
		return typ, nil
	}
	var anyOf []string
	for k := range r.Selectors {
		m, err := selectorMatch(&r.Selectors[k], a)
		if err != nil {
			return "", fmt.Errorf("selectors[%d].%w", k, err)
		}
		anyOf = append(anyOf, "("+m+")")
	}
	if len(anyOf) == 1 {
		return typ + " && " + anyOf[0], nil
	}
	return typ + " && (" + strings.Join(anyOf, " || ") + ")", nil
}

// selectorMatch is one selector object: its fields ANDed, each field's
// values ORed. An attribute a device lacks matches nothing, as the empty
// value the classic plugin compares matches no selector value.
func selectorMatch(s *classic.Selectors, a string) (string, error) {
	var and []string
	has := func(attr string) string { return fmt.Sprintf("%s in %s", quote(attr), a) }
	oneOf := func(attr string, vals []string) {
		if len(vals) == 0 {
			return
		}
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = quote(v)
		}
		value := a + "." + attr
		if len(q) == 1 {
			and = append(and, fmt.Sprintf("(%s && %s == %s)", has(attr), value, q[0]))
			return
		}
		and = append(and, fmt.Sprintf("(%s && %s in [%s])", has(attr), value, strings.Join(q, ", ")))
	}
	oneOf(discovery.AttrVendor, s.Vendors)
	oneOf(discovery.AttrDeviceID, s.Devices)
	oneOf(discovery.AttrDriver, s.Drivers)
	oneOf(discovery.AttrPCIAddress, s.PCIAddresses)
	oneOf(discovery.AttrAcpiIndex, s.AcpiIndexes)
	oneOf(discovery.AttrAuxType, s.AuxTypes)
	for _, f := range []struct {
		field, attr string
		entries     []string
	}{{"pfNames", discovery.AttrPFName, s.PfNames}, {"rootDevices", discovery.AttrRootDevice, s.RootDevices}} {
		if len(f.entries) == 0 {
			continue
		}
		m, err := pfMatch(f.entries, f.attr, a)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.field, err)
		}
		and = append(and, m)
	}
	oneOf(discovery.AttrLinkType, s.LinkTypes)
	oneOf(discovery.AttrDDPProfile, s.DDPProfiles)
	if len(s.PKeys) > 0 {
		// Published comma-separated: any of the device's keys.
		q := make([]string, len(s.PKeys))
		for i, k := range s.PKeys {
			q[i] = quote(k)
		}
		and = append(and, fmt.Sprintf(`(%s && %s.%s.split(",").exists(k, k in [%s]))`, has(discovery.AttrPKeys), a, discovery.AttrPKeys, strings.Join(q, ", ")))
	}
	if s.IsRdma {
		and = append(and, fmt.Sprintf("(%s && %s.%s)", has(discovery.AttrRDMA), a, discovery.AttrRDMA))
	}
	if s.VdpaType != "" {
		oneOf(discovery.AttrVDPAType, []string{s.VdpaType})
	}
	if len(and) == 0 {
		return "true", nil
	}
	return strings.Join(and, " && "), nil
}

// pfMatch is "<PF>[#ranges]" entries: the PF (or root device) named,
// without regard to case, and with ranges the device's VF index (SF number
// for an SF) in one of them.
func pfMatch(entries []string, attr, a string) (string, error) {
	var or []string
	for _, e := range entries {
		sel, err := pfrange.Parse(e)
		if err != nil {
			return "", fmt.Errorf("%q: %w", e, err)
		}
		m := fmt.Sprintf("%s in %s && %s.%s.lowerAscii() == %s", quote(attr), a, a, attr, quote(strings.ToLower(sel.PF)))
		if len(sel.Ranges) > 0 {
			in := func(index string) string {
				var r []string
				for _, rg := range sel.Ranges {
					if rg.First == rg.Last {
						r = append(r, fmt.Sprintf("%s.%s == %d", a, index, rg.First))
					} else {
						r = append(r, fmt.Sprintf("(%s.%s >= %d && %s.%s <= %d)", a, index, rg.First, a, index, rg.Last))
					}
				}
				return fmt.Sprintf("%s in %s && (%s)", quote(index), a, strings.Join(r, " || "))
			}
			m += fmt.Sprintf(" && (%s in %s && %s.%s == %s ? %s : %s)", quote(discovery.AttrFunctionType), a, a, discovery.AttrFunctionType,
				strconv.Quote(string(discovery.FunctionSF)), in(discovery.AttrSFNum), in(discovery.AttrVFIndex))
		}
		or = append(or, "("+m+")")
	}
	if len(or) == 1 {
		return or[0], nil
	}
	return "(" + strings.Join(or, " || ") + ")", nil
}
