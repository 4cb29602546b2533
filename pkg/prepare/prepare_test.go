package prepare_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// devRoot makes a /dev with the given nodes.
func devRoot(t *testing.T, nodes ...string) *host.Host {
	dir := t.TempDir()
	for _, n := range nodes {
		p := filepath.Join(dir, n)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, nil, 0o644))
	}
	return host.New(host.Options{SysfsRoot: t.TempDir(), DevRoot: dir})
}

func vfioVF(addr string, group int) discovery.Device {
	return discovery.Device{Name: discovery.PCIDeviceName(addr), PCIAddress: addr, FunctionType: discovery.FunctionVF,
		Driver: "vfio-pci", IOMMUGroup: group, RootDevice: "0000:3b:00.0", VFIndex: 6, SFNum: -1}
}

func TestClassicEnvBytes(t *testing.T) {
	h := devRoot(t, "vfio/vfio", "vfio/16", "vhost-net", "net/tun")
	d := vfioVF("0000:3b:02.6", 16)
	e, err := prepare.ForDevice(&d, prepare.Options{NeedVhostNet: true}, h)
	require.NoError(t, err)
	env, err := prepare.Env("intel.com/intel_sriov_dpdk", []prepare.DeviceEdits{e})
	require.NoError(t, err)
	assert.Equal(t, []string{
		`PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK=0000:3b:02.6`,
		`PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK_INFO={"0000:3b:02.6":{"generic":{"deviceID":"0000:3b:02.6"},"vfio":{"dev-mount":"/dev/vfio/16","mount":"/dev/vfio/vfio"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}}}`,
	}, env)
	assert.Equal(t, []prepare.Node{
		{HostPath: filepath.Join(h.DevRoot(), "vfio/vfio"), Path: "/dev/vfio/vfio"},
		{HostPath: filepath.Join(h.DevRoot(), "vfio/16"), Path: "/dev/vfio/16"},
		{HostPath: filepath.Join(h.DevRoot(), "vhost-net"), Path: "/dev/vhost-net"},
		{HostPath: filepath.Join(h.DevRoot(), "net/tun"), Path: "/dev/net/tun"},
	}, e.Nodes)
}

func TestEnvForSeveralDevicesAndExtra(t *testing.T) {
	h := devRoot(t, "vfio/vfio", "vfio/16", "vfio/17")
	a, b := vfioVF("0000:3b:02.6", 16), vfioVF("0000:3b:02.7", 17)
	ea, err := prepare.ForDevice(&a, prepare.Options{AdditionalInfo: map[string]string{"token": "3e49"}}, h)
	require.NoError(t, err)
	eb, err := prepare.ForDevice(&b, prepare.Options{}, h)
	require.NoError(t, err)
	env, err := prepare.Env("intel.com/sriov-net.a", []prepare.DeviceEdits{ea, eb})
	require.NoError(t, err)
	assert.Equal(t, "PCIDEVICE_INTEL_COM_SRIOV_NET_A=0000:3b:02.6,0000:3b:02.7", env[0])
	assert.Equal(t, `PCIDEVICE_INTEL_COM_SRIOV_NET_A_INFO={"0000:3b:02.6":{"extra":{"token":"3e49"},"generic":{"deviceID":"0000:3b:02.6"},"vfio":{"dev-mount":"/dev/vfio/16","mount":"/dev/vfio/vfio"}},"0000:3b:02.7":{"generic":{"deviceID":"0000:3b:02.7"},"vfio":{"dev-mount":"/dev/vfio/17","mount":"/dev/vfio/vfio"}}}`, env[1])
}

func TestEditKinds(t *testing.T) {
	h := devRoot(t, "vfio/vfio", "vfio/noiommu-5", "uio0", "vhost-vdpa-0", "infiniband/uverbs1", "infiniband/umad1", "infiniband/rdma_cm")
	tests := []struct {
		name    string
		dev     discovery.Device
		opts    prepare.Options
		nodes   []string // container paths
		info    string
		wantErr string
	}{
		{name: "noiommu vfio", dev: discovery.Device{Name: "a", PCIAddress: "0000:01:00.0", Driver: "vfio-pci", IOMMUGroup: 5, IOMMUNoIOMMU: true},
			nodes: []string{"/dev/vfio/vfio", "/dev/vfio/5"}, info: `"vfio":{"dev-mount":"/dev/vfio/5","mount":"/dev/vfio/vfio"}`},
		{name: "uio", dev: discovery.Device{Name: "b", PCIAddress: "0000:01:00.1", Driver: "igb_uio", UIODevice: "uio0", IOMMUGroup: -1},
			nodes: []string{"/dev/uio0"}, info: `"uio":{"mount":"/dev/uio0"}`},
		{name: "vdpa vhost", dev: discovery.Device{Name: "c", PCIAddress: "0000:01:00.2", Driver: "mlx5_core", VDPAType: "vhost", VDPADevice: "vhost-vdpa-0"},
			nodes: []string{"/dev/vhost-vdpa-0"}, info: `"vdpa":{"mount":"/dev/vhost-vdpa-0"}`},
		{name: "vdpa virtio has no node", dev: discovery.Device{Name: "c2", PCIAddress: "0000:01:00.4", Driver: "mlx5_core", VDPAType: "virtio"}},
		{name: "rdma skips nodes the host lacks", dev: discovery.Device{Name: "d", PCIAddress: "0000:01:00.3", Driver: "mlx5_core", RDMA: true,
			RDMADevices: []string{"mlx5_1"}, RDMACharDevices: []string{"infiniband/uverbs1", "infiniband/umad1", "infiniband/issm1"}},
			opts:  prepare.Options{RDMA: true},
			nodes: []string{"/dev/infiniband/uverbs1", "/dev/infiniband/umad1", "/dev/infiniband/rdma_cm"},
			info:  `"rdma":{"rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"mlx5_1","umad":"/dev/infiniband/umad1","uverbs":"/dev/infiniband/uverbs1"}`},
		{name: "rdma not asked", dev: discovery.Device{Name: "e", PCIAddress: "0000:01:00.5", Driver: "mlx5_core", RDMA: true, RDMACharDevices: []string{"infiniband/uverbs1"}}},
		{name: "kernel netdev VF has no nodes", dev: discovery.Device{Name: "f", PCIAddress: "0000:01:00.6", Driver: "iavf", IfName: "ens1f0v0"}},
		{name: "missing vfio group node", dev: discovery.Device{Name: "g", PCIAddress: "0000:01:00.7", Driver: "vfio-pci", IOMMUGroup: 9},
			wantErr: "device g: " + filepath.Join(h.DevRoot(), "vfio/9") + " does not exist on the host"},
		{name: "vfio without group", dev: discovery.Device{Name: "h", PCIAddress: "0000:01:01.0", Driver: "vfio-pci", IOMMUGroup: -1}, wantErr: "no IOMMU group"},
		{name: "vhost-net missing", dev: discovery.Device{Name: "i", PCIAddress: "0000:01:01.1", Driver: "iavf"}, opts: prepare.Options{NeedVhostNet: true},
			wantErr: "vhost-net does not exist"},
		{name: "rdma asked, no char devices", dev: discovery.Device{Name: "j", PCIAddress: "0000:01:01.2", Driver: "mlx5_core", RDMA: true, RDMADevices: []string{"mlx5_9"}, RDMACharDevices: []string{"infiniband/uverbs9"}},
			opts: prepare.Options{RDMA: true}, wantErr: "RDMA requested but none of its RDMA char devices exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := prepare.ForDevice(&tc.dev, tc.opts, h)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var paths []string
			for _, n := range e.Nodes {
				paths = append(paths, n.Path)
				_, err := os.Stat(n.HostPath)
				assert.NoError(t, err, "host node %s exists", n.HostPath)
			}
			assert.Equal(t, tc.nodes, paths)
			b, _ := json.Marshal(e.Info)
			assert.Contains(t, string(b), `"generic":{"deviceID":"`+tc.dev.PCIAddress+`"}`)
			if tc.info != "" {
				assert.Contains(t, string(b), tc.info)
			}
		})
	}
}

func TestWriteSpec(t *testing.T) {
	dir := t.TempDir()
	s := prepare.Spec("sriov.dra.dev/net", []prepare.CDIDevice{
		{Name: "uid1-pci-0000-3b-02-6", Nodes: []prepare.Node{{HostPath: "/dev/null", Path: "/dev/vfio/16"}}},
		{Name: "uid1-pci-0000-3b-02-0"},
	}, []string{"PCIDEVICE_A=0000:3b:02.6,0000:3b:02.0"})
	name := prepare.SpecFileName("sriov.dra.dev/net", "uid1")
	assert.Equal(t, "sriov.dra.dev-net_uid1.json", name)
	path, err := prepare.WriteSpec(dir, name, s)
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var got cdispec.Spec
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "sriov.dra.dev/net", got.Kind)
	assert.Equal(t, "0.3.0", got.Version, "the lowest version that carries these edits (podman 4.3 reads up to 0.5.0)")
	require.Len(t, got.Devices, 2)
	assert.Equal(t, "/dev/null", got.Devices[0].ContainerEdits.DeviceNodes[0].HostPath)
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no temp file left")

	bad := prepare.Spec("sriov.dra.dev/net", []prepare.CDIDevice{{Name: "x"}}, []string{"NO_EQUALS_SIGN"})
	_, err = prepare.WriteSpec(dir, "sriov.dra.dev-net_bad.json", bad)
	require.ErrorContains(t, err, "invalid")
	_, err = os.Stat(filepath.Join(dir, "sriov.dra.dev-net_bad.json"))
	assert.True(t, os.IsNotExist(err), "an invalid spec is never written")
	dup := prepare.Spec("sriov.dra.dev/net", []prepare.CDIDevice{{Name: "x"}, {Name: "x"}}, nil)
	_, err = prepare.WriteSpec(dir, "sriov.dra.dev-net_dup.json", dup)
	require.Error(t, err)
	entries, _ = os.ReadDir(dir)
	assert.Len(t, entries, 1)
}

func TestDeviceInfo(t *testing.T) {
	d := discovery.Device{PCIAddress: "0000:3b:02.6", RootDevice: "0000:3b:00.0", RDMA: true, RDMADevices: []string{"mlx5_3"}}
	b, err := prepare.DeviceInfo(&d, true)
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.6","pf-pci-address":"0000:3b:00.0","vhost-net":"/dev/vhost-net","rdma-device":"mlx5_3"}}`, string(b))
	assert.Equal(t, "/run/devinfo/intel.com-sriov-0000:3b:02.6-device.json", prepare.DeviceInfoFile("/run/devinfo", "intel.com/sriov", "0000:3b:02.6"))
	assert.True(t, strings.HasSuffix(prepare.EnvName("intel.com/x-y.z"), "INTEL_COM_X_Y_Z"))
}
