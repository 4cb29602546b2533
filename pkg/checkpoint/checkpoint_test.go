package checkpoint_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "checkpoint.json")
	d, stale, err := checkpoint.Load(path, "boot-1")
	require.NoError(t, err)
	assert.False(t, stale)
	assert.Empty(t, d.Claims)
	d.Claims["uid-1"] = checkpoint.Claim{Namespace: "ns", Name: "c", State: checkpoint.StatePrepared, CDISpec: "/var/run/cdi/x.json",
		Devices: []checkpoint.Device{{Request: "vf", Pool: "node", Name: "pci-0000-3b-02-0", OriginalDriver: "iavf", BoundDriver: "vfio-pci"}}}
	require.NoError(t, checkpoint.Save(path, d))
	got, stale, err := checkpoint.Load(path, "boot-1")
	require.NoError(t, err)
	assert.False(t, stale)
	assert.Equal(t, d, got)
	_, err = os.Stat(path + ".tmp")
	assert.True(t, os.IsNotExist(err), "no temp file left")

	_, stale, err = checkpoint.Load(path, "boot-2")
	require.NoError(t, err)
	assert.True(t, stale, "another boot's checkpoint is stale")
}

func TestCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	d := checkpoint.Data{BootID: "b", Claims: map[string]checkpoint.Claim{"u": {Name: "c", State: checkpoint.StatePrepared}}}
	require.NoError(t, checkpoint.Save(path, d))
	b, err := os.ReadFile(path)
	require.NoError(t, err)

	tampered := strings.Replace(string(b), `\"name\":\"c\"`, `\"name\":\"d\"`, 1)
	tampered = strings.Replace(tampered, `"name":"c"`, `"name":"d"`, 1)
	require.NotEqual(t, string(b), tampered)
	require.NoError(t, os.WriteFile(path, []byte(tampered), 0o600))
	_, _, err = checkpoint.Load(path, "b")
	require.ErrorContains(t, err, "checksum mismatch")

	require.NoError(t, os.WriteFile(path, []byte(`{"version":"v9","checksum":"","data":{}}`), 0o600))
	_, _, err = checkpoint.Load(path, "b")
	require.ErrorContains(t, err, `version "v9"`)

	require.NoError(t, os.WriteFile(path, []byte(`{"vers`), 0o600))
	_, _, err = checkpoint.Load(path, "b")
	require.ErrorContains(t, err, "corrupt")
}
