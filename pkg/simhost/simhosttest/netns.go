package simhosttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Netdevs of a simulated host exist only as files; a test of what moves
// netdevs between network namespaces needs real ones. These helpers make
// them in network namespaces of the test's own (root and iproute2 needed;
// the test is skipped without them), removed when the test ends.

var nsSeq atomic.Int32

// Netns creates a network namespace for the test and returns its path.
func Netns(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs iproute2")
	}
	name := fmt.Sprintf("sdt%d-%d", os.Getpid(), nsSeq.Add(1))
	IP(tb, "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return filepath.Join("/run/netns", name)
}

// NsName is the name ip knows a namespace path by.
func NsName(path string) string { return filepath.Base(path) }

// in runs ip args in the namespace at nsPath ("": the test's own).
func in(nsPath string, args ...string) []string {
	if nsPath == "" {
		return args
	}
	return append([]string{"-n", NsName(nsPath)}, args...)
}

// IP runs ip and returns its output, failing the test on an error.
func IP(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Netdev adds a netdev called name with that MAC to the namespace at
// nsPath ("": the test's own, where it is removed when the test ends), up:
// a veth end whose peer (name+"p") stays down, since kernels without the
// dummy driver exist (this project's CI machine runs one). A netdev of that
// name left by a killed run is replaced.
func Netdev(tb testing.TB, nsPath, name, mac string) {
	tb.Helper()
	_ = exec.Command("ip", in(nsPath, "link", "del", name)...).Run()
	IP(tb, in(nsPath, "link", "add", name, "address", mac, "mtu", "1500", "type", "veth", "peer", "name", name+"p")...)
	IP(tb, in(nsPath, "link", "set", name, "up")...)
	if nsPath == "" {
		tb.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
	}
}

// Link is a netdev as `ip -j addr show` reports it.
type Link struct {
	IfName    string   `json:"ifname"`
	Address   string   `json:"address"`
	MTU       int      `json:"mtu"`
	Flags     []string `json:"flags"`
	AddrInfos []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// Addresses are the link's addresses with their prefix lengths.
func (l Link) Addresses() []string {
	var out []string
	for _, a := range l.AddrInfos {
		out = append(out, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
	}
	return out
}

// Links lists the netdevs of the namespace at nsPath ("": the test's
// own) by name.
func Links(tb testing.TB, nsPath string) map[string]Link {
	tb.Helper()
	var list []Link
	out := IP(tb, in(nsPath, "-j", "addr", "show")...)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		tb.Fatalf("decode ip's output: %v", err)
	}
	m := map[string]Link{}
	for _, l := range list {
		m[l.IfName] = l
	}
	return m
}
