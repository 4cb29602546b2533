package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/nriplugin"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// vfMAC is the MAC the test gives the netdev of VF i of ens1f0.
func vfMAC(i int) string { return fmt.Sprintf("02:00:00:00:10:%02x", i) }

// podNetNode is a node over the e810 host (VFs 0-3: pci-0000-3b-02-<i>,
// netdevs ens1f0v<i>) whose VF netdevs are real netdevs in a network
// namespace of the test's, standing for the host's, with the runtime's
// NRI connected.
func podNetNode(t *testing.T, wrap ...func(Host) Host) (*testNode, string) {
	t.Helper()
	hostNS := simhosttest.Netns(t)
	for i := range 4 {
		simhosttest.Netdev(t, hostNS, fmt.Sprintf("ens1f0v%d", i), vfMAC(i))
	}
	o := nodeOpts{spec: e810(), objects: []runtime.Object{testClass}, netNS: hostNS}
	if len(wrap) > 0 {
		o.wrap = wrap[0]
	}
	n := newTestNode(t, o)
	n.setRuntime(true)
	return n, hostNS
}

// podWithNetdev is podNetNode with claim u1 (that network section, that
// device) prepared for pod-a, and its sandbox sb1 created in a namespace of
// the test's.
func podWithNetdev(t *testing.T, network, device string) (n *testNode, hostNS, podNS string) {
	t.Helper()
	n, hostNS = podNetNode(t)
	podNS = simhosttest.Netns(t)
	require.NoError(t, n.prepareOne(t, podClaim("u1", network, "pod-a", device)).Err)
	require.NoError(t, n.podnet.SandboxCreated(context.Background(), sandbox("sb1", "pod-a", podNS)))
	return n, hostNS, podNS
}

const netConfig = `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","network":{%s}}`

// podClaim is claimFor with a network section, reserved for pod.
func podClaim(uid, network, pod string, devices ...string) *resourceapi.ResourceClaim {
	c := claimFor(uid, fmt.Sprintf(netConfig, network), devices...)
	c.Status.ReservedFor[0].UID = types.UID(pod)
	c.Status.ReservedFor[0].Name = pod
	return c
}

// networkData is the claim's network status as the API has it (nil: none).
func networkData(t *testing.T, n *testNode, claim string) *resourceapi.NetworkDeviceData {
	t.Helper()
	st := claimStatusOf(t, n, claim)
	if len(st) != 1 {
		return nil
	}
	return st[0].NetworkData
}

func sandbox(id, pod, netNS string) nriplugin.Sandbox {
	return nriplugin.Sandbox{ID: id, PodUID: pod, Namespace: "ns", Name: pod, NetNS: netNS}
}

func TestNetdevIntoPodAndBack(t *testing.T) {
	n, hostNS := podNetNode(t)
	podNS := simhosttest.Netns(t)
	c := podClaim("u1", `"interfaceName":"net1","mac":"02:AB:00:00:00:01","vlan":100,"vlanQoS":2,"mtu":9000,
		"addresses":["10.56.0.5/24","fd00:56::5/64"],"routes":[{"destination":"10.57.0.0/16","gateway":"10.56.0.1"}]`, "pod-a", "pci-0000-3b-02-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := n.client.ResourceV1().ResourceClaims(c.Namespace).Create(ctx, c, metav1.CreateOptions{})
	require.NoError(t, err)
	go n.podnet.Run(ctx) // the claim status writer
	require.NoError(t, n.prepareOne(t, c).Err)
	assert.Nil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod, "prepare moves nothing")
	require.NoError(t, n.podnet.SandboxCreated(ctx, sandbox("sb1", "pod-a", podNS)))

	assert.NotContains(t, simhosttest.Links(t, hostNS), "ens1f0v1")
	net1 := simhosttest.Links(t, podNS)["net1"]
	assert.Equal(t, "02:ab:00:00:00:01", net1.Address)
	assert.Equal(t, 9000, net1.MTU)
	assert.Subset(t, net1.Addresses(), []string{"10.56.0.5/24", "fd00:56::5/64"})
	assert.Contains(t, simhosttest.IP(t, "-n", simhosttest.NsName(podNS), "route", "show", "10.57.0.0/16"), "via 10.56.0.1 dev net1")
	vf, err := n.h.VF("ens1f0", 1)
	require.NoError(t, err)
	assert.Equal(t, host.VFState{MAC: "02:ab:00:00:00:01", VLAN: 100, QoS: 2, SpoofChk: true}, vf, "set through the PF")
	untouched, err := n.h.VF("ens1f0", 0)
	require.NoError(t, err)
	assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, untouched)

	at := n.checkpoint(t).Claims["u1"].Devices[0].InPod
	require.NotNil(t, at)
	assert.Equal(t, checkpoint.InPodAttached, at.State)
	assert.Equal(t, "ens1f0v1", at.Host.Name)
	inPod := &resourceapi.NetworkDeviceData{InterfaceName: "net1", HardwareAddress: "02:ab:00:00:00:01", IPs: []string{"10.56.0.5/24", "fd00:56::5/64"}}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(inPod, networkData(t, n, c.Name)) }, 10*time.Second, 10*time.Millisecond,
		"the claim's status shows the netdev as the pod sees it; now %+v", networkData(t, n, c.Name))

	require.NoError(t, n.podnet.SandboxCreated(ctx, sandbox("sb1", "pod-a", podNS)), "told twice: nothing to do")

	require.NoError(t, n.podnet.SandboxStopped(ctx, sandbox("sb1", "pod-a", podNS)))
	back := simhosttest.Links(t, hostNS)["ens1f0v1"]
	assert.Equal(t, vfMAC(1), back.Address)
	assert.Equal(t, 1500, back.MTU)
	assert.NotContains(t, simhosttest.Links(t, podNS), "net1")
	vf, err = n.h.VF("ens1f0", 1)
	require.NoError(t, err)
	assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vf, "the PF's settings put back")
	assert.Nil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod)
	require.Eventually(t, func() bool { nd := networkData(t, n, c.Name); return nd != nil && nd.InterfaceName == "ens1f0v1" },
		10*time.Second, 10*time.Millisecond, "the claim's status shows the netdev back on the host; now %+v", networkData(t, n, c.Name))

	require.NoError(t, n.podnet.SandboxStopped(ctx, sandbox("sb1", "pod-a", podNS)), "removal after stop: nothing to do")
	require.NoError(t, n.unprepareOne(t, c))
}

func TestTwoPodsAtOnceKeepTheirOwnNetdevs(t *testing.T) {
	n, _ := podNetNode(t)
	pods := map[string][]string{"pod-a": {"pci-0000-3b-02-0", "pci-0000-3b-02-3"}, "pod-b": {"pci-0000-3b-02-1", "pci-0000-3b-02-2"}}
	netns := map[string]string{}
	for pod, devs := range pods {
		netns[pod] = simhosttest.Netns(t)
		require.NoError(t, n.prepareOne(t, podClaim("claim-"+pod, "", pod, devs...)).Err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	for pod := range pods {
		wg.Go(func() { errs <- n.podnet.SandboxCreated(context.Background(), sandbox("sb-"+pod, pod, netns[pod])) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Each pod has net1 and net2, in allocation order, with its own VFs'
	// MACs (those the test gave the netdevs).
	want := map[string][]int{"pod-a": {0, 3}, "pod-b": {1, 2}}
	for pod, vfs := range want {
		in := simhosttest.Links(t, netns[pod])
		assert.Equal(t, vfMAC(vfs[0]), in["net1"].Address, pod)
		assert.Equal(t, vfMAC(vfs[1]), in["net2"].Address, pod)
		assert.Len(t, in, 3, "%s: lo, net1, net2", pod)
	}
}

func TestSandboxFailureLeavesEveryNetdevOnTheHost(t *testing.T) {
	n, hostNS := podNetNode(t)
	podNS := simhosttest.Netns(t)
	simhosttest.Netdev(t, podNS, "net2", "02:00:00:00:99:99") // taken in the pod
	require.NoError(t, n.prepareOne(t, podClaim("u1", `"vlan":7`, "pod-a", "pci-0000-3b-02-0", "pci-0000-3b-02-1")).Err)

	err := n.podnet.SandboxCreated(context.Background(), sandbox("sb1", "pod-a", podNS))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "device pci-0000-3b-02-1 (ens1f0v1): rename to net2:", "names the device and the step")

	on := simhosttest.Links(t, hostNS)
	for i := range 2 {
		assert.Equal(t, vfMAC(i), on[fmt.Sprintf("ens1f0v%d", i)].Address)
		vf, err := n.h.VF("ens1f0", i)
		require.NoError(t, err)
		assert.Equal(t, 0, vf.VLAN, "VF %d's VLAN put back", i)
	}
	assert.NotContains(t, simhosttest.Links(t, podNS), "net1")
	for _, d := range n.checkpoint(t).Claims["u1"].Devices {
		assert.Nil(t, d.InPod)
	}
}

func TestSandboxGoneWhileTheDriverWasDownIsRepaired(t *testing.T) {
	n, hostNS, podNS := podWithNetdev(t, `"interfaceName":"data0","mac":"02:ab:00:00:00:07","vlan":5`, "pci-0000-3b-02-2")
	ctx := context.Background()

	// The sandbox goes while the driver is down: a physical VF returns to
	// the host's namespace under its pod name (the test moves the veth as
	// the kernel would move a VF; a destroyed namespace takes a veth along).
	simhosttest.IP(t, "-n", simhosttest.NsName(podNS), "link", "set", "data0", "netns", simhosttest.NsName(hostNS))
	simhosttest.IP(t, "netns", "del", simhosttest.NsName(podNS))

	restarted := newTestNode(t, nodeOpts{root: n.root, netNS: hostNS, objects: []runtime.Object{testClass}})
	require.NoError(t, restarted.claims.Recover(ctx), "start-up: the namespace is gone")

	back := simhosttest.Links(t, hostNS)["ens1f0v2"]
	assert.Equal(t, vfMAC(2), back.Address, "name and MAC put back")
	vf, err := n.h.VF("ens1f0", 2)
	require.NoError(t, err)
	assert.Equal(t, host.VFState{MAC: "00:00:00:00:00:00", SpoofChk: true}, vf)
	assert.Nil(t, restarted.checkpoint(t).Claims["u1"].Devices[0].InPod)
}

func TestSandboxTheRuntimeNoLongerListsIsRepaired(t *testing.T) {
	n, hostNS, podNS := podWithNetdev(t, `"vlan":5`, "pci-0000-3b-02-2")
	ctx := context.Background()

	n.podnet.SandboxesExist(ctx, []nriplugin.Sandbox{sandbox("sb1", "pod-a", podNS)})
	assert.NotNil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod, "listed, namespace there: left alone")
	require.NoError(t, n.claims.Recover(ctx))
	assert.NotNil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod, "start-up leaves a live namespace alone")

	n.podnet.SandboxesExist(ctx, []nriplugin.Sandbox{sandbox("other", "pod-b", "")})
	assert.Equal(t, vfMAC(2), simhosttest.Links(t, hostNS)["ens1f0v2"].Address, "not listed: moved back")
	assert.Nil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod)
	vf, err := n.h.VF("ens1f0", 2)
	require.NoError(t, err)
	assert.Equal(t, 0, vf.VLAN)
}

func TestNetworkSectionRefused(t *testing.T) {
	n, _ := podNetNode(t)
	tests := []struct {
		name, config  string
		on, connected bool
		want          string
	}{
		{"no NRI", `"interfaceName":"net1"`, false, false, "does not move netdevs into pods (start it with --nri)"},
		{"NRI not connected", `"interfaceName":"net1"`, true, false, "the container runtime's NRI is not connected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n.runtime.on, n.runtime.connected = tc.on, tc.connected
			res := n.prepareOne(t, podClaim("u-"+tc.name, tc.config, "pod-a", "pci-0000-3b-02-0"))
			require.Error(t, res.Err)
			assert.Contains(t, res.Err.Error(), tc.want)
		})
	}
	n.setRuntime(true)
	c := claimFor("vfio", `{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci","network":{"interfaceName":"net1","mtu":9000}}`, "pci-0000-3b-02-0")
	res := n.prepareOne(t, c)
	require.Error(t, res.Err)
	assert.Contains(t, res.Err.Error(), `device pci-0000-3b-02-0 has no kernel netdev (driver "vfio-pci"): network.interfaceName, mtu, addresses and routes need one`)
	assert.Equal(t, "iavf", n.driverOf(t, "0000:3b:02.0"), "refused before anything was touched")
}

func TestNamespaceDirectoryNotVisibleIsNotARemovedNamespace(t *testing.T) {
	n, hostNS, _ := podWithNetdev(t, `"vlan":5`, "pci-0000-3b-02-2")
	ctx := context.Background()

	// The driver restarts in a container that does not see the runtime's
	// netns directory (a changed mount): it cannot tell the pod is gone.
	cp := n.checkpoint(t)
	cp.Claims["u1"].Devices[0].InPod.NetNS = filepath.Join(t.TempDir(), "not-mounted", "cni-1")
	require.NoError(t, checkpoint.Save(n.state.Path(), cp))
	require.NoError(t, n.claims.Recover(ctx))
	assert.NotNil(t, n.checkpoint(t).Claims["u1"].Devices[0].InPod, "left alone")
	vf, err := n.h.VF("ens1f0", 2)
	require.NoError(t, err)
	assert.Equal(t, 5, vf.VLAN, "the live pod's VF keeps its VLAN")
	assert.NotContains(t, simhosttest.Links(t, hostNS), "ens1f0v2")
}

// BenchmarkSandboxEvents is what the NRI path costs a pod's sandbox
// creation and stop: for a pod with no netdev to move (most pods of a node),
// with 64 prepared claims of other pods in the checkpoint, and for a pod
// whose one VF netdev moves in and out (real netlink, a veth standing for
// the VF).
func BenchmarkSandboxEvents(b *testing.B) {
	hostNS := simhosttest.Netns(b)
	simhosttest.Netdev(b, hostNS, "ens1f0v0", vfMAC(0))
	n := newTestNode(b, nodeOpts{spec: simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 64}}},
		objects: []runtime.Object{testClass}, netNS: hostNS})
	n.setRuntime(true)
	for i := 1; i < 64; i++ {
		dev := fmt.Sprintf("pci-0000-3b-%02x-%x", 2+(i/8), i%8)
		if res := n.prepareOne(b, podClaim(fmt.Sprintf("other-%d", i), "", fmt.Sprintf("pod-%d", i), dev)); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.Run("pod without netdevs", func(b *testing.B) {
		sb := sandbox("sb", "plain-pod", "/nonexistent")
		sandboxCycles(b, n, sb)
	})
	b.Run("pod with one VF netdev", func(b *testing.B) {
		podNS := simhosttest.Netns(b)
		if res := n.prepareOne(b, podClaim("mine", `"interfaceName":"net1","vlan":7,"addresses":["10.9.0.5/24"]`, "my-pod", "pci-0000-3b-02-0")); res.Err != nil {
			b.Fatal(res.Err)
		}
		sb := sandbox("sb", "my-pod", podNS)
		sandboxCycles(b, n, sb)
	})
}

// sandboxCycles creates and stops the sandbox b.N times.
func sandboxCycles(b *testing.B, n *testNode, sb nriplugin.Sandbox) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := n.podnet.SandboxCreated(ctx, sb); err != nil {
			b.Fatal(err)
		}
		if err := n.podnet.SandboxStopped(ctx, sb); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSandboxFailureTouchesNoVFItDidNotTry(t *testing.T) {
	n, _ := podNetNode(t)
	podNS := simhosttest.Netns(t)
	simhosttest.Netdev(t, podNS, "net1", "02:00:00:00:99:98") // the first device's name is taken
	require.NoError(t, n.prepareOne(t, podClaim("u1", `"vlan":7`, "pod-a", "pci-0000-3b-02-0", "pci-0000-3b-02-1")).Err)

	err := n.podnet.SandboxCreated(context.Background(), sandbox("sb1", "pod-a", podNS))
	require.ErrorContains(t, err, "device pci-0000-3b-02-0 (ens1f0v0): rename to net1:")
	vf, err := n.h.VF("ens1f0", 0)
	require.NoError(t, err)
	assert.Equal(t, 0, vf.VLAN, "the tried VF's VLAN put back")
	assert.NoFileExists(t, n.h.VFStatePath("ens1f0", 1), "the PF was never asked to change VF 1, not even to put it back")
}
