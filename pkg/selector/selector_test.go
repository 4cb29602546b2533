package selector_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// exampleHost is built for the classic README's example config.
func exampleHost() simhost.Spec { return simhost.ClassicExample() }

func selectPools(t *testing.T, spec simhost.Spec, cfg *classic.Config) (*selector.Result, *discovery.Inventory) {
	t.Helper()
	h, _ := simhosttest.NewHost(t, spec)
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	res, err := selector.Select(cfg, inv)
	require.NoError(t, err)
	return res, inv
}

func poolIDs(res *selector.Result) map[string][]string {
	out := map[string][]string{}
	for i := range res.Pools {
		out[res.Pools[i].Name()] = res.Pools[i].IDs()
	}
	return out
}

func TestClassicReadmeExample(t *testing.T) {
	cfg, err := classic.Load("../../api/classic/v1/testdata/classic-readme-example.json", "")
	require.NoError(t, err)
	res, _ := selectPools(t, exampleHost(), cfg)
	assert.Equal(t, map[string][]string{
		"intel.com/intel_sriov_netdevice":   {"0000:3b:02.0", "0000:3b:02.1", "0000:5b:02.1"},
		"intel.com/intel_sriov_dpdk":        {"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0"},
		"mellanox.com/mlnx_sriov_rdma":      {"0000:5d:00.2", "0000:5d:00.3"},
		"intel.com/infiniband_rdma_netdevs": {"0000:af:00.2", "0000:af:00.3"},
		"intel.com/ct6dx_vdpa_vhost":        {"0000:65:00.2"},
		"intel.com/intel_fpga":              {"0000:d8:00.0"},
		"nvidia.com/bf2_sf":                 {"mlx5_core.sf.2", "mlx5_core.sf.3"},
		// Same selectors as the first pool, which took every device first.
		"intel.com/intel_sriov_netdevice_additional_env": {},
	}, poolIDs(res))
	p, ok := res.PoolFor("pci-0000-3b-02-2")
	require.True(t, ok)
	assert.Equal(t, "intel.com/intel_sriov_dpdk", p.Name())
	_, ok = res.PoolFor("pci-0000-5c-02-0")
	assert.False(t, ok, "vfio VF of a PF outside pfNames is in no pool")
}

func cfgOf(t *testing.T, js string) *classic.Config {
	t.Helper()
	cfg, err := classic.Decode([]byte(js))
	require.NoError(t, err)
	cfg.Default("")
	require.NoError(t, cfg.Validate())
	return cfg
}

func TestSelectors(t *testing.T) {
	host := exampleHost()
	tests := []struct {
		name, selectors string
		deviceType      string
		want            []string
	}{
		{"vendors", `{"vendors":["15b3"]}`, "", []string{"0000:03:00.0", "0000:5d:00.2", "0000:5d:00.3", "0000:65:00.2", "0000:65:00.3", "0000:af:00.2", "0000:af:00.3"}},
		{"devices", `{"devices":["154c"]}`, "", []string{"0000:5b:02.0", "0000:5b:02.1"}},
		// Hexadecimal in upper case names the same IDs and addresses.
		{"vendors upper case", `{"vendors":["15B3"]}`, "", []string{"0000:03:00.0", "0000:5d:00.2", "0000:5d:00.3", "0000:65:00.2", "0000:65:00.3", "0000:af:00.2", "0000:af:00.3"}},
		{"devices upper case", `{"devices":["154C"]}`, "", []string{"0000:5b:02.0", "0000:5b:02.1"}},
		{"pciAddresses upper case", `{"pciAddresses":["0000:3B:02.1","0000:AF:00.3"]}`, "", []string{"0000:3b:02.1", "0000:af:00.3"}},
		{"aux needVhostNet is accepted, as the classic plugin does", `{"auxTypes":["sf"],"needVhostNet":true}`, "auxNetDevice", []string{"mlx5_core.sf.2", "mlx5_core.sf.3", "mlx5_core.sf.4"}},
		{"drivers", `{"drivers":["vfio-pci"]}`, "", []string{"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0", "0000:5c:02.0"}},
		{"pciAddresses", `{"pciAddresses":["0000:3b:02.1","0000:65:00.3"]}`, "", []string{"0000:3b:02.1", "0000:65:00.3"}},
		{"pfNames bare", `{"pfNames":["enp2s2f1"]}`, "", []string{"0000:5b:02.0", "0000:5b:02.1"}},
		{"pfNames case-insensitive", `{"pfNames":["ENP2S2F1"]}`, "", []string{"0000:5b:02.0", "0000:5b:02.1"}},
		{"pfNames range", `{"pfNames":["enp0s0f0#1-2"]}`, "", []string{"0000:3b:02.1", "0000:3b:02.2"}},
		{"pfNames list and range", `{"pfNames":["enp0s0f0#0,3","ib0"]}`, "", []string{"0000:3b:02.0", "0000:3b:02.3", "0000:af:00.2", "0000:af:00.3"}},
		{"pfNames selects a VF-less PF by its own name", `{"pfNames":["p0"]}`, "", []string{"0000:03:00.0"}},
		{"pfNames range never selects a PF", `{"pfNames":["p0#0-9"]}`, "", nil},
		{"rootDevices", `{"rootDevices":["0000:65:00.0"]}`, "", []string{"0000:65:00.2", "0000:65:00.3"}},
		{"rootDevices range", `{"rootDevices":["0000:3b:00.0#3"]}`, "", []string{"0000:3b:02.3"}},
		{"linkTypes", `{"linkTypes":["infiniband"]}`, "", []string{"0000:af:00.2", "0000:af:00.3"}},
		{"isRdma", `{"isRdma":true,"vendors":["15b3"],"devices":["1018","101e"]}`, "", []string{"0000:5d:00.2", "0000:5d:00.3", "0000:65:00.2", "0000:65:00.3"}},
		{"isRdma false does not filter", `{"isRdma":false,"devices":["154c"]}`, "", []string{"0000:5b:02.0", "0000:5b:02.1"}},
		{"ddpProfiles", `{"ddpProfiles":["ICE OS Default Package"]}`, "", []string{"0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3", "0000:5c:02.0"}},
		{"vdpaType virtio", `{"vdpaType":"virtio"}`, "", []string{"0000:65:00.3"}},
		// The infiniband VFs carry partition keys 0x7fff and 0x8001 / 0x8002.
		{"pKeys shared", `{"pKeys":["0x7FFF"]}`, "", []string{"0000:af:00.2", "0000:af:00.3"}},
		{"pKeys one", `{"pKeys":["0x8002","0x9999"]}`, "", []string{"0000:af:00.3"}},
		{"pKeys none", `{"pKeys":["0x9999"]}`, "", nil},
		{"fields are ANDed", `{"vendors":["8086"],"drivers":["vfio-pci"],"pfNames":["ens9f0"]}`, "", []string{"0000:5c:02.0"}},
		{"selector array is a union", `[{"devices":["154c"],"drivers":["iavf"]},{"pfNames":["ens9f0"]}]`, "", []string{"0000:5b:02.1", "0000:5c:02.0"}},
		{"no selectors take every device of the type", `{}`, "accelerator", []string{"0000:d8:00.0"}},
		{"accelerator vendors", `{"vendors":["8086"]}`, "accelerator", []string{"0000:d8:00.0"}},
		{"auxTypes", `{"auxTypes":["sf"]}`, "auxNetDevice", []string{"mlx5_core.sf.2", "mlx5_core.sf.3", "mlx5_core.sf.4"}},
		{"auxTypes other", `{"auxTypes":["eth"]}`, "auxNetDevice", nil},
		{"aux pfNames sfnum range", `{"pfNames":["p0#2-6"]}`, "auxNetDevice", []string{"mlx5_core.sf.3", "mlx5_core.sf.4"}},
		{"aux rootDevices", `{"rootDevices":["0000:03:00.0#6"]}`, "auxNetDevice", []string{"mlx5_core.sf.4"}},
		{"aux devices is the parent's", `{"devices":["a2d6"]}`, "auxNetDevice", []string{"mlx5_core.sf.2", "mlx5_core.sf.3", "mlx5_core.sf.4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dt := ""
			if tc.deviceType != "" {
				dt = `"deviceType":"` + tc.deviceType + `",`
			}
			cfg := cfgOf(t, `{"resourceList":[{"resourceName":"pool",`+dt+`"selectors":`+tc.selectors+`}]}`)
			res, _ := selectPools(t, host, cfg)
			got := res.Pools[0].IDs()
			if len(tc.want) == 0 {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestFunctionWithoutPFNeverMatchesPFSelectors(t *testing.T) {
	cfg := cfgOf(t, `{"resourceList":[{"resourceName":"a","deviceType":"accelerator"}]}`)
	res, inv := selectPools(t, simhost.Spec{PFs: simhosttest.Profiles(t, "fpga").PFs}, cfg)
	require.Equal(t, 1, inv.Len())
	assert.Len(t, res.Pools[0].Devices, 1)
	// An accelerator without a netdev has no pfName: pfNames cannot match it.
	cfg = cfgOf(t, `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["enp0s0f0"]}}]}`)
	h := exampleHost()
	h.PFs[0].VFs = append(h.PFs[0].VFs, simhost.VF{Index: 1, InPodNetns: true})
	res, _ = selectPools(t, h, cfg)
	assert.Contains(t, res.Pools[0].IDs(), "0000:3b:02.1", "a VF in a pod's netns still has its PF")
}

func TestPoolOrder(t *testing.T) {
	cfg := cfgOf(t, `{"resourceList":[
		{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}},
		{"resourceName":"all","selectors":{"vendors":["8086"]}},
		{"resourceName":"rest","selectors":{"vendors":["8086"]}}]}`)
	res, _ := selectPools(t, exampleHost(), cfg)
	ids := poolIDs(res)
	assert.Equal(t, []string{"0000:3b:02.2", "0000:3b:02.3", "0000:5b:02.0", "0000:5c:02.0"}, ids["intel.com/dpdk"])
	assert.Equal(t, []string{"0000:3b:02.0", "0000:3b:02.1", "0000:5b:02.1"}, ids["intel.com/all"])
	assert.Empty(t, ids["intel.com/rest"])
	// Swapping the first two pools changes who gets the vfio VFs.
	cfg.ResourceList[0], cfg.ResourceList[1] = cfg.ResourceList[1], cfg.ResourceList[0]
	res, _ = selectPools(t, exampleHost(), cfg)
	assert.Empty(t, poolIDs(res)["intel.com/dpdk"])
	assert.Len(t, poolIDs(res)["intel.com/all"], 7)
}

func TestAcpiIndexesSelector(t *testing.T) {
	h, root := simhosttest.NewHost(t, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0"},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0"},
	}})
	// Firmware names on-board NICs through acpi_index; the kernel shows it
	// on the PCI function.
	dir, err := filepath.EvalSymlinks(filepath.Join(root, "sys/bus/pci/devices/0000:5b:00.0"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acpi_index"), []byte("3\n"), 0o444))
	inv, err := discovery.Discover(context.Background(), h)
	require.NoError(t, err)
	res, err := selector.Select(cfgOf(t, `{"resourceList":[{"resourceName":"a","selectors":{"acpiIndexes":["3"]}}]}`), inv)
	require.NoError(t, err)
	assert.Equal(t, []string{"0000:5b:00.0"}, res.Pools[0].IDs())
}

// TestDeviceWithoutPFNameNeverMatchesPfNames: a PF with no netdev (so no PF
// name) is not taken by a pfNames pool, whatever the names.
func TestDeviceWithoutPFNameNeverMatchesPfNames(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810"}, // no netdev, no VFs
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0"},
	}}
	res, inv := selectPools(t, spec, cfgOf(t, `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["ens2f0","ens1f0#0-3"]}}]}`))
	require.Equal(t, 2, inv.Len())
	assert.Equal(t, []string{"0000:5b:00.0"}, res.Pools[0].IDs())
}

// TestRootDevicesIgnoreCase: PCI addresses are hexadecimal; upper case in
// rootDevices names the same device.
func TestRootDevicesIgnoreCase(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 4}}}
	res, _ := selectPools(t, spec, cfgOf(t, `{"resourceList":[{"resourceName":"a","selectors":{"rootDevices":["0000:3B:00.0#1-2"]}}]}`))
	assert.Equal(t, []string{"0000:3b:02.1", "0000:3b:02.2"}, res.Pools[0].IDs())
}
