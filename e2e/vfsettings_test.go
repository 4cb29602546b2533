//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metadatav1beta1 "k8s.io/dynamic-resource-allocation/api/metadata/v1beta1"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// TestVFIOVFSettingsInPod: a pod whose class binds a VF to vfio-pci with a
// MAC, a VLAN and a maximum rate (a DPDK pod) runs with the VF set so on its
// PF, reads the MAC and VLAN from its device metadata, and its claim shows
// the MAC; once the pod is gone the VF's settings are as before and the VF
// is back on iavf.
func TestVFIOVFSettingsInPod(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, simhost.Spec{PFs: []simhost.PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NumVFs: 1}}})
	startDriver(t, driverOpts{host: h})
	ns := framework.Namespace(ctx, t, cluster.Client, "vfsettings")
	classWithConfig(ctx, t, "e2e-dpdk-vf", `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].functionType == "vf"`,
		`{"apiVersion":"sriov.dra.dev/v1alpha1","kind":"NetConfig","driver":"vfio-pci","network":{"mac":"02:5d:00:00:00:0a","vlan":12,"maxTxRate":300}}`)
	pf, err := simhost.Open(h.dir)
	require.NoError(t, err)
	before, err := pf.VF("ens1f0", 0)
	require.NoError(t, err)

	claim := simpleClaim(ns, "dpdk", "e2e-dpdk-vf", 1)
	logs := runUntilDone(ctx, t, ns, podWithClaims(ns, "dpdk", `cat /var/run/kubernetes.io/dra-device-attributes/resourceclaims/dpdk/dev/*; echo`, "dpdk"), claim)
	var m metadatav1beta1.DeviceMetadata
	require.NoError(t, json.NewDecoder(strings.NewReader(logs)).Decode(&m), logs)
	require.Len(t, m.Requests, 1)
	require.Len(t, m.Requests[0].Devices, 1)
	attrs := m.Requests[0].Devices[0].Attributes
	if a := attrs["mac"]; assert.NotNil(t, a.StringValue, "mac in the device metadata") {
		assert.Equal(t, "02:5d:00:00:00:0a", *a.StringValue)
	}
	if a := attrs["vlan"]; assert.NotNil(t, a.IntValue, "vlan in the device metadata") {
		assert.Equal(t, int64(12), *a.IntValue)
	}
	if a := attrs["driver"]; assert.NotNil(t, a.StringValue) {
		assert.Equal(t, "vfio-pci", *a.StringValue)
	}
	set, err := pf.VF("ens1f0", 0)
	require.NoError(t, err)
	assert.Equal(t, host.VFState{MAC: "02:5d:00:00:00:0a", VLAN: 12, SpoofChk: true, MaxTxRate: 300}, set, "on the PF while the pod runs")
	c, err := cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "dpdk", metav1.GetOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err = cluster.Client.ResourceV1().ResourceClaims(ns).Get(ctx, "dpdk", metav1.GetOptions{})
		return err == nil && len(c.Status.Devices) == 1
	}, 30e9, 200e6, "the claim's network status")
	assert.Equal(t, &resourceapi.NetworkDeviceData{HardwareAddress: "02:5d:00:00:00:0a"}, c.Status.Devices[0].NetworkData)

	deletePodAndWaitUnprepared(ctx, t, ns, "dpdk", string(c.UID))
	after, err := pf.VF("ens1f0", 0)
	require.NoError(t, err)
	assert.Equal(t, before.Normalized(), after.Normalized(), "the VF's settings put back")
	drv, err := pf.CurrentDriver("0000:3b:02.0")
	require.NoError(t, err)
	assert.Equal(t, "iavf", drv)
}
