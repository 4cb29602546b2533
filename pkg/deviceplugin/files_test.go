package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// TestReleaseFiles: a device-info file the shim wrote stays while a pod
// holds its device (or while the kubelet may not have recorded the
// allocation yet), and goes once no pod holds it.
func TestReleaseFiles(t *testing.T) {
	s := newShim(t, false, "intel.com/dpdk")
	_, err := s.client(t, "intel.com/dpdk").Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:3b:02.6", "0000:3b:02.7"}}}})
	require.NoError(t, err)
	f6 := filepath.Join(s.root, "devinfo", "intel.com-dpdk-0000:3b:02.6-device.json")
	f7 := filepath.Join(s.root, "devinfo", "intel.com-dpdk-0000:3b:02.7-device.json")
	require.FileExists(t, f6)
	require.FileExists(t, f7)
	ctx := context.Background()
	now := time.Now()

	assert.Zero(t, s.m.ReleaseFiles(ctx, nil, now), "within the grace nothing goes")
	later := now.Add(DefaultFileGrace + time.Second)
	assert.Equal(t, 1, s.m.ReleaseFiles(ctx, map[string]bool{"0000:3b:02.7": true}, later), "the file of the device no pod holds")
	assert.NoFileExists(t, f6)
	assert.FileExists(t, f7, "its pod still holds 0000:3b:02.7")
	assert.Equal(t, 1, s.m.ReleaseFiles(ctx, map[string]bool{}, later))
	assert.NoFileExists(t, f7)
	assert.Zero(t, s.m.ReleaseFiles(ctx, map[string]bool{}, later), "each goes once")
}

// TestAdoptedFileGoesAtOnce: a file found at start-up has no grace.
func TestAdoptedFileGoesAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "intel.com-dpdk-0000:3b:02.6-device.json")
	require.NoError(t, os.WriteFile(path, []byte("{}"), 0o600))
	m := New(Config{DevInfoDir: dir})
	m.AdoptFile(path, "0000:3b:02.6")
	assert.Zero(t, m.ReleaseFiles(context.Background(), map[string]bool{"0000:3b:02.6": true}, time.Now()))
	assert.FileExists(t, path, "held by a pod")
	assert.Equal(t, 1, m.ReleaseFiles(context.Background(), nil, time.Now()))
	assert.NoFileExists(t, path)
}

func TestDeviceInfoID(t *testing.T) {
	for name, want := range map[string]string{
		"intel.com-intel_sriov_dpdk-0000:3b:02.6-device.json": "0000:3b:02.6",
		"nvidia.com-bf2_sf-mlx5_core.sf.2-device.json":        "mlx5_core.sf.2",
		"intel.com-dpdk-0000:3b:02.6.json":                    "",
		"device.json":                                         "",
	} {
		got, ok := DeviceInfoID(name)
		assert.Equal(t, want != "", ok, name)
		assert.Equal(t, want, got, name)
	}
}
