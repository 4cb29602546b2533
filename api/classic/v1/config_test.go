package v1_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
)

func TestClassicReadmeExample(t *testing.T) {
	cfg, err := classic.Load("testdata/classic-readme-example.json", "")
	require.NoError(t, err)
	require.Len(t, cfg.ResourceList, 8)
	var names []string
	for _, r := range cfg.ResourceList {
		names = append(names, r.FullName())
	}
	assert.Equal(t, []string{
		"intel.com/intel_sriov_netdevice", "intel.com/intel_sriov_dpdk", "mellanox.com/mlnx_sriov_rdma",
		"intel.com/infiniband_rdma_netdevs", "intel.com/ct6dx_vdpa_vhost", "intel.com/intel_fpga",
		"nvidia.com/bf2_sf", "intel.com/intel_sriov_netdevice_additional_env",
	}, names)
	assert.Equal(t, classic.DeviceTypeAccelerator, cfg.ResourceList[5].DeviceType)
	assert.Equal(t, classic.DeviceTypeAuxNet, cfg.ResourceList[6].DeviceType)
	assert.Equal(t, classic.DeviceTypeNet, cfg.ResourceList[0].DeviceType)
	assert.True(t, cfg.ResourceList[1].Selectors[0].NeedVhostNet)
	assert.Equal(t, []string{"p0#1-5"}, cfg.ResourceList[6].Selectors[0].PfNames)
	assert.Equal(t, "vhost", cfg.ResourceList[4].Selectors[0].VdpaType)
}

func TestDefaultPrefix(t *testing.T) {
	cfg, err := classic.Decode([]byte(`{"resourceList":[{"resourceName":"a"},{"resourceName":"b","resourcePrefix":"acme.com"}]}`))
	require.NoError(t, err)
	cfg.Default("example.com")
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "example.com/a", cfg.ResourceList[0].FullName())
	assert.Equal(t, "acme.com/b", cfg.ResourceList[1].FullName())
}

func TestSelectorsObjectOrArray(t *testing.T) {
	one, err := classic.Decode([]byte(`{"resourceList":[{"resourceName":"a","selectors":{"vendors":["8086"]}}]}`))
	require.NoError(t, err)
	require.Len(t, one.ResourceList[0].Selectors, 1)
	many, err := classic.Decode([]byte(`{"resourceList":[{"resourceName":"a","selectors":[{"vendors":["8086"]},{"drivers":["vfio-pci"]}]}]}`))
	require.NoError(t, err)
	require.Len(t, many.ResourceList[0].Selectors, 2)
	assert.Equal(t, []string{"vfio-pci"}, many.ResourceList[0].Selectors[1].Drivers)
	none, err := classic.Decode([]byte(`{"resourceList":[{"resourceName":"a"}]}`))
	require.NoError(t, err)
	assert.Empty(t, none.ResourceList[0].Selectors)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"unknown pool field", `{"resourceList":[{"resourceName":"a","resourcename":"b"}]}`, `unknown field "resourceList[0].resourcename"`},
		{"unknown top-level field", `{"resourceList":[],"extra":1}`, `unknown field "extra"`},
		{"unknown selector field", `{"resourceList":[{"resourceName":"a","selectors":{"vendor":["8086"]}}]}`, `unknown field "vendor"`},
		{"unknown field in selector array", `{"resourceList":[{"resourceName":"a","selectors":[{},{"pfName":["x"]}]}]}`, `selectors[1]: unknown field "pfName"`},
		{"wrong type", `{"resourceList":[{"resourceName":"a","selectors":{"isRdma":"yes"}}]}`, `cannot unmarshal string`},
		{"trailing data", `{"resourceList":[]} {}`, `after top-level value`},
		{"duplicate field", `{"resourceList":[{"resourceName":"a","resourceName":"b"}]}`, `duplicate field "resourceList[0].resourceName"`},
		{"not JSON", `resourceList: []`, `invalid character`},
		{"syntax error names line and column", "{\n  \"resourceList\": [\n    {\"resourceName\": \"a\",}\n  ]\n}", `line 3, column 26: invalid character '}'`},
		{"wrong type names line and column", "{\"resourceList\": [\n {\"resourceName\": 7}]}", `line 2, column 19: json: cannot unmarshal number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := classic.Decode([]byte(tc.json))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"empty resourceList", `{"resourceList":[]}`, []string{"resourceList: must have at least one pool"}},
		{"missing resourceList", `{}`, []string{"resourceList: must have at least one pool"}},
		{"hyphen in resourceName", `{"resourceList":[{"resourceName":"sriov-net"}]}`,
			[]string{`resourceList[0] (sriov-net): resourceName: "sriov-net" may contain only letters, digits and underscores`}},
		{"special character in resourceName", `{"resourceList":[{"resourceName":"net/a"}]}`, []string{`resourceName: "net/a"`}},
		{"missing resourceName", `{"resourceList":[{"selectors":{}}]}`, []string{"resourceList[0] (): resourceName: is required"}},
		{"bad prefix", `{"resourceList":[{"resourceName":"a","resourcePrefix":"Intel_com"}]}`, []string{`resourcePrefix: "Intel_com" is not a DNS subdomain`}},
		{"duplicate prefix/name", `{"resourceList":[{"resourceName":"a"},{"resourceName":"a","resourcePrefix":"intel.com"}]}`,
			[]string{`resourceList[1] (a): resourceName: "intel.com/a" is already used by resourceList[0]`}},
		{"same name under other prefixes is fine", `{"resourceList":[{"resourceName":"a"},{"resourceName":"a","resourcePrefix":"acme.com"}]}`, nil},
		{"isRdma with vdpaType", `{"resourceList":[{"resourceName":"a","selectors":{"isRdma":true,"vdpaType":"vhost"}}]}`,
			[]string{`selectors[0].isRdma: true cannot be combined with vdpaType "vhost"`}},
		{"bad vdpaType", `{"resourceList":[{"resourceName":"a","selectors":{"vdpaType":"vdpa"}}]}`, []string{`selectors[0].vdpaType: "vdpa" is not vhost or virtio`}},
		{"bad deviceType", `{"resourceList":[{"resourceName":"a","deviceType":"netdevice"}]}`, []string{`deviceType: "netdevice" is not one of`}},
		{"pfNames on accelerator", `{"resourceList":[{"resourceName":"a","deviceType":"accelerator","selectors":{"pfNames":["ens1"]}}]}`,
			[]string{"selectors[0].pfNames: is not a selector for deviceType accelerator"}},
		{"auxTypes on netDevice", `{"resourceList":[{"resourceName":"a","selectors":{"auxTypes":["sf"]}}]}`,
			[]string{"selectors[0].auxTypes: is not a selector for deviceType netDevice"}},
		{"pciAddresses on auxNetDevice", `{"resourceList":[{"resourceName":"a","deviceType":"auxNetDevice","selectors":[{},{"pciAddresses":[]}]}]}`,
			[]string{"selectors[1].pciAddresses: is not a selector for deviceType auxNetDevice"}},
		{"needVhostNet on accelerator", `{"resourceList":[{"resourceName":"a","deviceType":"accelerator","selectors":{"needVhostNet":false}}]}`,
			[]string{"selectors[0].needVhostNet: is not a selector for deviceType accelerator"}},
		{"reversed pfNames range", `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["p0#5-2"]}}]}`,
			[]string{`selectors[0].pfNames[0]: "p0#5-2": range "5-2" starts after it ends`}},
		{"non-numeric pfNames range", `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["p0#a"]}}]}`,
			[]string{`selectors[0].pfNames[0]: "p0#a": index "a" is not a non-negative number`}},
		{"empty pfNames range", `{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["ens1","p0#"]}}]}`,
			[]string{`selectors[0].pfNames[1]: "p0#": empty index list after '#'`}},
		{"bad rootDevices range", `{"resourceList":[{"resourceName":"a","selectors":{"rootDevices":["0000:86:00.0#1,,2"]}}]}`,
			[]string{`selectors[0].rootDevices[0]: "0000:86:00.0#1,,2": empty index`}},
		{"vendor with 0x", `{"resourceList":[{"resourceName":"a","selectors":{"vendors":["0x8086"]}}]}`,
			[]string{`selectors[0].vendors[0]: "0x8086": want 4 hexadecimal digits`}},
		{"bad pciAddress", `{"resourceList":[{"resourceName":"a","selectors":{"pciAddresses":["3b:02.0"]}}]}`,
			[]string{`selectors[0].pciAddresses[0]: "3b:02.0": want a PCI address`}},
		{"several errors at once", `{"resourceList":[{"resourceName":"a-b","selectors":{"pfNames":["x#"]}},{"resourceName":"c","deviceType":"gpu"}]}`,
			[]string{"resourceList[0] (a-b): resourceName", "resourceList[0] (a-b): selectors[0].pfNames[0]", "resourceList[1] (c): deviceType"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := classic.Decode([]byte(tc.json))
			require.NoError(t, err)
			cfg.Default("")
			err = cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem: %v", err)
		})
	}
}

func TestAdditionalInfoPrecedence(t *testing.T) {
	r := classic.ResourceConfig{AdditionalInfo: map[string]map[string]string{
		"*":            {"token": "original", "shared": "x"},
		"0000:86:00.0": {"token": "specific", "additional-token": "6e7d"},
	}}
	assert.Equal(t, map[string]string{"token": "original", "shared": "x"}, r.AdditionalInfoFor("0000:3b:02.6"))
	assert.Equal(t, map[string]string{"token": "specific", "shared": "x", "additional-token": "6e7d"}, r.AdditionalInfoFor("0000:86:00.0"))
	assert.Nil(t, (&classic.ResourceConfig{}).AdditionalInfoFor("0000:86:00.0"))
	only := classic.ResourceConfig{AdditionalInfo: map[string]map[string]string{"0000:86:00.0": {"k": "v"}}}
	assert.Nil(t, only.AdditionalInfoFor("0000:3b:02.6"))
	assert.Equal(t, map[string]string{"k": "v"}, only.AdditionalInfoFor("0000:86:00.0"))
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	_, err := classic.Load("testdata/missing.json", "")
	require.ErrorContains(t, err, "read config")
	f := t.TempDir() + "/bad.json"
	require.NoError(t, os.WriteFile(f, []byte(`{"resourceList":[{"resourceName":"x-y"}]}`), 0o644))
	_, err = classic.Load(f, "")
	require.ErrorContains(t, err, f+": resourceList[0] (x-y)")
}

// FuzzDecode checks that no input crashes the decoder or validation, and
// that a config that validates can be written back and read again the same.
func FuzzDecode(f *testing.F) {
	seed, err := os.ReadFile("testdata/classic-readme-example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"resourceList":[{"resourceName":"a","selectors":[{"pfNames":["p0#1-3,5"]},{}]}]}`))
	f.Add([]byte(`{"resourceList":[{"resourceName":"a","selectors":null,"additionalInfo":{"*":{"a":"b"}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := classic.Decode(data)
		if err != nil {
			return
		}
		cfg.Default("")
		for i := range cfg.ResourceList {
			_ = cfg.ResourceList[i].AdditionalInfoFor("*")
		}
		if cfg.Validate() != nil {
			return
		}
		written, err := json.Marshal(cfg)
		require.NoError(t, err)
		again, err := classic.Parse(written, "")
		require.NoError(t, err, "a valid config, written back, must read again: %s", written)
		rewritten, err := json.Marshal(again)
		require.NoError(t, err)
		assert.JSONEq(t, string(written), string(rewritten), "round trip changed the config")
	})
}

// TestDecodeLenient: as the daemon reads a config, a field the classic
// plugin ignores is a warning naming its path, and the rest is used;
// duplicates and wrong types stay errors.
func TestDecodeLenient(t *testing.T) {
	cfg, warnings, err := classic.ParseLenient([]byte(`{"version":2,"resourceList":[{"resourceName":"a","comment":"x",
		"selectors":[{"vendors":["8086"]},{"drivers":["iavf"],"driverz":["ice"]}]}]}`), "")
	require.NoError(t, err)
	var got []string
	for _, w := range warnings {
		got = append(got, w.Error())
	}
	assert.ElementsMatch(t, []string{`unknown field "version"`, `unknown field "resourceList[0].comment"`,
		`resourceList[0].selectors[1]: unknown field "driverz"`}, got)
	require.Len(t, cfg.ResourceList, 1)
	assert.Equal(t, "intel.com/a", cfg.ResourceList[0].FullName())
	require.Len(t, cfg.ResourceList[0].Selectors, 2)
	assert.Equal(t, []string{"iavf"}, cfg.ResourceList[0].Selectors[1].Drivers)

	for _, bad := range []string{
		`{"resourceList":[{"resourceName":"a","resourceName":"b"}]}`,
		`{"resourceList":[{"resourceName":"a","selectors":{"isRdma":"yes"}}]}`,
	} {
		_, _, err := classic.ParseLenient([]byte(bad), "")
		assert.Error(t, err, bad)
	}
	_, _, err = classic.ParseLenient([]byte(`{"resourceList":[{"resourceName":"a-b","extra":1}]}`), "")
	assert.ErrorContains(t, err, `resourceName: "a-b" may contain only letters`, "validation still applies")
}

// TestDefaultLowersHex: hexadecimal selector values are matched as sysfs
// writes them, in lower case.
func TestDefaultLowersHex(t *testing.T) {
	cfg, err := classic.Parse([]byte(`{"resourceList":[{"resourceName":"a","selectors":{"vendors":["15B3"],"devices":["101E"],
		"pciAddresses":["0000:3B:02.0"],"rootDevices":["0000:AF:00.0#1-2"],"pfNames":["ENS1F0"]}}]}`), "")
	require.NoError(t, err)
	s := cfg.ResourceList[0].Selectors[0]
	assert.Equal(t, []string{"15b3"}, s.Vendors)
	assert.Equal(t, []string{"101e"}, s.Devices)
	assert.Equal(t, []string{"0000:3b:02.0"}, s.PCIAddresses)
	assert.Equal(t, []string{"0000:af:00.0#1-2"}, s.RootDevices)
	assert.Equal(t, []string{"ENS1F0"}, s.PfNames, "interface names keep their case (matched case-insensitively)")
}
