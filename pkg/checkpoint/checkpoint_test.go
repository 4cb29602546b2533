package checkpoint_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	// A file whose data is well-formed JSON of the wrong shape, with a
	// checksum that matches it: the data must still be refused.
	wrongShape := `{"bootID":"b","claims":["not","a","map"]}`
	sum := sha256.Sum256([]byte(wrongShape))
	tests := map[string]string{
		"empty checksum":          `{"version":"v1","checksum":"","data":{"bootID":"b","claims":{}}}`,
		"missing checksum":        `{"version":"v1","data":{"bootID":"b","claims":{}}}`,
		"data of the wrong shape": `{"version":"v1","checksum":"` + hex.EncodeToString(sum[:]) + `","data":` + wrongShape + `}`,
		"future version":          `{"version":"v2","checksum":"","data":{}}`,
		"truncated":               `{"version":"v1","chec`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, _, err := checkpoint.Load(path, "b")
			require.ErrorIs(t, err, checkpoint.ErrUnreadable)
			assert.ErrorContains(t, err, path)
		})
	}
}

func TestSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	aside, err := checkpoint.SetAside(path, time.Date(2026, 11, 30, 12, 0, 0, 5, time.UTC))
	require.NoError(t, err)
	assert.Equal(t, path+".corrupt-20261130T120000.000000005Z", aside)
	b, err := os.ReadFile(aside)
	require.NoError(t, err)
	assert.Equal(t, "garbage", string(b), "kept unchanged")
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err))
}
