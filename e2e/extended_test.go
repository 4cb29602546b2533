//go:build e2e

package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

// TestExtendedResourcePod: a pod that asks for a classic extended resource
// (intel.com/sriov_ext: 1) and no claim is served through DRA (KEP-5004):
// the DeviceClass's extendedResourceName names the resource, the scheduler
// makes the claim, and the container gets PCIDEVICE_INTEL_COM_SRIOV_EXT as
// with the classic device plugin.
func TestExtendedResourcePod(t *testing.T) {
	ctx := t.Context()
	h := newSimHost(t, profiles(t, "e810"))
	startDriver(t, driverOpts{host: h})
	dc := &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-extended"},
		Spec: resourceapi.DeviceClassSpec{
			Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
				Expression: `device.driver == "sriov.dra.dev" && device.attributes["sriov.dra.dev"].driver == "iavf"`}}},
			ExtendedResourceName: ptr.To("intel.com/sriov_ext"),
		},
	}
	createDeviceClass(ctx, t, dc)
	ns := framework.Namespace(ctx, t, cluster.Client, "extended")
	pod := framework.BusyboxPod(ns, "legacy", "env | grep PCIDEVICE")
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"intel.com/sriov_ext": resource.MustParse("2")}
	logs := runUntilDone(ctx, t, ns, pod)
	lines := envLines(logs)
	require.Len(t, lines, 2, "log:\n%s", logs)
	assert.Regexp(t, `^PCIDEVICE_INTEL_COM_SRIOV_EXT=0000:3b:[0-9a-f]{2}\.[0-7],0000:3b:[0-9a-f]{2}\.[0-7]$`, lines[0])
	assert.Contains(t, lines[1], `PCIDEVICE_INTEL_COM_SRIOV_EXT_INFO={"0000:3b:`)
	p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "legacy", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, p.Status.ExtendedResourceClaimStatus, "the scheduler made a claim for the extended resource")
	assert.Equal(t, "intel.com/sriov_ext", p.Status.ExtendedResourceClaimStatus.RequestMappings[0].ResourceName)
}
