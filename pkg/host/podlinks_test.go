package host_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// netnsPair makes two network namespaces of the test's own, one standing
// for the host and one for a pod, and a netdev in the host one.
func netnsPair(t *testing.T, netdev, mac string) (hostNS, podNS string) {
	t.Helper()
	hostNS, podNS = simhosttest.Netns(t), simhosttest.Netns(t)
	simhosttest.Netdev(t, hostNS, netdev, mac)
	return hostNS, podNS
}

var (
	ipCmd = simhosttest.IP
	links = simhosttest.Links
)

func podLink(nsPath string) host.PodLink {
	return host.PodLink{NetNS: nsPath, Name: "net1", MAC: "02:00:00:00:aa:01", MTU: 9000,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.56.0.5/24"), netip.MustParsePrefix("fd00:56::5/64")},
		Routes:    []host.PodRoute{{Destination: netip.MustParsePrefix("10.57.0.0/16"), Gateway: netip.MustParseAddr("10.56.0.1")}}}
}

func TestMoveLinkToPodAndBack(t *testing.T) {
	hostNS, podNS := netnsPair(t, "sdtv0", "02:00:00:00:00:10")
	h := host.New(host.Options{NetNS: hostNS})

	orig, err := h.MoveLinkToPod("sdtv0", podLink(podNS))
	require.NoError(t, err)
	assert.Equal(t, "sdtv0", orig.Name)
	assert.Equal(t, "02:00:00:00:00:10", orig.MAC)
	assert.Equal(t, 1500, orig.MTU)
	assert.True(t, orig.Up)

	assert.NotContains(t, links(t, hostNS), "sdtv0", "gone from the host")
	in := links(t, podNS)["net1"]
	assert.Equal(t, "02:00:00:00:aa:01", in.Address)
	assert.Equal(t, 9000, in.MTU)
	assert.Contains(t, in.Flags, "UP")
	assert.Subset(t, in.Addresses(), []string{"10.56.0.5/24", "fd00:56::5/64"})
	assert.Contains(t, ipCmd(t, "-n", simhosttest.NsName(podNS), "route", "show", "10.57.0.0/16"), "via 10.56.0.1 dev net1")

	mac, got, err := h.PodLinkAddrs(podNS, "net1")
	require.NoError(t, err)
	assert.Equal(t, "02:00:00:00:aa:01", mac)
	assert.Equal(t, []string{"10.56.0.5/24", "fd00:56::5/64"}, got)

	require.NoError(t, h.MoveLinkToHost(podNS, "net1", orig))
	back := links(t, hostNS)["sdtv0"]
	assert.Equal(t, "02:00:00:00:00:10", back.Address)
	assert.Equal(t, 1500, back.MTU)
	assert.Contains(t, back.Flags, "UP")
	assert.NotContains(t, links(t, podNS), "net1")

	require.NoError(t, h.MoveLinkToHost(podNS, "net1", orig), "twice is harmless")
}

func TestMoveLinkToPodFailureLeavesItOnTheHost(t *testing.T) {
	hostNS, podNS := netnsPair(t, "sdtv1", "02:00:00:00:00:11")
	ipCmd(t, "-n", simhosttest.NsName(podNS), "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
	h := host.New(host.Options{NetNS: hostNS})

	_, err := h.MoveLinkToPod("sdtv1", podLink(podNS))
	var se *host.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "rename to net1", se.Step, "the pod already has a net1")
	back := links(t, hostNS)["sdtv1"]
	assert.Equal(t, "02:00:00:00:00:11", back.Address)
	assert.Contains(t, back.Flags, "UP")
}

func TestMoveLinkToHostAfterTheNamespaceIsGone(t *testing.T) {
	hostNS, podNS := netnsPair(t, "sdtv2", "02:00:00:00:00:12")
	h := host.New(host.Options{NetNS: hostNS})
	orig, err := h.MoveLinkToPod("sdtv2", podLink(podNS))
	require.NoError(t, err)

	// A physical netdev returns to the host under its pod name when the
	// namespace is destroyed; a veth is destroyed, so the test moves
	// it as the kernel would.
	ipCmd(t, "-n", simhosttest.NsName(podNS), "link", "set", "net1", "netns", simhosttest.NsName(hostNS))
	ipCmd(t, "netns", "del", simhosttest.NsName(podNS))

	require.NoError(t, h.MoveLinkToHost(podNS, "net1", orig))
	back := links(t, hostNS)["sdtv2"]
	assert.Equal(t, "02:00:00:00:00:12", back.Address)
	assert.Equal(t, 1500, back.MTU)

	ipCmd(t, "-n", simhosttest.NsName(hostNS), "link", "del", "sdtv2")
	assert.NotContains(t, links(t, hostNS), "sdtv2p", "a veth goes with its peer")
	assert.ErrorIs(t, h.MoveLinkToHost(podNS, "net1", orig), host.ErrLinkGone)
}

func TestMoveLinkToPodNamespaceNotMounted(t *testing.T) {
	hostNS, _ := netnsPair(t, "sdtv3", "02:00:00:00:00:13")
	h := host.New(host.Options{NetNS: hostNS})
	// What a driver container sees of a pod's namespace when the runtime's
	// netns directory is mounted without propagation: an empty file.
	plain := filepath.Join(t.TempDir(), "cni-1234")
	require.NoError(t, os.WriteFile(plain, nil, 0o644))
	_, err := h.MoveLinkToPod("sdtv3", host.PodLink{NetNS: plain, Name: "net1"})
	require.ErrorContains(t, err, plain+" is not a network namespace here: is the runtime's netns directory mounted")
	assert.Contains(t, links(t, hostNS), "sdtv3", "left on the host")
}
