package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

func healthOf(r kubeletplugin.DeviceHealthReport) map[string]string {
	out := map[string]string{}
	for _, d := range r.Devices {
		out[d.DeviceName] = string(d.Health) + ":" + d.Message
	}
	return out
}

// TestHealthReports: the kubelet hears of every prepared device, Unhealthy
// while its PF's link is down or once it is gone, at once on a change and
// again every healthResend.
func TestHealthReports(t *testing.T) {
	spec := simhost.Spec{PFs: []simhost.PF{
		{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 2},
		{Address: "0000:5b:00.0", Model: "e810", IfName: "ens2f0", NumVFs: 2},
	}}
	n := newTestNode(t, nodeOpts{spec: spec, objects: []runtime.Object{testClass}})
	require.NoError(t, n.prepareOne(t, claimFor("a", "", "pci-0000-3b-02-0")).Err)
	require.NoError(t, n.prepareOne(t, claimFor("b", "", "pci-0000-5b-02-1")).Err)
	d := n.Driver
	reports := make(chan kubeletplugin.DeviceHealthReport, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.WatchHealthStatus(ctx, reports) }()
	next := func() map[string]string {
		select {
		case r := <-reports:
			for _, dev := range r.Devices {
				assert.Equal(t, "node", dev.PoolName)
				assert.Equal(t, healthTimeout, dev.HealthCheckTimeout)
			}
			return healthOf(r)
		case <-time.After(5 * time.Second):
			t.Fatal("no health report")
			return nil
		}
	}
	assert.Equal(t, map[string]string{"pci-0000-3b-02-0": "Healthy:", "pci-0000-5b-02-1": "Healthy:"}, next())

	require.NoError(t, n.h.SetLink("ens1f0", false))
	_, err := n.pub.Sync(context.Background())
	require.NoError(t, err)
	inv, _ := n.pub.Snapshot()
	d.health.Observe(inv)
	assert.Equal(t, map[string]string{"pci-0000-3b-02-0": "Unhealthy:link of PF ens1f0 is down", "pci-0000-5b-02-1": "Healthy:"}, next(),
		"reported on the change, not at the next resend")

	// ens2f0's VFs removed: its prepared device is gone.
	spec.PFs[1].NumVFs = 0
	require.NoError(t, os.RemoveAll(filepath.Join(n.root, "host")))
	require.NoError(t, simhost.Write(filepath.Join(n.root, "host"), spec))
	_, err = n.pub.Sync(context.Background())
	require.NoError(t, err)
	inv, _ = n.pub.Snapshot()
	d.health.Observe(inv)
	got := next()
	assert.Equal(t, "Unhealthy:gone from the host", got["pci-0000-5b-02-1"])
	assert.Equal(t, "Healthy:", got["pci-0000-3b-02-0"], "the rewritten host has ens1f0 up again")
}
