//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/host"
)

const netConfigHead = `"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig"`

// classOnlyCases set each class-only field in a claim; grants are what the
// class the claim asks for grants (the vlanQoS case needs a VLAN beside it,
// which that class grants).
var classOnlyCases = []struct {
	field, params string
	grants        []string
}{
	{"needVhostNet", `"needVhostNet":true`, nil},
	{"needVhostNet", `"needVhostNet":false`, nil},
	{"driver", `"driver":"vfio-pci"`, nil},
	{"network.vlan", `"network":{"vlan":7}`, nil},
	{"network.vlan", `"network":{"vlan":0,"interfaceName":"net1"}`, nil},
	{"network.vlanQoS", `"network":{"vlan":7,"vlanQoS":3}`, []string{"network.vlan", "network.trust"}},
	{"network.mtu", `"network":{"mtu":9000}`, nil},
	{"network.trust", `"network":{"trust":true}`, nil},
	{"network.spoofChk", `"network":{"spoofChk":false}`, nil},
	{"network.minTxRate", `"network":{"minTxRate":0}`, nil},
	{"network.maxTxRate", `"network":{"maxTxRate":100}`, nil},
	{"network.linkState", `"network":{"linkState":"enable"}`, nil},
	{"claimMaySet", `"claimMaySet":["network.vlan"]`, nil},
}

// grantClass names the class that grants the given fields ("" none).
func grantClass(grants []string) string {
	if len(grants) == 0 {
		return "e2e-sec-plain"
	}
	return "e2e-sec-grant"
}

// TestClassOnlyFieldsRefusedAtAdmission applies the shipped admission
// policies and shows `kubectl apply` refusing claims and claim templates
// that set a field only a DeviceClass may set, with the words the driver's
// prepare uses (netconfig.CheckClaim), while claim-safe fields, a class
// setting those fields, and a claim setting what its class grants are
// accepted.
func TestClassOnlyFieldsRefusedAtAdmission(t *testing.T) {
	ctx := t.Context()
	policy := manifestObjects(t, "-netconfig")
	require.Contains(t, policy, "name: sriov-dra-netconfig-claims")
	out, err := kubectl(ctx, policy, "apply", "-f", "-")
	require.NoError(t, err, out)
	t.Cleanup(func() { _, _ = kubectl(context.Background(), policy, "delete", "-f", "-") })
	ns := framework.Namespace(ctx, t, cluster.Client, "claim-fields")

	class := func(name, params string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"DeviceClass","metadata":{"name":%q},
"spec":{"config":[{"opaque":{"driver":%q,"parameters":{%s%s}}}]}}`, name, driverName, netConfigHead, params)
	}
	classes := map[string]string{
		"e2e-sec-plain": class("e2e-sec-plain", ``),
		"e2e-sec-grant": class("e2e-sec-grant", `,"claimMaySet":["network.vlan","network.trust"]`),
		// An admin's class may set every class-only field.
		"e2e-sec-vlan": class("e2e-sec-vlan", `,"driver":"vfio-pci","needVhostNet":true,"network":{"vlan":100,"vlanQoS":2,"mtu":9000,"trust":true,"spoofChk":false}`),
	}
	for name, obj := range classes {
		out, err := kubectl(ctx, obj, "apply", "-f", "-")
		require.NoError(t, err, "class %s: %s", name, out)
		t.Cleanup(func() { _, _ = kubectl(context.Background(), "", "delete", "deviceclass", name, "--ignore-not-found") })
	}

	// requests is a claim spec's devices.requests; configs its config list.
	claim := func(name, requests, configs string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":%q,"namespace":%q},
"spec":{"devices":{"requests":%s,"config":%s}}}`, name, ns, requests, configs)
	}
	template := func(name, requests, configs string) string {
		return fmt.Sprintf(`{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{"name":%q,"namespace":%q},
"spec":{"spec":{"devices":{"requests":%s,"config":%s}}}}`, name, ns, requests, configs)
	}
	oneRequest := func(class string) string {
		return fmt.Sprintf(`[{"name":"vf","exactly":{"deviceClassName":%q}}]`, class)
	}
	// Another driver's config first: ours is config[1].
	configs := func(params string) string {
		return fmt.Sprintf(`[{"opaque":{"driver":"other.example.com","parameters":{"any":1}}},{"opaque":{"driver":%q,"parameters":{%s%s}}}]`,
			driverName, netConfigHead, params)
	}
	// The policy and its parameters (the classes) take a moment to be seen.
	require.Eventually(t, func() bool {
		out, err := kubectl(ctx, claim("probe", oneRequest("e2e-sec-plain"), configs(`,"driver":"vfio-pci"`)), "apply", "--dry-run=server", "-f", "-")
		return err != nil && strings.Contains(out, "denied request")
	}, 30*time.Second, 200*time.Millisecond, "the policy refuses a claim setting driver")

	for i, tc := range classOnlyCases {
		nc, err := netconfig.Decode([]byte("{" + netConfigHead + "," + tc.params + "}"))
		require.NoError(t, err, tc.params)
		_, prepareErr := netconfig.CheckClaim(nc, grantClass(tc.grants), tc.grants)
		require.Error(t, prepareErr, "prepare refuses %s", tc.params)
		require.Contains(t, prepareErr.Error(), tc.field+" may only be set by a DeviceClass")
		for kind, obj := range map[string]string{
			"claim":    claim(fmt.Sprintf("bad-%d", i), oneRequest(grantClass(tc.grants)), configs(","+tc.params)),
			"template": template(fmt.Sprintf("bad-%d", i), oneRequest(grantClass(tc.grants)), configs(","+tc.params)),
		} {
			out, err := kubectl(ctx, obj, "apply", "-f", "-")
			if assert.Error(t, err, "%s with %s accepted", kind, tc.params) {
				assert.Contains(t, out, "denied request: claim config[1]: "+prepareErr.Error(), "%s with %s", kind, tc.params)
			}
		}
	}

	// A firstAvailable request may end up with either class: a field needs
	// the grant of each. A config naming only the granting request is fine.
	either := `[{"name":"vf","firstAvailable":[{"name":"fast","deviceClassName":"e2e-sec-grant"},{"name":"slow","deviceClassName":"e2e-sec-plain"}]}]`
	out, err = kubectl(ctx, claim("either", either, configs(`,"network":{"vlan":7}`)), "apply", "-f", "-")
	assert.Error(t, err)
	assert.Contains(t, out, "denied request: claim config[1]: network.vlan may only be set by a DeviceClass; DeviceClass e2e-sec-plain does not grant it to claims (claimMaySet)")
	two := `[{"name":"a","exactly":{"deviceClassName":"e2e-sec-grant"}},{"name":"b","exactly":{"deviceClassName":"e2e-sec-plain"}}]`
	onlyA := fmt.Sprintf(`[{"requests":["a"],"opaque":{"driver":%q,"parameters":{%s,"network":{"vlan":7}}}}]`, driverName, netConfigHead)
	good := map[string]string{
		"claim-safe fields": claim("safe", oneRequest("e2e-sec-plain"), configs(`,"resourceName":"acme.io/net","rdma":true,"additionalInfo":{"k":"v"},`+
			`"network":{"interfaceName":"net1","mac":"02:00:00:00:00:01","addresses":["10.0.0.2/24"],"routes":[{"destination":"10.1.0.0/16","gateway":"10.0.0.1"}]}`)),
		"claim-safe fields in a template":                template("safe", oneRequest("e2e-sec-plain"), configs(`,"network":{"interfaceName":"net1","addresses":["10.0.0.2/24"]}`)),
		"granted fields":                                 claim("granted", oneRequest("e2e-sec-grant"), configs(`,"network":{"vlan":7,"trust":true}`)),
		"granted fields in a template":                   template("granted", oneRequest("e2e-sec-grant"), configs(`,"network":{"vlan":7,"trust":true}`)),
		"a config for the granting request only":         claim("only-a", two, onlyA),
		"a class the policy cannot see (prepare checks)": claim("no-class", oneRequest("e2e-sec-missing"), configs(`,"network":{"vlan":7}`)),
	}
	for what, obj := range good {
		out, err := kubectl(ctx, obj, "apply", "-f", "-")
		assert.NoError(t, err, "%s: %s", what, out)
	}
	// What the policy let through, prepare refuses with the same words.
	nc, err := netconfig.Decode([]byte(`{` + netConfigHead + `,"network":{"vlan":7}}`))
	require.NoError(t, err)
	_, err = netconfig.CheckClaim(nc, "e2e-sec-missing", nil)
	assert.EqualError(t, err, "network.vlan may only be set by a DeviceClass; DeviceClass e2e-sec-missing does not grant it to claims (claimMaySet)")
}

// TestClassOnlyFieldsAtPrepare: without the admission policy, the driver's
// prepare keeps a claim from setting what its class does not grant, and
// a pod on it does not start, its event saying why; a class's VLAN and a
// granted claim VLAN reach the VF through its PF; a class asking for a
// driver outside --allowed-drivers is refused at prepare.
func TestClassOnlyFieldsAtPrepare(t *testing.T) {
	ctx := t.Context()
	nriNetdevs(t)
	h := newSimHost(t, nriSpec())
	sel := fmt.Sprintf(`device.driver == %q && device.attributes[%q].pfName == %q`, driverName, driverName, nriPF)
	classWithConfig(ctx, t, "e2e-prep-vlan", sel, `{`+netConfigHead+`,"network":{"vlan":100}}`)
	classWithConfig(ctx, t, "e2e-prep-grant", sel, `{`+netConfigHead+`,"claimMaySet":["network.vlan"]}`)
	classWithConfig(ctx, t, "e2e-prep-plain", sel, "")
	classWithConfig(ctx, t, "e2e-prep-uio", sel, `{`+netConfigHead+`,"driver":"uio_pci_generic"}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "claim-prepare")
	startNRIDriver(t, h)

	vlanOf := func(t *testing.T, claim string) int {
		devs := claimDevices(ctx, t, ns, claim)
		require.Len(t, devs, 1)
		return vfState(t, h, nriVF(t, devs[0])).VLAN
	}
	t.Run("a class's VLAN", func(t *testing.T) {
		runUntilDone(ctx, t, ns, podWithClaims(ns, "class-vlan", showLinks, "class-vlan"),
			netClaim(ns, "class-vlan", "e2e-prep-vlan", 1, `"interfaceName":"net1"`))
		assert.Equal(t, 100, vlanOf(t, "class-vlan"), "the class's VLAN on the VF, set through the PF")
		vf := nriVF(t, claimDevices(ctx, t, ns, "class-vlan")[0])
		deletePodAndWaitUnprepared(ctx, t, ns, "class-vlan", claimUID(ctx, t, ns, "class-vlan"))
		assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vfState(t, h, vf), "put back")
	})
	t.Run("a granted claim VLAN", func(t *testing.T) {
		runUntilDone(ctx, t, ns, podWithClaims(ns, "granted", showLinks, "granted"),
			netClaim(ns, "granted", "e2e-prep-grant", 1, `"interfaceName":"net1","vlan":42`))
		assert.Equal(t, 42, vlanOf(t, "granted"))
		deletePodAndWaitUnprepared(ctx, t, ns, "granted", claimUID(ctx, t, ns, "granted"))
	})
	refused := func(t *testing.T, name, class, network, want string) {
		_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, netClaim(ns, name, class, 1, network), metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, podWithClaims(ns, name, "exec sleep 3600", name), metav1.CreateOptions{})
		require.NoError(t, err)
		var msgs []string
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			evs, err := cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
			if err != nil {
				return false, nil
			}
			msgs = msgs[:0]
			for _, e := range evs.Items {
				msgs = append(msgs, e.Reason+": "+e.Message)
				if e.Reason == "FailedPrepareDynamicResources" && strings.Contains(e.Message, want) {
					return true, nil
				}
			}
			return false, nil
		})
		require.NoError(t, err, "pod %s's events: %q", name, msgs)
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.NotEqual(t, "Running", string(p.Status.Phase))
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}))
	}
	t.Run("an ungranted claim VLAN", func(t *testing.T) {
		refused(t, "ungranted", "e2e-prep-plain", `"interfaceName":"net1","vlan":42`,
			"claim config[0]: network.vlan may only be set by a DeviceClass; DeviceClass e2e-prep-plain does not grant it to claims (claimMaySet)")
	})
	t.Run("a driver outside --allowed-drivers", func(t *testing.T) {
		refused(t, "uio", "e2e-prep-uio", "",
			`driver "uio_pci_generic" is not allowed on this node (--allowed-drivers=vfio-pci)`)
	})
	for i := range 4 {
		assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vfState(t, h, i), "VF %d untouched at the end", i)
	}
}
