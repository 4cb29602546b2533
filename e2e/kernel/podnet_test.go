//go:build kernel

package kernel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// iproute2 is in the VM as /usr/sbin/ip; busybox's ip is /bin/ip.
const iproute2 = "/usr/sbin/ip"

func ipr(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(iproute2, args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// vfLine is the PF's line for VF i in `ip link show <pf>`.
func vfLine(t *testing.T, pf string, i int) string {
	t.Helper()
	m := regexp.MustCompile(fmt.Sprintf(`(?m)^\s+vf %d .*$`, i)).FindString(ipr(t, "link", "show", pf))
	require.NotEmpty(t, m, "ip link show %s lists VF %d", pf, i)
	return m
}

// linkMAC is the MAC of netdev name in network namespace ns ("": the host's).
func linkMAC(t *testing.T, ns, name string) string {
	t.Helper()
	args := []string{"-j", "link", "show", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	var l []struct {
		Address string `json:"address"`
	}
	require.NoError(t, json.Unmarshal([]byte(ipr(t, args...)), &l))
	require.Len(t, l, 1)
	return l[0].Address
}

// TestNetdevIntoNetnsWithVFSettings moves a real igbvf netdev into a
// network namespace the test makes, with a MAC and VLAN set through the PF,
// as the NRI path does for a pod, and puts everything back.
func TestNetdevIntoNetnsWithVFSettings(t *testing.T) {
	inv := discoverReal(t)
	vf := vfsOf(inv, igbPFs(t)[0])[1]
	h := realHost()
	ipr(t, "netns", "add", "sdt-pod")
	t.Cleanup(func() { _ = exec.Command(iproute2, "netns", "del", "sdt-pod").Run() })
	podNS := "/run/netns/sdt-pod"
	origNetdevMAC := linkMAC(t, "", vf.IfName)
	before := vfLine(t, vf.PFName, vf.VFIndex)
	t.Logf("before: %s: %s; netdev %s %s", vf.PFName, strings.TrimSpace(before), vf.IfName, origNetdevMAC)
	assert.NotContains(t, before, "vlan", "no VLAN to begin with")

	mac, vlan := "02:5d:aa:00:00:01", 42
	cfg := host.VFConfig{MAC: &mac, VLAN: &vlan}
	orig, err := h.VF(vf.PFName, vf.VFIndex)
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, h.SetVF(vf.PFName, vf.VFIndex, cfg))
	link, err := h.MoveLinkToPod(vf.IfName, host.PodLink{NetNS: podNS, Name: "net1", MAC: mac, MACOnPF: true,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.77.0.5/24")}})
	require.NoError(t, err)
	t.Logf("VF settings and move into the namespace: %s", time.Since(start).Round(time.Microsecond))

	set := vfLine(t, vf.PFName, vf.VFIndex)
	t.Logf("set: %s", strings.TrimSpace(set))
	assert.Contains(t, set, "link/ether "+mac)
	assert.Contains(t, set, "vlan 42")
	assert.Equal(t, mac, linkMAC(t, "sdt-pod", "net1"), "the netdev in the namespace")
	assert.Contains(t, ipr(t, "-n", "sdt-pod", "addr", "show", "net1"), "inet 10.77.0.5/24")
	_, err = exec.Command(iproute2, "link", "show", vf.IfName).CombinedOutput()
	assert.Error(t, err, "%s left the host's namespace", vf.IfName)

	// In the driver's order: the PF's settings, then the netdev.
	require.NoError(t, h.SetVF(vf.PFName, vf.VFIndex, orig.Restore(cfg)))
	require.NoError(t, h.MoveLinkToHost(podNS, "net1", link))
	after := vfLine(t, vf.PFName, vf.VFIndex)
	t.Logf("after: %s", strings.TrimSpace(after))
	assert.Equal(t, strings.TrimSpace(before), strings.TrimSpace(after), "the PF's settings of the VF put back")
	assert.Equal(t, origNetdevMAC, linkMAC(t, "", vf.IfName), "%s back under its name and MAC", vf.IfName)
	assert.NotContains(t, ipr(t, "-n", "sdt-pod", "link", "show"), "net1")
}
