package convert_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	dracel "k8s.io/dynamic-resource-allocation/cel"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/convert"
)

func parse(t testing.TB, data string) *classic.Config {
	t.Helper()
	cfg, err := classic.Parse([]byte(data), "")
	require.NoError(t, err)
	return cfg
}

func TestConvertAttributesMode(t *testing.T) {
	cfg := parse(t, `{"resourceList":[
		{"resourceName":"sriov_net","selectors":{"drivers":["iavf"]}},
		{"resourceName":"sriov_net","resourcePrefix":"acme.com","selectors":{"isRdma":true,"needVhostNet":true}},
		{"resourceName":"Fpga_Accel","deviceType":"accelerator","additionalInfo":{"*":{"token":"3e49"}}}]}`)
	pools, err := convert.Convert(cfg, convert.Options{DriverName: "sriov.dra.dev", Mode: convert.ModeAttributes})
	require.NoError(t, err)
	require.Len(t, pools, 3)
	for i, want := range []struct {
		name, resource string
		config         netconfig.NetConfig
	}{
		{"intel-sriov-net", "intel.com/sriov_net", netconfig.NetConfig{ResourceName: "intel.com/sriov_net"}},
		{"acme-sriov-net", "acme.com/sriov_net", netconfig.NetConfig{ResourceName: "acme.com/sriov_net", NeedVhostNet: ptr(true), RDMA: ptr(true)}},
		{"fpga-accel", "intel.com/Fpga_Accel", netconfig.NetConfig{ResourceName: "intel.com/Fpga_Accel", AdditionalInfo: map[string]string{"token": "3e49"}}},
	} {
		p := pools[i]
		assert.Equal(t, want.resource, p.ResourceName)
		assert.Equal(t, want.name, p.Class.Name, "a DNS label; a name two pools share gets the prefix's first label")
		require.NotNil(t, p.Class.Spec.ExtendedResourceName)
		assert.Equal(t, want.resource, *p.Class.Spec.ExtendedResourceName, "unchanged pods ask for it (KEP-5004)")
		assert.Equal(t, `device.driver == "sriov.dra.dev" && "resourceName" in device.attributes["k8s.cni.cncf.io"] && device.attributes["k8s.cni.cncf.io"].resourceName == "`+want.resource+`"`,
			p.Class.Spec.Selectors[0].CEL.Expression)
		require.Len(t, p.Class.Spec.Config, 1)
		assert.Equal(t, "sriov.dra.dev", p.Class.Spec.Config[0].Opaque.Driver)
		nc, err := netconfig.Decode(p.Class.Spec.Config[0].Opaque.Parameters.Raw)
		require.NoError(t, err, "the driver decodes the class's config")
		want.config.APIVersion, want.config.Kind = netconfig.APIVersion, netconfig.Kind
		assert.Equal(t, want.config, *nc)
		assert.Equal(t, want.name, p.Template.Name)
		req := p.Template.Spec.Spec.Devices.Requests
		require.Len(t, req, 1)
		assert.Equal(t, want.name, req[0].Exactly.DeviceClassName)
		assert.Equal(t, int64(1), req[0].Exactly.Count)
	}
}

func ptr[T any](v T) *T { return &v }

func TestConvertErrors(t *testing.T) {
	cfg := parse(t, `{"resourceList":[{"resourceName":"a"},{"resourceName":"b","additionalInfo":{"0000:3b:02.0":{"k":"v"}}}]}`)
	_, err := convert.Convert(cfg, convert.Options{DriverName: "sriov.dra.dev", Mode: convert.ModeSelectors})
	assert.ErrorContains(t, err, `resourceList[1] (intel.com/b): additionalInfo: "0000:3b:02.0": extra info for one device cannot be given by a class`)
	_, err = convert.Convert(parse(t, `{"resourceList":[{"resourceName":"a"}]}`), convert.Options{DriverName: "sriov.dra.dev", Mode: "cel"})
	assert.ErrorContains(t, err, `mode "cel": want attributes or selectors`)

	// Each pool excludes the earlier ones: with enough pools the CEL
	// outgrows the API's limit, and the pool is named.
	var pools []string
	for i := range 40 {
		pools = append(pools, fmt.Sprintf(`{"resourceName":"p%d","selectors":{"pfNames":["ens%df0#0-3,7"],"drivers":["iavf","vfio-pci"]}}`, i, i))
	}
	many := parse(t, `{"resourceList":[`+strings.Join(pools, ",")+`]}`)
	_, err = convert.Convert(many, convert.Options{DriverName: "sriov.dra.dev", Mode: convert.ModeSelectors})
	assert.Regexp(t, `resourceList\[\d+\] \(intel.com/p\d+\): selectors: the CEL \(\d+ bytes, with the exclusion of the earlier pools of its type\) is longer than the API allows \(10240\); use --mode attributes`, err)
	_, err = convert.Convert(many, convert.Options{DriverName: "sriov.dra.dev", Mode: convert.ModeAttributes})
	assert.NoError(t, err, "the attributes mode has no such limit")
}

// TestConvertReadmeExampleFitsTheLimits: every class converted from the
// classic README's example config compiles in the scheduler's CEL
// environment within the apiserver's cost and length limits.
func TestConvertReadmeExampleFitsTheLimits(t *testing.T) {
	cfg, err := classic.Load("../../api/classic/v1/testdata/classic-readme-example.json", "")
	require.NoError(t, err)
	pools, err := convert.Convert(cfg, convert.Options{DriverName: "sriov.dra.dev", Mode: convert.ModeSelectors})
	require.NoError(t, err)
	require.Len(t, pools, len(cfg.ResourceList))
	compiler := dracel.GetCompiler(dracel.Features{})
	for _, p := range pools {
		expr := p.Class.Spec.Selectors[0].CEL.Expression
		c := compiler.CompileCELExpression(expr, dracel.Options{})
		require.Nil(t, c.Error, "%s: %s", p.ResourceName, expr)
		assert.LessOrEqual(t, c.MaxCost, uint64(resourceapi.CELSelectorExpressionMaxCost), p.ResourceName)
		assert.LessOrEqual(t, len(expr), resourceapi.CELSelectorExpressionMaxLength, p.ResourceName)
		t.Logf("%-40s CEL cost %6d of %d, %5d of %d bytes", p.ResourceName, c.MaxCost, resourceapi.CELSelectorExpressionMaxCost, len(expr), resourceapi.CELSelectorExpressionMaxLength)
	}
}

func BenchmarkConvertReadmeExample(b *testing.B) {
	cfg, err := classic.Load("../../api/classic/v1/testdata/classic-readme-example.json", "")
	require.NoError(b, err)
	for _, mode := range []convert.Mode{convert.ModeAttributes, convert.ModeSelectors} {
		b.Run(string(mode), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := convert.Convert(cfg, convert.Options{DriverName: "sriov.dra.dev", Mode: mode}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
