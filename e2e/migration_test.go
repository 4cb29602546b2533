//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/e2e/framework"
	"github.com/sriov-dra/sriov-dra/pkg/convert"
)

// migrationConfig: intel.com/mig_net is ens1f0's VFs 0 and 1 (0000:3b:02.0
// and .1, iavf) on the e810 profile; intel.com/mig_other is ens1f1's VFs.
const migrationConfig = `{"resourceList":[
	{"resourceName":"mig_net","selectors":{"pfNames":["ens1f0#0-1"]}},
	{"resourceName":"mig_other","selectors":{"pfNames":["ens1f1"]}}]}`

// migNetDevice is one device of intel.com/mig_net, as a pod's variable
// names it.
func migNetDevice(t *testing.T, logs string) string {
	t.Helper()
	lines := envLines(logs)
	require.Len(t, lines, 2, "log:\n%s", logs)
	require.Regexp(t, `^PCIDEVICE_INTEL_COM_MIG_NET=0000:3b:02\.[01]$`, lines[0])
	require.Regexp(t, `^PCIDEVICE_INTEL_COM_MIG_NET_INFO=\{"0000:3b:02\.[01]":\{"generic":\{"deviceID":"0000:3b:02\.[01]"\}\}\}$`, lines[1])
	return strings.TrimPrefix(lines[0], "PCIDEVICE_INTEL_COM_MIG_NET=")
}

func podRunning(ctx context.Context, t *testing.T, ns, name string) bool {
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	return p.Status.Phase == corev1.PodRunning
}

// TestMigrationWalk walks docs/migration.md on one node: (1) sriov-dra's
// shim serves every classic pool and a pod gets a device by extended
// resource; (2) one pool moves to DRA through its converted DeviceClass: the
// first pod keeps running and keeps its device, which is not published while
// it holds it; a new pod asking for the same extended resource gets the
// other device through DRA with the same variables; a third waits until the
// first pod is gone and then gets its device; (3) a claim with CEL on the
// converted class picks one device by VF index.
func TestMigrationWalk(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	cfgPath := writeConfig(t, migrationConfig)
	ns := framework.Namespace(ctx, t, cluster.Client, "migration")

	// Step 1: the drop-in.
	d := startDriver(t, driverOpts{host: h, config: cfgPath, noWait: true, legacy: []string{"all"}})
	waitAllocatable(ctx, t, "intel.com/mig_net", 2)
	first := migNetDevice(t, runUntilDone(ctx, t, ns, legacyPod(ns, "first", map[string]int64{"intel.com/mig_net": 1})))

	// Step 2: mig_net to DRA, the shim keeping mig_other.
	cfg, err := classic.Load(cfgPath, "")
	require.NoError(t, err)
	pools, err := convert.Convert(cfg, convert.Options{DriverName: driverName, Mode: convert.ModeAttributes})
	require.NoError(t, err)
	require.Equal(t, "intel.com/mig_net", pools[0].ResourceName)
	class := pools[0].Class
	createDeviceClass(ctx, t, &class)
	d.stop(t)
	startDriver(t, driverOpts{host: h, config: cfgPath, noWait: true, legacy: []string{"intel.com/mig_other"}})
	waitAllocatable(ctx, t, "intel.com/mig_net", 0)
	require.Eventually(t, func() bool {
		return devicesWithAttribute(ctx, t, "k8s.cni.cncf.io/resourceName", "intel.com/mig_net") == 1
	}, 30*time.Second, 200*time.Millisecond, "the pool's device the first pod does not hold is published")
	assert.True(t, podRunning(ctx, t, ns, "first"), "the first pod keeps running")

	second := migNetDevice(t, runUntilDone(ctx, t, ns, legacyPod(ns, "second", map[string]int64{"intel.com/mig_net": 1})))
	assert.NotEqual(t, first, second, "the device the first pod holds is not given again")
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "second", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, p.Status.ExtendedResourceClaimStatus, "served through DRA (KEP-5004)")

	// The third waits for the first pod's device.
	third := legacyPod(ns, "third", map[string]int64{"intel.com/mig_net": 1})
	third.Spec.Containers[0].Command[2] += "; echo DONE; exec sleep 3600"
	_, err = cluster.Client.CoreV1().Pods(ns).Create(ctx, third, metav1.CreateOptions{})
	require.NoError(t, err)
	never(t, func() bool { return podRunning(ctx, t, ns, "third") }, 3*time.Second, 200*time.Millisecond,
		"the third pod runs while the first pod holds the only other device")
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	logs := waitLog(ctx, t, ns, "third", "DONE\n")
	assert.Equal(t, first, migNetDevice(t, logs), "the third pod gets the device the first released")

	// Step 3: a claim with CEL on the converted class: the second pod's
	// device, by its VF index, once that pod is gone.
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctx, "second", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	index := "0"
	if strings.HasSuffix(second, ".1") {
		index = "1"
	}
	claim := simpleClaim(ns, "cel", class.Name, 1)
	claim.Spec.Devices.Requests[0].Exactly.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
		Expression: `device.attributes["sriov.dra.dev"].pfName == "ens1f0" && device.attributes["sriov.dra.dev"].vfIndex == ` + index}}}
	cel := migNetDevice(t, runUntilDone(ctx, t, ns, podWithClaims(ns, "cel", "env | grep PCIDEVICE", "cel"), claim))
	assert.Equal(t, second, cel, "the VF the CEL names, with the pool's variables")
}
