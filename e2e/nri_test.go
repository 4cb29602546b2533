//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// The NRI tier: the simulated host's PF sdte0 has four iavf VFs whose
// netdevs sdte0v0..sdte0v3 the test makes real, in the host's network
// namespace: veth ends (this kernel has no dummy driver) whose peers stay
// down, so nothing leaves the node. The driver runs with --nri against the
// cluster's containerd.

const nriPF = framework.NetdevPrefix + "0"

func nriSpec() simhost.Spec {
	return simhost.Spec{PFs: []simhost.PF{{Address: "0000:5a:00.0", Model: "e810", IfName: nriPF, NumVFs: 4}}}
}

// nriVFMAC is the MAC the test gives VF i's netdev.
func nriVFMAC(i int) string { return fmt.Sprintf("02:5d:00:00:00:%02x", i) }

// nriVF is the VF index of one of the PF's devices: its VFs are functions
// 0000:5a:02.<i> (e810's offset 16, stride 1), named pci-0000-5a-02-<i>.
func nriVF(t *testing.T, device string) int {
	t.Helper()
	var i int
	_, err := fmt.Sscanf(device, "pci-0000-5a-02-%d", &i)
	require.NoError(t, err, "device %s", device)
	return i
}

func nriNetdevs(t *testing.T) {
	t.Helper()
	for i := range 4 {
		simhosttest.Netdev(t, "", fmt.Sprintf("%sv%d", nriPF, i), nriVFMAC(i))
	}
}

// hostMAC is the MAC of the host's netdev name, "" when it has none of
// that name.
func hostMAC(t *testing.T, name string) string {
	return simhosttest.Links(t, "")[name].Address
}

func nriConnections(d *driverProcess) int {
	b, _ := os.ReadFile(d.log)
	return strings.Count(string(b), "Connected to the runtime")
}

func waitNRIConnections(t *testing.T, d *driverProcess, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return nriConnections(d) >= n }, 60*time.Second, 100*time.Millisecond,
		"the driver did not connect to containerd's NRI (%d times); its log: %s", n, d.log)
}

func startNRIDriver(t *testing.T, h *simHost) *driverProcess {
	t.Helper()
	d := startDriver(t, driverOpts{host: h, extraFlags: []string{"--nri", "--nri-socket", cluster.NRISocket()}})
	waitNRIConnections(t, d, 1)
	return d
}

// netClaim asks for count devices of the class, with a network section.
func netClaim(ns, name, class string, count int64, network string) *resourceapi.ResourceClaim {
	c := simpleClaim(ns, name, class, count)
	if network != "" {
		c.Spec.Devices.Config = []resourceapi.DeviceClaimConfiguration{{DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: driverName, Parameters: runtime.RawExtension{
				Raw: []byte(`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","network":{` + network + `}}`)}},
		}}}
	}
	return c
}

// showLinks is a pod script printing its netdevs as `ip -o` lines.
const showLinks = "ip -o link show; ip -o addr show"

// vfState reads the simulated PF's settings of VF i.
func vfState(t *testing.T, h *simHost, i int) host.VFState {
	t.Helper()
	sh, err := simhost.Open(h.dir)
	require.NoError(t, err)
	st, err := sh.VF(nriPF, i)
	require.NoError(t, err)
	return st
}

func TestNRI(t *testing.T) {
	ctx := t.Context()
	nriNetdevs(t)
	h := newSimHost(t, nriSpec())
	// The claims set their VLAN and MTU, which the class grants them.
	classWithConfig(ctx, t, "e2e-nri", fmt.Sprintf(`device.driver == %q && device.attributes[%q].pfName == %q`, driverName, driverName, nriPF),
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","claimMaySet":["network.vlan","network.mtu"]}`)
	ns := framework.Namespace(ctx, t, cluster.Client, "nri")
	d := startNRIDriver(t, h)

	t.Run("pod sees net1 with its MAC and addresses", func(t *testing.T) {
		claim := netClaim(ns, "one", "e2e-nri", 1, `"interfaceName":"net1","mac":"02:5d:aa:00:00:01","vlan":42,"addresses":["10.77.0.5/24","fd00:77::5/64"]`)
		logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "one", showLinks, "one"), claim)
		assert.Regexp(t, `\d+: net1[:@].*link/ether 02:5d:aa:00:00:01`, logs)
		assert.Regexp(t, `net1\s+inet 10\.77\.0\.5/24`, logs)
		assert.Regexp(t, `net1\s+inet6 fd00:77::5/64`, logs)

		dev := claimDevices(ctx, t, ns, "one")
		require.Len(t, dev, 1)
		vf := nriVF(t, dev[0])
		hostName := fmt.Sprintf("%sv%d", nriPF, vf)
		assert.Empty(t, hostMAC(t, hostName), "%s left the host's namespace", hostName)
		assert.Equal(t, host.VFState{MAC: "02:5d:aa:00:00:01", VLAN: 42, SpoofChk: true}, vfState(t, h, vf), "set through the (simulated) PF")

		var status *resourceapi.NetworkDeviceData
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "one", metav1.GetOptions{})
			if err != nil || len(c.Status.Devices) != 1 || c.Status.Devices[0].NetworkData == nil {
				return false, nil
			}
			status = c.Status.Devices[0].NetworkData
			return status.InterfaceName == "net1", nil
		}), "claim status")
		assert.Equal(t, &resourceapi.NetworkDeviceData{InterfaceName: "net1", HardwareAddress: "02:5d:aa:00:00:01",
			IPs: []string{"10.77.0.5/24", "fd00:77::5/64"}}, status)

		deletePodAndWaitUnprepared(ctx, t, ns, "one", claimUID(ctx, t, ns, "one"))
		assert.Equal(t, nriVFMAC(vf), hostMAC(t, hostName), "%s is back in the host's namespace with its MAC", hostName)
		assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vfState(t, h, vf), "PF settings put back")
	})

	t.Run("two pods with two VFs each at once", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			_, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, netClaim(ns, "two-"+name, "e2e-nri", 2, ""+`"mtu":1400`), metav1.CreateOptions{})
			require.NoError(t, err)
		}
		for _, name := range []string{"a", "b"} {
			pod := podWithClaims(ns, "two-"+name, showLinks+"; echo DONE; exec sleep 3600", "two-"+name)
			_, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			require.NoError(t, err)
		}
		for _, name := range []string{"a", "b"} {
			logs := waitLog(ctx, t, ns, "two-"+name, "DONE")
			devs := claimDevices(ctx, t, ns, "two-"+name)
			require.Len(t, devs, 2)
			for i, dev := range devs {
				// net1, net2 in allocation order, each with its own VF's MAC.
				assert.Regexp(t, fmt.Sprintf(`\d+: net%d[:@].*mtu 1400.*link/ether %s`, i+1, nriVFMAC(nriVF(t, dev))), logs, "pod %s", name)
			}
			assert.Len(t, regexp.MustCompile(`\d+: net\d`).FindAllString(logs, -1), 2, "pod %s has exactly two of them", name)
		}
		for _, name := range []string{"a", "b"} {
			deletePodAndWaitUnprepared(ctx, t, ns, "two-"+name, claimUID(ctx, t, ns, "two-"+name))
		}
		for i := range 4 {
			assert.NotEmpty(t, hostMAC(t, fmt.Sprintf("%sv%d", nriPF, i)), "VF %d's netdev is back", i)
		}
	})

	t.Run("containerd restart: the plugin reconnects", func(t *testing.T) {
		before := nriConnections(d)
		require.NoError(t, cluster.RestartContainerd(ctx))
		up := time.Now()
		waitNRIConnections(t, d, before+1)
		t.Logf("the driver was connected again %s after containerd answered", time.Since(up).Round(time.Millisecond))
		claim := netClaim(ns, "after", "e2e-nri", 1, `"interfaceName":"data0"`)
		logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "after", showLinks, "after"), claim)
		assert.Regexp(t, `\d+: data0[:@]`, logs)
		deletePodAndWaitUnprepared(ctx, t, ns, "after", claimUID(ctx, t, ns, "after"))
	})

	t.Run("kill -9 while the pod runs: repaired at start-up", func(t *testing.T) {
		claim := netClaim(ns, "crash", "e2e-nri", 1, `"interfaceName":"net1","mac":"02:5d:aa:00:00:09","vlan":9`)
		runUntilDone(ctx, t, ns, podWithClaims(ns, "crash", showLinks, "crash"), claim)
		vf := nriVF(t, claimDevices(ctx, t, ns, "crash")[0])
		netns := ""
		for _, e := range readCheckpoint(t).Claims {
			for _, dev := range e.Devices {
				if dev.InPod != nil {
					netns = dev.InPod.NetNS
				}
			}
		}
		require.NotEmpty(t, netns, "the checkpoint records the pod's namespace")

		d.kill()
		// The pod goes while the driver is down. A VF returns to the host's
		// namespace under its pod name when the namespace is destroyed; a
		// veth would be destroyed with it, so the test moves it as the
		// kernel would move a VF.
		out, err := exec.Command("nsenter", "--net="+netns, "ip", "link", "set", "net1", "netns", "1").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "crash", metav1.DeleteOptions{}))
		require.Eventually(t, func() bool { _, err := os.Stat(netns); return os.IsNotExist(err) }, 60*time.Second, 200*time.Millisecond,
			"the sandbox's namespace was not removed")
		require.NotEmpty(t, hostMAC(t, "net1"), "the netdev is on the host under its pod name")

		d = startNRIDriver(t, h)
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(d.log)
			return regexp.MustCompile(`"Netdev back on the host".*repair="sandbox gone"`).Match(b)
		}, 10*time.Second, 100*time.Millisecond, "start-up repairs the netdev; log %s", d.log)
		deletePodAndWaitUnprepared(ctx, t, ns, "crash", claimUID(ctx, t, ns, "crash"))
		assert.Equal(t, nriVFMAC(vf), hostMAC(t, fmt.Sprintf("%sv%d", nriPF, vf)), "renamed back, its MAC put back")
		assert.Empty(t, hostMAC(t, "net1"))
		assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vfState(t, h, vf), "PF settings put back")
	})

	// Nothing of the test's is left in a pod.
	for i := range 4 {
		assert.NotEmpty(t, hostMAC(t, fmt.Sprintf("%sv%d", nriPF, i)), "VF %d's netdev on the host at the end", i)
	}
}

func claimUID(ctx context.Context, t *testing.T, ns, name string) string {
	t.Helper()
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	return string(c.UID)
}
