package main

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/metrics"
)

func TestProbe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "health.sock")
	code, _, errs := runCLI(t, "probe", "--health-socket", sock)
	assert.Equal(t, 1, code, "no daemon: not ready")
	assert.Contains(t, errs, "readyz: ")
	assert.Contains(t, errs, sock)

	var registered atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, metrics.New().Serve(ctx, metrics.ServeConfig{Socket: sock}, metrics.Checks{Ready: func() error {
		if !registered.Load() {
			return errors.New("not registered with the kubelet yet")
		}
		return nil
	}}))
	code, _, errs = runCLI(t, "probe", "--health-socket", sock, "readyz")
	assert.Equal(t, 1, code)
	assert.Equal(t, "sriov-dra probe: readyz: not registered with the kubelet yet (HTTP 503)\n", errs)
	code, out, _ := runCLI(t, "probe", "--health-socket", sock, "healthz")
	assert.Equal(t, 0, code, "alive while not ready")
	assert.Equal(t, "healthz: ok\n", out)

	registered.Store(true)
	code, out, errs = runCLI(t, "probe", "--health-socket", sock)
	assert.Equal(t, 0, code, errs)
	assert.Equal(t, "readyz: ok\n", out)

	code, _, errs = runCLI(t, "probe", "--health-socket", sock, "metrics")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown check "metrics"`)
}
