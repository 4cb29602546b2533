package convert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	dracel "k8s.io/dynamic-resource-allocation/cel"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/convert"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

const driver = "sriov.dra.dev"

// host is a simulated host as the scheduler sees it: each device's
// published attributes, and the values a generated selector may use.
type host struct {
	name      string
	inv       *discovery.Inventory
	published map[string]resourceapi.Device
	values    map[string][]string // selector field → values present on the host
}

func newHost(t *testing.T, name string, spec simhost.Spec) *host {
	h, _ := simhosttest.NewHost(t, spec)
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	out := &host{name: name, inv: inv, published: map[string]resourceapi.Device{}, values: map[string][]string{}}
	add := func(field, v string) {
		if v != "" && !slices.Contains(out.values[field], v) {
			out.values[field] = append(out.values[field], v)
		}
	}
	for d := range inv.All() {
		dev, problems := resourceslices.Device(d, nil)
		require.Empty(t, problems)
		out.published[d.Name] = dev
		add("vendors", d.Vendor)
		add("devices", d.DeviceID)
		add("drivers", d.Driver)
		add("pciAddresses", d.PCIAddress)
		add("acpiIndexes", d.AcpiIndex)
		add("pfNames", d.PFName)
		add("rootDevices", d.RootDevice)
		add("linkTypes", d.LinkType)
		add("ddpProfiles", d.DDPProfile)
		add("vdpaType", d.VDPAType)
		add("auxTypes", d.AuxType)
		for _, k := range d.PKeys {
			add("pKeys", k)
		}
	}
	for _, vals := range out.values {
		sort.Strings(vals)
	}
	return out
}

// gen writes random classic configs over a host's values.
type gen struct {
	rng *rand.Rand
	h   *host
}

func (g gen) pick(vals []string) string { return vals[g.rng.IntN(len(vals))] }

// some is one to three of the host's values for field, now and then one the
// host does not have.
func (g gen) some(field string) []string {
	vals := g.h.values[field]
	var out []string
	for range 1 + g.rng.IntN(3) {
		if len(vals) == 0 || g.rng.IntN(8) == 0 {
			out = append(out, map[string]string{"vendors": "abcd", "devices": "0bad", "pciAddresses": "0000:ff:1f.7", "rootDevices": "0000:fe:00.0", "pKeys": "0x9999"}[field])
			if out[len(out)-1] == "" {
				out[len(out)-1] = "absent"
			}
			continue
		}
		v := g.pick(vals)
		if g.rng.IntN(4) == 0 && (field == "vendors" || field == "devices" || field == "pciAddresses" || field == "pfNames" || field == "pKeys") {
			v = strings.ToUpper(v) // either case names the same
		}
		out = append(out, v)
	}
	return out
}

// ranged adds "#a-b,c" ranges to PF entries now and then.
func (g gen) ranged(entries []string) []string {
	for i := range entries {
		switch g.rng.IntN(3) {
		case 0:
			lo := g.rng.IntN(8)
			entries[i] += fmt.Sprintf("#%d-%d", lo, lo+g.rng.IntN(6))
		case 1:
			entries[i] += fmt.Sprintf("#%d,%d", g.rng.IntN(6), g.rng.IntN(140))
		}
	}
	return entries
}

func (g gen) selector(deviceType string) map[string]any {
	s := map[string]any{}
	fields := map[string][]string{
		classic.DeviceTypeNet:         {"vendors", "devices", "drivers", "pciAddresses", "acpiIndexes", "pfNames", "rootDevices", "linkTypes", "isRdma", "ddpProfiles", "vdpaType", "pKeys", "needVhostNet"},
		classic.DeviceTypeAuxNet:      {"vendors", "devices", "drivers", "pfNames", "rootDevices", "linkTypes", "isRdma", "auxTypes", "needVhostNet"},
		classic.DeviceTypeAccelerator: {"vendors", "devices", "drivers", "pciAddresses"},
	}[deviceType]
	for range g.rng.IntN(4) {
		f := fields[g.rng.IntN(len(fields))]
		switch f {
		case "isRdma", "needVhostNet":
			s[f] = g.rng.IntN(2) == 0
		case "vdpaType":
			if vals := g.h.values[f]; len(vals) > 0 && s["isRdma"] != true {
				s[f] = g.pick(vals)
			}
		case "pKeys":
			s[f] = g.some(f)
		case "pfNames", "rootDevices":
			s[f] = g.ranged(g.some(f))
		default:
			s[f] = g.some(f)
		}
	}
	if s["isRdma"] == true {
		delete(s, "vdpaType")
	}
	return s
}

func (g gen) config() []byte {
	types := []string{classic.DeviceTypeNet, classic.DeviceTypeNet, classic.DeviceTypeNet, classic.DeviceTypeAuxNet, classic.DeviceTypeAccelerator}
	var pools []map[string]any
	for i := range 1 + g.rng.IntN(4) {
		p := map[string]any{"resourceName": fmt.Sprintf("pool%d", i), "deviceType": g.pick(types)}
		switch n := g.rng.IntN(4); n {
		case 0: // no selectors: every device of the type
		case 1:
			p["selectors"] = g.selector(p["deviceType"].(string))
		default:
			var list []map[string]any
			for range n {
				list = append(list, g.selector(p["deviceType"].(string)))
			}
			p["selectors"] = list
		}
		pools = append(pools, p)
	}
	b, _ := json.Marshal(map[string]any{"resourceList": pools})
	return b
}

// TestConvertedClassesSelectWhatPoolsSelect is the proof of the selectors
// mode: for every simulated profile and generated configs over the values
// present on it (ranges, both cases, several pools of a type), the CEL of
// each converted class, compiled and evaluated by the scheduler's own CEL
// environment with its cost limits, matches exactly the devices the classic
// selector put in that pool.
func TestConvertedClassesSelectWhatPoolsSelect(t *testing.T) {
	const configs = 10000
	var hosts []*host
	for _, name := range simhost.ProfileNames() {
		spec, ok := simhost.Profile(name)
		require.True(t, ok)
		if name == "large" {
			continue // the same E810 as e810, 170 times over: slow, no new case
		}
		hosts = append(hosts, newHost(t, name, spec))
	}
	hosts = append(hosts, newHost(t, "all profiles but large", withoutLarge(t)),
		newHost(t, "the classic README example's host", simhost.ClassicExample()))
	compiler := dracel.GetCompiler(dracel.Features{})
	rng := rand.New(rand.NewPCG(1, 2))
	checked, devicesChecked, nonEmpty, invalid := 0, 0, 0, 0
	for checked < configs {
		h := hosts[checked%len(hosts)]
		data := gen{rng: rng, h: h}.config()
		cfg, err := classic.Parse(data, "")
		if err != nil {
			invalid++ // e.g. a pool name repeated; the generator is not the subject
			require.Less(t, invalid, configs, "the generator writes almost only invalid configs: %v", err)
			continue
		}
		want, err := selector.Select(cfg, h.inv)
		require.NoError(t, err)
		pools, err := convert.Convert(cfg, convert.Options{DriverName: driver, Mode: convert.ModeSelectors})
		require.NoError(t, err, "%s", data)
		for i, p := range pools {
			expr := p.Class.Spec.Selectors[0].CEL.Expression
			require.LessOrEqual(t, len(expr), resourceapi.CELSelectorExpressionMaxLength, "%s: pool %d", data, i)
			compiled := compiler.CompileCELExpression(expr, dracel.Options{})
			require.Nil(t, compiled.Error, "%s: pool %d: %s", data, i, expr)
			require.LessOrEqual(t, compiled.MaxCost, uint64(resourceapi.CELSelectorExpressionMaxCost), "%s: pool %d", data, i)
			var got []string
			for name, dev := range h.published {
				ok, _, err := compiled.DeviceMatches(context.Background(), dracel.Device{Driver: driver, Attributes: dev.Attributes})
				require.NoError(t, err, "%s: pool %d, device %s: %s", data, i, name, expr)
				if ok {
					got = append(got, name)
				}
				devicesChecked++
			}
			var expected []string
			for _, d := range want.Pools[i].Devices {
				expected = append(expected, d.Name)
			}
			slices.Sort(got)
			slices.Sort(expected)
			require.Equal(t, expected, got, "host %s, config %s, pool %d: %s", h.name, data, i, expr)
			if len(expected) > 0 {
				nonEmpty++
			}
		}
		checked++
	}
	t.Logf("%d configs on %d hosts (%d generated configs were invalid and skipped), %d device evaluations, %d pools that selected devices",
		checked, len(hosts), invalid, devicesChecked, nonEmpty)
}

// withoutLarge is every profile but large, on one host.
func withoutLarge(t *testing.T) simhost.Spec {
	var names []string
	for _, n := range simhost.ProfileNames() {
		if n != "large" {
			names = append(names, n)
		}
	}
	spec, err := simhost.Combine(names...)
	require.NoError(t, err)
	return spec
}
