package prepare_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// devNodes is a host's /dev as a set of /dev-relative paths, under the
// host path /host/dev.
type devNodes map[string]bool

func devRoot(_ *testing.T, nodes ...string) devNodes {
	d := devNodes{}
	for _, n := range nodes {
		d[n] = true
	}
	return d
}

func (d devNodes) DevExists(rel string) bool { return d[rel] }
func (d devNodes) DevPath(rel string) string { return filepath.Join("/host/dev", rel) }
func (d devNodes) DevRoot() string           { return "/host/dev" }

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
				rel, err := filepath.Rel(h.DevRoot(), n.HostPath)
				require.NoError(t, err)
				assert.True(t, h.DevExists(rel), "host node %s exists", n.HostPath)
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

func TestDeviceInfo(t *testing.T) {
	d := discovery.Device{PCIAddress: "0000:3b:02.6", RootDevice: "0000:3b:00.0", RDMA: true, RDMADevices: []string{"mlx5_3"}}
	b, err := prepare.DeviceInfo(&d, true)
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.6","pf-pci-address":"0000:3b:00.0","vhost-net":"/dev/vhost-net","rdma-device":"mlx5_3"}}`, string(b))
	assert.Equal(t, "intel.com-sriov-0000:3b:02.6-device.json", prepare.DeviceInfoFileName("intel.com/sriov", "0000:3b:02.6"))
	assert.True(t, strings.HasSuffix(prepare.EnvName("intel.com/x-y.z"), "INTEL_COM_X_Y_Z"))
}
