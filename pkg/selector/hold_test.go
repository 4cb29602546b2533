package selector_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// In the classic README's example host, 0000:3b:02.0 and .1 are iavf VFs of
// the netdevice pool and 0000:3b:02.2 and .3 vfio-pci VFs of the dpdk pool.
func TestHold(t *testing.T) {
	const (
		netdevice = "intel.com/intel_sriov_netdevice"
		dpdk      = "intel.com/intel_sriov_dpdk"
	)
	shimServesDPDK := func(pool string) bool { return pool == dpdk }
	tests := []struct {
		name      string
		allocated map[string]selector.Allocated
		serves    func(string) bool
		want      map[string][]string
	}{{
		name: "a VF rebound to vfio-pci stays in the netdevice pool it was allocated from",
		// .2 stands for a netdevice VF that a claim rebound to vfio-pci:
		// by its driver now it falls in the dpdk pool.
		allocated: map[string]selector.Allocated{"pci-0000-3b-02-2": {Pool: netdevice, PoolKnown: true}},
		want: map[string][]string{
			netdevice: {"0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.3", "0000:5b:02.0"},
		},
	}, {
		name:      "a VF allocated from no pool is in none while held",
		allocated: map[string]selector.Allocated{"pci-0000-3b-02-1": {Pool: "", PoolKnown: true}},
		want: map[string][]string{
			netdevice: {"0000:3b:02.0", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0"},
		},
	}, {
		name:      "a held VF whose pool is unknown is taken out of the shim's pool",
		allocated: map[string]selector.Allocated{"pci-0000-3b-02-3": {}},
		serves:    shimServesDPDK,
		want: map[string][]string{
			netdevice: {"0000:3b:02.0", "0000:3b:02.1", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.2", "0000:5b:02.0"},
		},
	}, {
		name:      "a held VF recorded in the shim's pool is not offered by it",
		allocated: map[string]selector.Allocated{"pci-0000-3b-02-1": {Pool: dpdk, PoolKnown: true}},
		serves:    shimServesDPDK,
		want: map[string][]string{
			netdevice: {"0000:3b:02.0", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0"},
		},
	}, {
		name:      "a pool gone from the config leaves its held VF in none",
		allocated: map[string]selector.Allocated{"pci-0000-3b-02-0": {Pool: "intel.com/gone", PoolKnown: true}},
		want: map[string][]string{
			netdevice: {"0000:3b:02.1", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0"},
		},
	}, {
		name:      "a held device no longer on the host changes nothing",
		allocated: map[string]selector.Allocated{"pci-0000-3b-0f-7": {Pool: netdevice, PoolKnown: true}},
		serves:    shimServesDPDK,
		want: map[string][]string{
			netdevice: {"0000:3b:02.0", "0000:3b:02.1", "0000:5b:02.1"},
			dpdk:      {"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0"},
		},
	}}
	cfg, err := classic.Load("../../api/classic/v1/testdata/classic-readme-example.json", "")
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, inv := selectPools(t, exampleHost(), cfg)
			res.Hold(tt.allocated, inv, tt.serves)
			got := poolIDs(res)
			assert.Equal(t, tt.want[netdevice], got[netdevice], netdevice)
			assert.Equal(t, tt.want[dpdk], got[dpdk], dpdk)
			// PoolOf agrees with the lists.
			for i := range res.Pools {
				for _, d := range res.Pools[i].Devices {
					p, ok := res.PoolFor(d.Name)
					if assert.True(t, ok, d.Name) {
						assert.Equal(t, res.Pools[i].Name(), p.Name(), d.Name)
					}
				}
			}
			for name := range tt.allocated {
				if _, onHost := inv.Get(name); !onHost {
					_, ok := res.PoolFor(name)
					assert.False(t, ok, "%s is not on the host: in no pool", name)
					continue
				}
				if p, ok := res.PoolFor(name); ok {
					assert.Contains(t, got[p.Name()], idOf(name), "%s is listed in the pool PoolOf names", name)
				}
			}
		})
	}
}

// idOf turns a PCI device name (pci-0000-3b-02-2) into its address.
func idOf(name string) string {
	b := []byte(name[len("pci-"):])
	b[4], b[7], b[10] = ':', ':', '.'
	return string(b)
}
