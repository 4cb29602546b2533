package host_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestDefaultRouteInterfaces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "proc/net/route"), `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0101A8C0	0003	0	0	100	00000000	0	0	0
eth0	0001A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
eth1	00000000	0101A8C0	0003	0	0	100	000000FF	0	0	0
`)
	writeFile(t, filepath.Join(dir, "proc/net/ipv6_route"), `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth2
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth3
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
`)
	got, err := host.UnderRoot(dir).DefaultRouteInterfaces()
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"eth0": true, "eth2": true}, got)

	none, err := host.UnderRoot(t.TempDir()).DefaultRouteInterfaces()
	require.NoError(t, err, "a host without procfs route files has no default route")
	assert.Empty(t, none)
}

func TestResolveSysLink(t *testing.T) {
	dir := t.TempDir()
	h := host.New(host.Options{SysfsRoot: dir})
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "devices/pci0000:00/0000:3b:00.0"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bus/pci/devices"), 0o755))
	require.NoError(t, os.Symlink("../../../devices/pci0000:00/0000:3b:00.0", filepath.Join(dir, "bus/pci/devices/0000:3b:00.0")))
	require.NoError(t, os.Symlink("../../../../../etc", filepath.Join(dir, "bus/pci/devices/escape")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(dir, "bus/pci/devices/abs")))

	got, err := h.ResolveSysLink("bus/pci/devices/0000:3b:00.0")
	require.NoError(t, err)
	assert.Equal(t, "devices/pci0000:00/0000:3b:00.0", got)
	_, err = h.ResolveSysLink("bus/pci/devices/escape")
	assert.ErrorContains(t, err, "leaves sysfs")
	_, err = h.ResolveSysLink("bus/pci/devices/abs")
	assert.ErrorContains(t, err, "absolute target")
	_, err = h.ResolveSysLink("bus/pci/devices/missing")
	assert.Error(t, err)
}

func TestReadSys(t *testing.T) {
	dir := t.TempDir()
	h := host.New(host.Options{SysfsRoot: dir})
	writeFile(t, filepath.Join(dir, "a/numa_node"), "1\n")
	writeFile(t, filepath.Join(dir, "a/bad"), "one\n")
	n, err := h.ReadSysInt("a/numa_node")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = h.ReadSysInt("a/bad")
	assert.ErrorContains(t, err, `"one" is not an integer`)
	_, err = h.ReadSysString("a/missing")
	assert.ErrorContains(t, err, filepath.Join(dir, "a/missing"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "a/carrier"), 0o755))
	_, err = h.ReadSysString("a/carrier")
	assert.Error(t, err, "an unreadable attribute is an error, not empty")
	names, err := h.ListSys("a")
	require.NoError(t, err)
	assert.Equal(t, []string{"bad", "carrier", "numa_node"}, names)
	names, err = h.ListSys("nope")
	require.NoError(t, err)
	assert.Empty(t, names)
}

func TestSiblingRootsAndDevlink(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"sys", "dev", "proc"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	o := host.Options{SysfsRoot: filepath.Join(dir, "sys")}.WithSiblingRoots()
	assert.Equal(t, filepath.Join(dir, "dev"), o.DevRoot)
	assert.Equal(t, filepath.Join(dir, "proc"), o.ProcRoot)
	onlySys := t.TempDir()
	o = host.Options{SysfsRoot: filepath.Join(onlySys, "sys")}.WithSiblingRoots()
	assert.Empty(t, o.DevRoot, "no dev/ beside it: the real /dev")

	real := host.Options{SysfsRoot: "/sys"}.WithSiblingRoots()
	assert.Empty(t, real.DevRoot, "the real /sys keeps the real /dev")
	captured := host.New(host.Options{SysfsRoot: filepath.Join(dir, "sys")})
	_, err := captured.Devlink("0000:03:00.0")
	assert.ErrorIs(t, err, host.ErrNoDevlink, "a tree under another root is never asked over netlink")
}

func TestParseUevent(t *testing.T) {
	msg := func(parts ...string) []byte { return []byte(strings.Join(parts, "\x00")) }
	reason, ok := host.ParseUevent(msg("add@/devices/pci0000:00/0000:00:01.0/0000:01:10.0", "ACTION=add", "SUBSYSTEM=pci", "PCI_SLOT_NAME=0000:01:10.0"))
	assert.True(t, ok)
	assert.Equal(t, "uevent add pci /devices/pci0000:00/0000:00:01.0/0000:01:10.0", reason)
	_, ok = host.ParseUevent(msg("change@/devices/virtual/block/loop0", "ACTION=change", "SUBSYSTEM=block"))
	assert.False(t, ok, "block devices do not matter")
	reason, ok = host.ParseUevent(msg("bind@/devices/pci0000:00/0000:00:01.0/0000:01:10.2", "ACTION=bind", "SUBSYSTEM=pci", "DRIVER=vfio-pci"))
	assert.True(t, ok)
	assert.Contains(t, reason, "bind pci")
	_, ok = host.ParseUevent(nil)
	assert.False(t, ok)
}

// TestListSysLargeDirectory: a directory whose entries take more than one
// getdents read and outgrow the listing's stack buffers is listed whole,
// sorted, each name once.
func TestListSysLargeDirectory(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 400 {
		name := fmt.Sprintf("virtfn%03d-%s", i, strings.Repeat("x", 40))
		want = append(want, name)
		writeFile(t, filepath.Join(dir, "pf", name), "")
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pf", "net"), 0o755))
	want = append(want, "net")
	slices.Sort(want)
	got, err := host.New(host.Options{SysfsRoot: dir}).ListSys("pf")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	empty, err := host.New(host.Options{SysfsRoot: dir}).ListSys("pf/net")
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// TestReadSysAt: the ...At forms read dir/name as the one-path forms read
// the joined path, and report errors with the full path.
func TestReadSysAt(t *testing.T) {
	dir := t.TempDir()
	h := host.New(host.Options{SysfsRoot: dir + "/"})
	writeFile(t, filepath.Join(dir, "devices/pci0000:00/0000:3b:02.0/numa_node"), "1\n")
	writeFile(t, filepath.Join(dir, "devices/pci0000:00/0000:3b:02.0/net/ens1f0v0/operstate"), "up\n")
	require.NoError(t, os.Symlink("../../../bus/pci/drivers/iavf", filepath.Join(dir, "devices/pci0000:00/0000:3b:02.0/driver")))
	dev := "devices/pci0000:00/0000:3b:02.0"
	n, err := h.ReadSysIntAt(dev, "numa_node")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	s, err := h.ReadSysStringAt(dev, "net/ens1f0v0/operstate")
	require.NoError(t, err)
	assert.Equal(t, "up", s)
	s, err = h.ReadSysStringAt(dev+"/", "./net/ens1f0v0/operstate")
	require.NoError(t, err, "unclean parts are joined as path.Join would")
	assert.Equal(t, "up", s)
	target, err := h.ReadSysLinkAt(dev, "driver")
	require.NoError(t, err)
	assert.Equal(t, "../../../bus/pci/drivers/iavf", target)
	resolved, err := h.ResolveSysLinkAt(dev, "driver")
	require.NoError(t, err)
	assert.Equal(t, "bus/pci/drivers/iavf", resolved)
	names, err := h.ListSysAt(dev, "net")
	require.NoError(t, err)
	assert.Equal(t, []string{"ens1f0v0"}, names)
	_, err = h.ReadSysStringAt(dev, "vendor")
	assert.ErrorContains(t, err, filepath.Join(dir, dev, "vendor"))
}
