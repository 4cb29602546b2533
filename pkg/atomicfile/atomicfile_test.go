package atomicfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/atomicfile"
)

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "f.json")
	require.NoError(t, atomicfile.WriteFile(path, []byte("one"), 0o600, nil))
	require.NoError(t, atomicfile.WriteFile(path, []byte("two"), 0o600, func(tmp string) error {
		b, err := os.ReadFile(tmp)
		require.NoError(t, err)
		assert.Equal(t, "two", string(b), "check sees the new content")
		old, _ := os.ReadFile(path)
		assert.Equal(t, "one", string(old), "the file keeps the old content until the rename")
		return nil
	}))
	b, _ := os.ReadFile(path)
	assert.Equal(t, "two", string(b))

	err := atomicfile.WriteFile(path, []byte("bad"), 0o600, func(string) error { return errors.New("invalid") })
	require.EqualError(t, err, "invalid")
	b, _ = os.ReadFile(path)
	assert.Equal(t, "two", string(b), "a failed check leaves the file alone")
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temp file left")
}
