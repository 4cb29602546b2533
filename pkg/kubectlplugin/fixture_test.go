package kubectlplugin

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The test cluster: node n1 has PF ens1f0 with vfsUp VFs (the first
// classicVFs of them in a classic pool) and PF ens1f1, link down, with
// vfsDown tainted VFs; node n2 has PF ens2f0 with vfsN2 VFs. Claims ns/a and
// ns/b hold ens1f0's VFs 0 and 1.
const (
	vfsUp      = 4
	vfsDown    = 2
	vfsN2      = 3
	classicVFs = 2
	classicRN  = "intel.com/sriov_a"
	ns         = "ns"
)

var linkDown = resourceapi.DeviceTaint{Key: DefaultDriver + "/link-down", Value: "ens1f1", Effect: resourceapi.DeviceTaintEffectNoSchedule}

func strAttr(s string) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{StringValue: &s}
}
func intAttr(i int64) resourceapi.DeviceAttribute { return resourceapi.DeviceAttribute{IntValue: &i} }
func vfName(bus string, i int) string             { return fmt.Sprintf("pci-0000-%s-02-%d", bus, i) }
func vfAddr(bus string, i int) string             { return fmt.Sprintf("0000:%s:02.%d", bus, i) }
func withTaint(t resourceapi.DeviceTaint) func(*resourceapi.Device) {
	return func(d *resourceapi.Device) { d.Taints = append(d.Taints, t) }
}

func withResource(rn string) func(*resourceapi.Device) {
	return func(d *resourceapi.Device) { d.Attributes["k8s.cni.cncf.io/resourceName"] = strAttr(rn) }
}

// vfs returns n VFs of a PF, with the attributes the driver publishes.
func vfs(pf, bus string, n int, numa int64, opts ...func(*resourceapi.Device)) []resourceapi.Device {
	var out []resourceapi.Device
	for i := range n {
		d := resourceapi.Device{Name: vfName(bus, i), Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
			"pfName": strAttr(pf), "rootDevice": strAttr("0000:" + bus + ":00.0"), "pciAddress": strAttr(vfAddr(bus, i)),
			"functionType": strAttr("vf"), "vfIndex": intAttr(int64(i)), "driver": strAttr("iavf"), "numaNode": intAttr(numa),
		}}
		for _, o := range opts {
			o(&d)
		}
		out = append(out, d)
	}
	return out
}

func slice(node string, gen int64, devices ...resourceapi.Device) resourceapi.ResourceSlice {
	return resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%d", node, gen, len(devices))},
		Spec: resourceapi.ResourceSliceSpec{
			Driver: DefaultDriver, NodeName: ptr.To(node), Devices: devices,
			Pool: resourceapi.ResourcePool{Name: node, Generation: gen, ResourceSliceCount: 1},
		},
	}
}

func allocated(name, pool string, pods []string, devices ...string) resourceapi.ResourceClaim {
	c := resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	c.Status.Allocation = &resourceapi.AllocationResult{}
	for _, d := range devices {
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results,
			resourceapi.DeviceRequestAllocationResult{Request: "dev", Driver: DefaultDriver, Pool: pool, Device: d})
	}
	for _, p := range pods {
		c.Status.ReservedFor = append(c.Status.ReservedFor, resourceapi.ResourceClaimConsumerReference{Resource: "pods", Name: p, UID: types.UID("uid-" + p)})
	}
	return c
}

func class(name string, exprs ...string) resourceapi.DeviceClass {
	c := resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, e := range exprs {
		c.Spec.Selectors = append(c.Spec.Selectors, resourceapi.DeviceSelector{CEL: &resourceapi.CELDeviceSelector{Expression: e}})
	}
	return c
}

const (
	selDriver = `device.driver == "sriov.dra.dev"`
	selVF     = `device.attributes["sriov.dra.dev"].functionType == "vf"`
)

func pfIs(pf string) string {
	return fmt.Sprintf(`device.attributes["sriov.dra.dev"].pfName == %q`, pf)
}

// snapshot is the test cluster, plus any extra objects.
func snapshot(extra ...any) Snapshot {
	n1 := append(vfs("ens1f0", "3b", classicVFs, 0, withResource(classicRN)), vfs("ens1f0", "3b", vfsUp, 0)[classicVFs:]...)
	s := Snapshot{
		Driver: DefaultDriver,
		Slices: []resourceapi.ResourceSlice{
			slice("n1", 2, n1...),
			slice("n1", 2, vfs("ens1f1", "3c", vfsDown, 1, withTaint(linkDown))...),
			slice("n2", 1, vfs("ens2f0", "5e", vfsN2, 0)...),
			// A slice of an older generation, being replaced: not counted.
			slice("n1", 1, vfs("ens9f0", "9a", 5, 0)...),
		},
		Claims: []resourceapi.ResourceClaim{
			allocated("a", "n1", []string{"pod-a"}, vfName("3b", 0)),
			allocated("b", "n1", []string{"pod-b"}, vfName("3b", 1)),
		},
		Classes: []resourceapi.DeviceClass{
			class("vf", selDriver, selVF),
			class("ens1f0", selDriver, pfIs("ens1f0")),
			class("ens1f1", selDriver, pfIs("ens1f1")),
			class("gpu", `device.driver == "gpu.example.com"`),
		},
	}
	for _, e := range extra {
		switch o := e.(type) {
		case resourceapi.ResourceClaim:
			s.Claims = append(s.Claims, o)
		case resourceapi.DeviceClass:
			s.Classes = append(s.Classes, o)
		}
	}
	return s
}

// pending is a claim of one request that is not allocated.
func pending(name string, req resourceapi.ExactDeviceRequest) resourceapi.ResourceClaim {
	if req.AllocationMode == "" {
		req.AllocationMode = resourceapi.DeviceAllocationModeExactCount
	}
	return resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{Name: "dev", Exactly: &req}}}},
	}
}

func podWith(claims ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}
	for i, c := range claims {
		p.Spec.ResourceClaims = append(p.Spec.ResourceClaims, corev1.PodResourceClaim{Name: fmt.Sprintf("c%d", i), ResourceClaimName: ptr.To(c)})
	}
	return p
}
