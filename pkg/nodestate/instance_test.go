package nodestate

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInstanceLock: which instances may run beside which. A DaemonSet's
// pods (--pod-uid) overlap with each other; an instance without --pod-uid
// runs alone, and is named in the message of whoever it refuses.
func TestInstanceLock(t *testing.T) {
	pid := "PID " + strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name          string
		first, second string // pod UIDs; "" is an instance without --pod-uid
		refused       []string
	}{
		{name: "two plain", refused: []string{"another sriov-dra instance runs on this node", pid + ", without --pod-uid",
			"an instance without --pod-uid runs alone"}},
		{name: "plain beside a DaemonSet pod", first: "uid-a", refused: []string{"another sriov-dra instance runs on this node",
			pid + ", with --pod-uid"}},
		{name: "DaemonSet pod beside a plain one", second: "uid-b", refused: []string{"another sriov-dra instance, without --pod-uid, runs on this node",
			pid + ", without --pod-uid", "overlap only with each other"}},
		{name: "rolling update", first: "uid-a", second: "uid-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "plugin")
			lock := filepath.Join(dir, InstanceLockName)
			unlock, err := LockInstance(context.Background(), dir, tc.first != "")
			require.NoError(t, err)
			defer unlock()
			unlock2, err := LockInstance(context.Background(), dir, tc.second != "")
			if tc.refused == nil {
				require.NoError(t, err)
				unlock2()
				return
			}
			require.Error(t, err)
			assert.ErrorContains(t, err, "instance lock "+lock)
			for _, want := range tc.refused {
				assert.ErrorContains(t, err, want)
			}
			unlock()
			unlock2, err = LockInstance(context.Background(), dir, tc.second != "")
			require.NoError(t, err, "free once the first one stopped")
			unlock2()
		})
	}
}
