// The package layout docs/development.md's "Layout" section describes, checked: each
// package of the module may import only the packages of the module listed
// for it here (and any outside the module). A new package, or a new import
// across packages, needs a line here and in docs/development.md.
package pkg_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/sriov-dra/sriov-dra/"

// allowed lists, per package (relative to the module), the module's
// packages it may import.
var allowed = map[string][]string{
	"api/classic/v1":          {"pkg/pfrange"},
	"api/netconfig/v1alpha1":  nil,
	"pkg/atomicfile":          nil,
	"pkg/flock":               nil,
	"pkg/unixsock":            nil,
	"pkg/pfrange":             nil,
	"pkg/host":                nil,
	"pkg/discovery":           {"pkg/host"},
	"pkg/selector":            {"api/classic/v1", "pkg/discovery", "pkg/pfrange"},
	"pkg/resourceslices":      {"api/classic/v1", "pkg/discovery", "pkg/health", "pkg/selector"},
	"pkg/prepare":             {"api/netconfig/v1alpha1", "pkg/discovery", "pkg/selector"},
	"pkg/nodefiles":           {"pkg/atomicfile"},
	"pkg/checkpoint":          {"api/netconfig/v1alpha1", "pkg/atomicfile"},
	"pkg/slicesync":           nil,
	"pkg/health":              {"pkg/discovery"},
	"pkg/convert":             {"api/classic/v1", "api/netconfig/v1alpha1", "pkg/discovery", "pkg/pfrange"},
	"pkg/metrics":             {"pkg/unixsock"},
	"pkg/ociimage":            nil,
	"pkg/deviceplugin":        {"api/classic/v1", "pkg/discovery", "pkg/nodefiles", "pkg/prepare", "pkg/selector", "pkg/unixsock"},
	"pkg/nriplugin":           nil,
	"pkg/nodeevents":          nil,
	"pkg/nodestate":           {"pkg/checkpoint", "pkg/discovery", "pkg/flock", "pkg/nodefiles", "pkg/selector", "pkg/unixsock"},
	"pkg/publisher":           {"api/classic/v1", "pkg/discovery", "pkg/health", "pkg/metrics", "pkg/resourceslices", "pkg/selector", "pkg/slicesync"},
	"pkg/podnet":              {"api/netconfig/v1alpha1", "pkg/checkpoint", "pkg/discovery", "pkg/host", "pkg/metrics", "pkg/nodestate", "pkg/nriplugin"},
	"pkg/claims":              {"api/netconfig/v1alpha1", "pkg/checkpoint", "pkg/discovery", "pkg/host", "pkg/metrics", "pkg/nodefiles", "pkg/nodestate", "pkg/prepare", "pkg/selector"},
	"pkg/driver":              {"pkg/claims", "pkg/deviceplugin", "pkg/health", "pkg/metrics", "pkg/nodeevents", "pkg/nodestate", "pkg/podnet", "pkg/publisher"},
	"pkg/simhost":             {"pkg/host"},
	"pkg/kubectlplugin":       {"pkg/discovery", "pkg/resourceslices"},
	"pkg/simhost/simhosttest": {"pkg/simhost"},
	"cmd/sriov-dra": {"api/classic/v1", "api/netconfig/v1alpha1", "pkg/convert", "pkg/discovery", "pkg/driver", "pkg/host", "pkg/resourceslices",
		"pkg/selector", "pkg/simhost", "pkg/deviceplugin", "pkg/health"},
	"cmd/kubectl-sriov_dra": {"pkg/kubectlplugin"},
	"e2e/framework":         {"pkg/ociimage"},
	"e2e/cmd/e2e-cluster":   {"e2e/framework"},
	"e2e/images/pause":      nil,
	"hack/image":            {"pkg/ociimage"},
	"hack/testreport":       nil,
}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

func TestPackageLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "../...").Output()
	require.NoError(t, err, "go list")
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := map[string]bool{}
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		if rel == "pkg" {
			continue // this test
		}
		want, ok := allowed[rel]
		if !assert.True(t, ok, "package %s is not in the layout (pkg/layout_test.go and docs/development.md)", rel) {
			continue
		}
		seen[rel] = true
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if ours && !slices.Contains(want, dep) {
				t.Errorf("%s imports %s, which the layout does not allow", rel, dep)
			}
		}
	}
	for rel := range allowed {
		if !seen[rel] {
			t.Errorf("layout lists %s, which does not exist", rel)
		}
	}
}
