//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// expectedDevices works out, from a simulated host's spec alone, the devices
// sriov-dra must offer: every VF, every SF, and every PF or accelerator with
// no VFs enabled, except a function under a default route (its own, or one
// of a bond, bridge or VLAN it is part of). VF addresses follow the PCI
// SR-IOV rule: routing ID of the PF + offset + index*stride.
func expectedDevices(t testing.TB, spec simhost.Spec) []string {
	t.Helper()
	uplink := map[string]bool{}
	var under func(name string)
	under = func(name string) {
		uplink[name] = true
		for _, u := range spec.Uppers {
			if u.Name == name {
				for _, l := range u.Lowers {
					under(l)
				}
			}
		}
	}
	for _, u := range spec.Uppers {
		if u.DefaultRoute {
			under(u.Name)
		}
	}
	var out []string
	for _, pf := range spec.PFs {
		if pf.DefaultRoute {
			uplink[pf.IfName] = true
		}
		offset, stride := pf.VFOffset, pf.VFStride
		if pf.Model != "" {
			m, ok := simhost.Model(pf.Model)
			require.True(t, ok, "model %s", pf.Model)
			if offset == 0 {
				offset, stride = m.VFOffset, m.VFStride
			}
		}
		if stride == 0 {
			stride = 1
		}
		switch {
		case pf.NumVFs > 0:
			var domain, bus, dev, fn int
			_, err := fmt.Sscanf(pf.Address, "%04x:%02x:%02x.%1x", &domain, &bus, &dev, &fn)
			require.NoError(t, err, pf.Address)
			for i := range pf.NumVFs {
				if slices.ContainsFunc(pf.VFs, func(vf simhost.VF) bool { return vf.Index == i && vf.DefaultRoute }) {
					continue
				}
				rid := bus<<8 | dev<<3 | fn + offset + i*stride
				out = append(out, fmt.Sprintf("pci-%04x-%02x-%02x-%x", domain, rid>>8&0xff, rid>>3&0x1f, rid&7))
			}
		case pf.IfName == "" || !uplink[pf.IfName]:
			out = append(out, "pci-"+strings.NewReplacer(":", "-", ".", "-").Replace(pf.Address))
		}
		for _, sf := range pf.SFs {
			out = append(out, fmt.Sprintf("aux-mlx5-core-sf-%d", sf.ID))
		}
	}
	slices.Sort(out)
	return out
}

// TestRealUplinkNotOffered: on the machine the tests run on, the NIC under
// the default route (read here from the real /proc and /sys, not by
// sriov-dra) is not among the devices discovery offers on the real /sys.
func TestRealUplinkNotOffered(t *testing.T) {
	route, err := os.ReadFile("/proc/net/route")
	require.NoError(t, err)
	var uplinks []string
	for _, line := range strings.Split(string(route), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			dev, err := filepath.EvalSymlinks("/sys/class/net/" + f[0] + "/device")
			if err != nil {
				t.Logf("default-route interface %s has no device (virtual)", f[0])
				continue
			}
			// The PCI function is the last path element shaped like one
			// (a virtio NIC's device is the virtio child of its function).
			for _, part := range strings.Split(dev, "/") {
				if len(part) == 12 && part[4] == ':' && part[7] == ':' && part[10] == '.' {
					dev = part
				}
			}
			uplinks = append(uplinks, dev)
		}
	}
	if len(uplinks) == 0 {
		t.Skip("this machine has no default route on a PCI device")
	}
	out, err := exec.Command(filepath.Join(*binDir, "sriov-dra"), "discover", "-o", "json").Output()
	require.NoError(t, err)
	var got struct {
		Devices []struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"devices"`
	}
	require.NoError(t, json.Unmarshal(out, &got))
	for _, d := range got.Devices {
		assert.NotContains(t, uplinks, d.Attributes["pciAddress"], "the uplink is offered")
	}
	t.Logf("uplink functions %v are not among the %d devices offered", uplinks, len(got.Devices))
}
