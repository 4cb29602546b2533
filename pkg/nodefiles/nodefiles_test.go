package nodefiles_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

func TestWriteSpec(t *testing.T) {
	dir := t.TempDir()
	s := prepare.Spec("sriov.dra.dev/net", []prepare.CDIDevice{
		{Name: "uid1-pci-0000-3b-02-6", Nodes: []prepare.Node{{HostPath: "/dev/null", Path: "/dev/vfio/16"}}},
		{Name: "uid1-pci-0000-3b-02-0"},
	}, []string{"PCIDEVICE_A=0000:3b:02.6,0000:3b:02.0"})
	name := prepare.SpecFileName("sriov.dra.dev/net", "uid1")
	assert.Equal(t, "sriov.dra.dev-net_uid1.json", name)
	path := filepath.Join(dir, name)
	require.NoError(t, nodefiles.WriteSpec(path, s))
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
	err = nodefiles.WriteSpec(filepath.Join(dir, "sriov.dra.dev-net_bad.json"), bad)
	require.ErrorContains(t, err, "invalid")
	_, err = os.Stat(filepath.Join(dir, "sriov.dra.dev-net_bad.json"))
	assert.True(t, os.IsNotExist(err), "an invalid spec is never written")
	dup := prepare.Spec("sriov.dra.dev/net", []prepare.CDIDevice{{Name: "x"}, {Name: "x"}}, nil)
	err = nodefiles.WriteSpec(filepath.Join(dir, "sriov.dra.dev-net_dup.json"), dup)
	require.Error(t, err)
	entries, _ = os.ReadDir(dir)
	assert.Len(t, entries, 1)
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, nodefiles.WriteFile(path, []byte("x")))
	require.NoError(t, nodefiles.Remove(path))
	_, err := os.Stat(path)
	assert.True(t, os.IsNotExist(err))
	assert.NoError(t, nodefiles.Remove(path), "removing a missing file is fine")
}
