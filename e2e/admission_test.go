//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// kubectl runs the cluster's kubectl with its kubeconfig.
func kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(*binDir, "kubectl"), append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// manifestObjects returns the YAML documents of the shipped manifests whose
// text contains marker.
func manifestObjects(t *testing.T, marker string) string {
	t.Helper()
	data, err := os.ReadFile("../deployments/manifests/sriov-dra.yaml")
	require.NoError(t, err)
	var docs []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.Contains(doc, marker) {
			docs = append(docs, doc)
		}
	}
	return strings.Join(docs, "\n---\n")
}

// TestNetConfigRefusedAtAdmission applies the shipped admission policy for
// opaque NetConfig parameters and shows `kubectl apply` refusing a claim, a
// claim template and a DeviceClass whose parameters the driver could not
// decode, each with the message the driver's own decoder (which prepare
// uses) gives for them; good ones are accepted.
func TestNetConfigRefusedAtAdmission(t *testing.T) {
	ctx := t.Context()
	policy := manifestObjects(t, "-netconfig")
	require.Contains(t, policy, "kind: ValidatingAdmissionPolicyBinding")
	out, err := kubectl(ctx, policy, "apply", "-f", "-")
	require.NoError(t, err, out)
	t.Cleanup(func() { _, _ = kubectl(context.Background(), policy, "delete", "-f", "-") })
	ns := framework.Namespace(ctx, t, cluster.Client, "admission")

	claim := func(name, params string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":%q,"namespace":%q},
"spec":{"devices":{"requests":[{"name":"vf","exactly":{"deviceClassName":"any"}}],
"config":[{"opaque":{"driver":"other.example.com","parameters":{"any":1}}},{"opaque":{"driver":%q,"parameters":%s}}]}}}`, name, ns, driverName, params)
	}
	template := func(name, params string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{"name":%q,"namespace":%q},
"spec":{"spec":{"devices":{"requests":[{"name":"vf","exactly":{"deviceClassName":"any"}}],
"config":[{"opaque":{"driver":%q,"parameters":%s}}]}}}}`, name, ns, driverName, params)
	}
	class := func(name, params string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"DeviceClass","metadata":{"name":%q},
"spec":{"config":[{"opaque":{"driver":%q,"parameters":%s}}]}}`, name, driverName, params)
	}
	const head = `"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig"`
	bad := []string{
		`{` + head + `,"needVhostnet":true}`,
		`{` + head + `,"needVhostNet":"yes"}`,
		`{` + head + `,"rdma":1}`,
		`{"apiVersion":"sriov.dra.dev/v1","kind":"NetConfig"}`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConf"}`,
		`{` + head + `,"resourceName":"intel.com/sriov net"}`,
		`{` + head + `,"driver":"vfio pci"}`,
		`{` + head + `,"additionalInfo":{"*":1}}`,
		`{` + head + `,"additionalInfo":["a"]}`,
		`{` + head + `,"additionalInfo":{" ":"x"}}`,
		`{` + head + `,"network":"net1"}`,
		`{` + head + `,"network":{"ifName":"net1"}}`,
		`{` + head + `,"claimMaySet":"driver"}`,
		`{` + head + `,"claimMaySet":[1]}`,
		`{` + head + `,"claimMaySet":["network.vlna"]}`,
		`{` + head + `,"claimMaySet":["driver","driver"]}`,
	}
	// The policy takes a moment to be loaded by the apiserver.
	require.Eventually(t, func() bool {
		out, err := kubectl(ctx, claim("probe", bad[0]), "apply", "--dry-run=server", "-f", "-")
		return err != nil && strings.Contains(out, "denied request")
	}, 30*time.Second, 200*time.Millisecond, "the policy refuses a bad claim")
	for i, params := range bad {
		decodeErr := func() string {
			_, err := netconfig.Decode([]byte(params))
			require.Error(t, err, params)
			return err.Error()
		}()
		for _, tc := range []struct{ kind, obj, prefix string }{
			{"claim", claim(fmt.Sprintf("bad-%d", i), params), "claim config[1]: "},
			{"template", template(fmt.Sprintf("bad-%d", i), params), "claim config[0]: "},
			{"class", class(fmt.Sprintf("e2e-bad-%d", i), params), fmt.Sprintf("class e2e-bad-%d config[0]: ", i)},
		} {
			out, err := kubectl(ctx, tc.obj, "apply", "-f", "-")
			if assert.Error(t, err, "%s with %s accepted", tc.kind, params) {
				assert.Contains(t, out, "denied request: "+tc.prefix+decodeErr, "%s with %s", tc.kind, params)
			}
		}
	}
	good := `{` + head + `,"needVhostNet":true,"rdma":null,"resourceName":"intel.com/sriov_dpdk","driver":"vfio-pci","additionalInfo":{"*":"x"},"network":{"interfaceName":"net1","vlan":5,"addresses":["10.0.0.1/24"]}}`
	for _, obj := range []string{claim("good", good), template("good", good), class("e2e-good", good)} {
		out, err := kubectl(ctx, obj, "apply", "-f", "-")
		assert.NoError(t, err, out)
	}
	t.Cleanup(func() {
		_, _ = kubectl(context.Background(), "", "delete", "deviceclass", "e2e-good", "--ignore-not-found")
	})
	// Changing something other than the spec is never refused.
	out, err = kubectl(ctx, "", "label", "deviceclass", "e2e-good", "checked=yes")
	assert.NoError(t, err, out)
}
