package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func simulate(t *testing.T, profiles string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	code, out, errs := runCLI(t, "simulate", "--profile", profiles, "--out", dir)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "simulated host written to "+dir)
	return dir
}

func TestDiscoverJSONExactFormat(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, simhost.Write(dir, simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 1, NUMANode: new(int)},
		{Address: "0000:d8:00.0", Model: "n3000"},
	}}))
	code, out, errs := runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys", "-o", "json")
	require.Equal(t, 0, code, errs)
	want := `{"devices":[` +
		`{"name":"pci-0000-3b-02-0","health":"Healthy","attributes":{"ddpProfile":"ICE OS Default Package","deviceID":"1889","deviceType":"netDevice","driver":"iavf","eswitchMode":"legacy","functionType":"vf","ifName":"ens1f0v0","iommuGroup":4,"linkType":"ether","numaNode":0,"pciAddress":"0000:3b:02.0","pfName":"ens1f0","rdma":false,"resource.kubernetes.io/numaNode":0,"resource.kubernetes.io/pciBusID":"0000:3b:02.0","resource.kubernetes.io/pcieRoot":"pci0000:00","rootDevice":"0000:3b:00.0","vendor":"8086","vfIndex":0}},` +
		`{"name":"pci-0000-d8-00-0","health":"Healthy","attributes":{"deviceID":"0d90","deviceType":"accelerator","driver":"dfl-pci","functionType":"pf","iommuGroup":3,"pciAddress":"0000:d8:00.0","resource.kubernetes.io/pciBusID":"0000:d8:00.0","resource.kubernetes.io/pcieRoot":"pci0000:00","rootDevice":"0000:d8:00.0","vendor":"8086"}}` +
		"]}\n"
	assert.Equal(t, want, out)
}

func TestDiscoverTable(t *testing.T) {
	dir := simulate(t, "bf2,fpga")
	code, out, errs := runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys")
	require.Equal(t, 0, code, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6)
	assert.Regexp(t, `^NAME\s+TYPE\s+PCI ADDRESS\s+VENDOR:DEVICE\s+DRIVER\s+PF\s+INDEX\s+LINK\s+NUMA\s+RDMA\s+HEALTH$`, lines[0])
	assert.Regexp(t, `^aux-mlx5-core-sf-2\s+sf/auxNetDevice\s+0000:03:00.0\s+15b3:a2d6\s+mlx5_core\s+p0\s+1\s+ether\s+0\s+true\s+Healthy$`, lines[1])
	assert.Regexp(t, `^pci-0000-d8-00-0\s+pf/accelerator\s+0000:d8:00.0\s+8086:0d90\s+dfl-pci\s+-\s+-\s+-\s+1\s+false\s+Healthy$`, lines[5])
}

func TestDiscoverEnvFallback(t *testing.T) {
	dir := simulate(t, "fpga")
	t.Setenv("SRIOV_DRA_SYSFS_ROOT", dir+"/sys")
	code, out, _ := runCLI(t, "discover", "-o", "json")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "pci-0000-d8-00-0")
	t.Setenv("SRIOV_DRA_O", "xml")
	code, _, errs := runCLI(t, "discover")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `-o "xml": want table, json or yaml`)
	t.Setenv("SRIOV_DRA_O", "yaml")
	code, _, errs = runCLI(t, "discover")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "-o yaml needs --node-name")
	t.Setenv("SRIOV_DRA_NODE_NAME", "node-a")
	code, out, errs = runCLI(t, "discover")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "kind: ResourceSlice")
	assert.Contains(t, out, "name: node-a-sriov-dra-dev-0")
	assert.Contains(t, out, "k8s.cni.cncf.io/deviceID")
}

func TestPoolsJSON(t *testing.T) {
	dir := simulate(t, "e810,bf2,fpga")
	cfg := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"resourceList":[
		{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}},
		{"resourceName":"net","selectors":{"pfNames":["ens1f0#0-2","ens1f1#3"]}},
		{"resourceName":"sf","resourcePrefix":"nvidia.com","deviceType":"auxNetDevice","selectors":{"pfNames":["p0#1-2"]}},
		{"resourceName":"fpga","deviceType":"accelerator"}]}`), 0o644))
	code, out, errs := runCLI(t, "pools", "--simulated", "--config", cfg, "--sysfs-root", dir+"/sys", "-o", "json")
	require.Equal(t, 0, code, errs)
	var got struct{ Pools map[string][]string }
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, map[string][]string{
		"intel.com/dpdk": {"0000:3b:02.6", "0000:3b:02.7"},
		"intel.com/net":  {"0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:11.3"},
		"nvidia.com/sf":  {"mlx5_core.sf.2", "mlx5_core.sf.3"},
		"intel.com/fpga": {"0000:d8:00.0"},
	}, got.Pools)
	assert.True(t, strings.HasPrefix(out, `{"pools":{"intel.com/dpdk":["0000:3b:02.6","0000:3b:02.7"]`), out)

	code, out, errs = runCLI(t, "pools", "--simulated", "--config", cfg, "--sysfs-root", dir+"/sys", "--resource-prefix", "example.org")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "example.org/dpdk")
}

func TestValidateConfig(t *testing.T) {
	code, out, errs := runCLI(t, "validate-config", "../../api/classic/v1/testdata/classic-readme-example.json")
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "../../api/classic/v1/testdata/classic-readme-example.json: valid, 8 pools (6 netDevice, 1 accelerator, 1 auxNetDevice)\n", out)

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"resourceList":[{"resourceName":"a-b","selectors":{"pfNames":["p0#5-2"],"isRdma":true,"vdpaType":"vhost"}}]}`), 0o644))
	code, out, errs = runCLI(t, "validate-config", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, `resourceList[0] (a-b): resourceName: "a-b" may contain only letters, digits and underscores`)
	assert.Contains(t, errs, `resourceList[0] (a-b): selectors[0].pfNames[0]: "p0#5-2": range "5-2" starts after it ends`)
	assert.Contains(t, errs, `resourceList[0] (a-b): selectors[0].isRdma: true cannot be combined with vdpaType "vhost"`)

	code, _, errs = runCLI(t, "validate-config")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "usage: sriov-dra validate-config [--strict=false] FILE")
}

// TestValidateConfigClassicParity: what the classic plugin accepts passes:
// upper-case hex, needVhostNet in an auxNetDevice pool, excludeTopology and
// pKeys.
func TestValidateConfigClassicParity(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"resourceList":[
		{"resourceName":"mlx","excludeTopology":true,"selectors":{"vendors":["15B3"],"pciAddresses":["0000:AF:00.2"],"pKeys":["0x7FFF"]}},
		{"resourceName":"sf","deviceType":"auxNetDevice","selectors":{"auxTypes":["sf"],"needVhostNet":true}}]}`), 0o644))
	code, out, errs := runCLI(t, "validate-config", cfg)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, cfg+": valid, 2 pools (1 netDevice, 0 accelerator, 1 auxNetDevice)\n", out)
}

// TestValidateConfigUnknownFields: a field the classic plugin ignores is an
// error by default, a warning with --strict=false (as `run` treats it), and
// `pools` runs with a warning on stderr.
func TestValidateConfigUnknownFields(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"resourceList":[{"resourceName":"net","comment":"ours","selectors":{"vendors":["8086"],"driverz":["iavf"]}}]}`), 0o644))
	code, out, errs := runCLI(t, "validate-config", cfg)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, `unknown field "resourceList[0].comment"`)
	assert.Contains(t, errs, `resourceList[0].selectors: unknown field "driverz"`)

	code, out, errs = runCLI(t, "validate-config", "--strict=false", cfg)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `warning: unknown field "resourceList[0].comment" (ignored)`)
	assert.Contains(t, out, `warning: resourceList[0].selectors: unknown field "driverz" (ignored)`)
	assert.Contains(t, out, cfg+": valid, 1 pools (1 netDevice, 0 accelerator, 0 auxNetDevice)")

	dir := t.TempDir()
	code, _, errs = runCLI(t, "simulate", "--profile", "e810", "--out", dir)
	require.Equal(t, 0, code, errs)
	code, out, errs = runCLI(t, "pools", "--simulated", "--config", cfg, "--sysfs-root", dir+"/sys")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, `unknown field "driverz" (ignored, as the classic plugin does)`)
	// The e810 profile: 12 VFs of vendor 8086, the ignored driver selector
	// narrowing nothing.
	assert.Regexp(t, `intel.com/net\s+netDevice\s+12\s`, out)
}

func TestSimulateErrors(t *testing.T) {
	code, _, errs := runCLI(t, "simulate", "--profile", "nope", "--out", t.TempDir()+"/x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `unknown profile "nope"`)
	code, _, errs = runCLI(t, "simulate", "--profile", "fpga")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "--out is required")
	spec := filepath.Join(t.TempDir(), "host.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("pfs:\n- address: 0000:3b:00.0\n  model: e810\n  numVF: 2\n"), 0o644))
	code, _, errs = runCLI(t, "simulate", "--spec", spec, "--out", t.TempDir()+"/x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `unknown field "numVF"`)
}

func TestSimulateSpec(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "host.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`pfs:
- address: "0000:3b:00.0"
  model: e810
  ifName: ens1f0
  numVFs: 2
  vfs:
  - index: 1
    driver: vfio-pci
`), 0o644))
	dir := t.TempDir() + "/h"
	code, _, errs := runCLI(t, "simulate", "--spec", spec, "--out", dir)
	require.Equal(t, 0, code, errs)
	code, out, _ := runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys")
	require.Equal(t, 0, code)
	assert.Regexp(t, `pci-0000-3b-02-1\s+vf/netDevice\s+0000:3b:02.1\s+8086:1889\s+vfio-pci`, out)
}

func TestUnknownCommandAndVersion(t *testing.T) {
	code, _, errs := runCLI(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown command "frobnicate"`)
	code, out, _ := runCLI(t, "version")
	assert.Equal(t, 0, code)
	assert.Equal(t, "sriov-dra dev\n", out)
}

func TestDiscoverAllShowsWhatIsNotOffered(t *testing.T) {
	dir := simulate(t, "mgmt")
	code, out, errs := runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys", "--all", "-o", "json")
	require.Equal(t, 0, code, errs)
	assert.JSONEq(t, `{"devices":[],"excluded":[
		{"pciAddress":"0000:06:00.0","ifName":"eno1","reason":"uplink: carries the default route (interface eno1)"},
		{"pciAddress":"0000:07:00.0","ifName":"eth0","reason":"uplink: carries the default route (interface eth0)"},
		{"pciAddress":"0000:08:00.0","ifName":"eno2","reason":"uplink: carries the default route (interface bond0)"},
		{"pciAddress":"0000:09:00.0","ifName":"eno3","reason":"uplink: carries the default route (interface bond0)"}]}`, out)
	code, out, _ = runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys", "-o", "json")
	require.Equal(t, 0, code)
	assert.JSONEq(t, `{"devices":[]}`, out, "without --all, only devices")
}

func TestSimulatedNeedsASimulatedHost(t *testing.T) {
	code, _, errs := runCLI(t, "discover", "--simulated", "--sysfs-root", t.TempDir()+"/sys")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "is not a simulated host written by `sriov-dra simulate`")
	code, _, errs = runCLI(t, "discover", "--simulated")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "--simulated needs --sysfs-root")
}

func TestDiscoverShowsHealth(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, simhost.Write(dir, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 1, LinkDown: true}}}))
	code, out, errs := runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys", "-o", "json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `{"name":"pci-0000-3b-02-0","health":"Unhealthy","healthReason":"link of PF ens1f0 is down","attributes":`)
	code, out, _ = runCLI(t, "discover", "--simulated", "--sysfs-root", dir+"/sys")
	require.Equal(t, 0, code)
	assert.Regexp(t, `pci-0000-3b-02-0 .* Unhealthy\n`, out)
}

// TestConvertCLI: one DeviceClass and one ResourceClaimTemplate per pool of
// the classic README's example, in YAML and as a JSON List.
func TestConvertCLI(t *testing.T) {
	const example = "../../api/classic/v1/testdata/classic-readme-example.json"
	code, out, errs := runCLI(t, "convert", "--config", example, "--mode", "selectors", "-o", "json")
	require.Equal(t, 0, code, errs)
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	assert.Equal(t, "List", list.Kind)
	require.Len(t, list.Items, 16, "8 pools in the example")
	assert.Equal(t, "DeviceClass", list.Items[0].Kind)
	assert.Equal(t, "intel-sriov-netdevice", list.Items[0].Metadata.Name)
	assert.Equal(t, "ResourceClaimTemplate", list.Items[1].Kind)

	code, out, errs = runCLI(t, "convert", "--config", example)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, 16, strings.Count(out, "\n---\n"), "a YAML document each")
	assert.Contains(t, out, "# mellanox.com/mlnx_sriov_rdma\napiVersion: resource.k8s.io/v1\nkind: DeviceClass")
	assert.NotContains(t, out, "creationTimestamp")

	code, _, errs = runCLI(t, "convert", "--config", example, "--mode", "cel")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `mode "cel": want attributes or selectors`)
}
