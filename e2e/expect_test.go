//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// expectedDevices works out, from a simulated host's spec alone, the devices
// sriov-dra must offer: every VF, every SF, and every PF or accelerator with
// no VFs enabled, except a NIC that carries the default route. VF addresses
// follow the PCI SR-IOV rule: routing ID of the PF + offset + index*stride.
func expectedDevices(t testing.TB, spec simhost.Spec) []string {
	t.Helper()
	var out []string
	for _, pf := range spec.PFs {
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
				rid := bus<<8 | dev<<3 | fn + offset + i*stride
				out = append(out, fmt.Sprintf("pci-%04x-%02x-%02x-%x", domain, rid>>8&0xff, rid>>3&0x1f, rid&7))
			}
		case !pf.DefaultRoute:
			out = append(out, "pci-"+strings.NewReplacer(":", "-", ".", "-").Replace(pf.Address))
		}
		for _, sf := range pf.SFs {
			out = append(out, fmt.Sprintf("aux-mlx5-core-sf-%d", sf.ID))
		}
	}
	slices.Sort(out)
	return out
}
