package flock_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/flock"
)

// TestTryLockModes: an exclusive holder refuses every other, shared holders
// refuse only an exclusive one, and a released lock can be taken again —
// the rules the driver's instance lock rests on.
func TestTryLockModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "instance.lock")

	unlock, err := flock.TryLock(path, flock.Exclusive)
	require.NoError(t, err)
	for _, mode := range []flock.Mode{flock.Exclusive, flock.Shared} {
		_, err := flock.TryLock(path, mode)
		require.ErrorIs(t, err, flock.ErrHeld, "%s while held exclusively", mode)
		assert.ErrorContains(t, err, path)
	}
	unlock()

	first, err := flock.TryLock(path, flock.Shared)
	require.NoError(t, err)
	second, err := flock.TryLock(path, flock.Shared)
	require.NoError(t, err, "shared holders overlap")
	_, err = flock.TryLock(path, flock.Exclusive)
	require.ErrorIs(t, err, flock.ErrHeld, "exclusive while held shared")
	first()
	_, err = flock.TryLock(path, flock.Exclusive)
	require.ErrorIs(t, err, flock.ErrHeld, "one shared holder is enough to refuse")
	second()

	again, err := flock.TryLock(path, flock.Exclusive)
	require.NoError(t, err, "free once every holder released it")
	again()
}

// TestHolders: the kernel lists this process as the holder, in the mode it
// took.
func TestHolders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "instance.lock")
	other := filepath.Join(dir, "other.lock")
	unlockOther, err := flock.TryLock(other, flock.Shared)
	require.NoError(t, err)
	defer unlockOther()

	unlock, err := flock.TryLock(path, flock.Exclusive)
	require.NoError(t, err)
	holders, err := flock.Holders(path)
	require.NoError(t, err)
	assert.Equal(t, []flock.Holder{{PID: os.Getpid(), Mode: flock.Exclusive}}, holders, "only this lock's holder, not other.lock's")
	unlock()

	holders, err = flock.Holders(path)
	require.NoError(t, err)
	assert.Empty(t, holders, "released")
}
