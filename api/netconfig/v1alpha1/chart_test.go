package v1alpha1_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	v1alpha1 "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
)

const templates = "../../../deployments/helm/sriov-dra/templates/"

// helmList reads the words of a Helm `list "a" "b"` after marker in file.
func helmList(t *testing.T, file, marker string) []string {
	t.Helper()
	data, err := os.ReadFile(templates + file)
	require.NoError(t, err)
	m := regexp.MustCompile(regexp.QuoteMeta(marker) + `\s*list ((?:"[^"]*"\s*)+)`).FindStringSubmatch(string(data))
	require.NotNil(t, m, "%s: no %q list", file, marker)
	var out []string
	for _, w := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, w[1])
	}
	return out
}

// The admission policies name NetConfig's fields in CEL; the code is the
// source of truth, so a field added to the type must reach the chart.
func TestChartKnowsNetConfigFields(t *testing.T) {
	var top, network []string
	for _, p := range v1alpha1.Fields() {
		if sub, ok := strings.CutPrefix(p, "network."); ok {
			network = append(network, sub)
		} else {
			top = append(top, p)
		}
	}
	assert.Equal(t, top, helmList(t, "_helpers.tpl", `define "sriov-dra.netConfigFields" -}}`+"\n{{"))
	assert.Equal(t, network, helmList(t, "netconfig-policy.yaml", "$networkFields :="))
	assert.Equal(t, v1alpha1.GrantableFields(), helmList(t, "netconfig-policy.yaml", "$grantable :="))
}

func TestChartKnowsClassOnlyFields(t *testing.T) {
	data, err := os.ReadFile(templates + "netconfig-claims-policy.yaml")
	require.NoError(t, err)
	line := regexp.MustCompile(`\$classOnly := (.*) }}`).FindStringSubmatch(string(data))
	require.NotNil(t, line)
	var paths []string
	for _, m := range regexp.MustCompile(`\(list "([^"]*)" "([^"]*)" "([^"]*)"\)`).FindAllStringSubmatch(line[1], -1) {
		path := m[2]
		if m[1] != "" {
			path = m[1] + "." + m[2]
		}
		paths = append(paths, path)
		assert.Equal(t, jsonType(t, path), m[3], "the policy's type of %s", path)
	}
	assert.Equal(t, v1alpha1.ClassOnlyFields(), paths)
}

// jsonType is the CEL type of a field's JSON value, from the Go type.
func jsonType(t *testing.T, path string) string {
	typ := reflect.TypeFor[v1alpha1.NetConfig]()
	for part := range strings.SplitSeq(path, ".") {
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		found := false
		for i := range typ.NumField() {
			f := typ.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == part {
				typ, found = f.Type, true
				break
			}
		}
		require.True(t, found, path)
	}
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int:
		return "int"
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "list"
	}
	return typ.Kind().String()
}
