package slicesync

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestDevicesEqual(t *testing.T) {
	dev := func(vendor string, numa int64) resourceapi.Device {
		return resourceapi.Device{Name: "pci-0000-3b-02-0", Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
			"vendor": {StringValue: ptr.To(vendor)}, "numaNode": {IntValue: ptr.To(numa)}, "rdma": {BoolValue: ptr.To(false)},
		}}
	}
	// The same attributes inserted in the other order.
	reordered := resourceapi.Device{Name: "pci-0000-3b-02-0", Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}}
	for _, k := range []resourceapi.QualifiedName{"rdma", "numaNode", "vendor"} {
		reordered.Attributes[k] = dev("8086", 0).Attributes[k]
	}
	tainted := func(at time.Time) resourceapi.Device {
		d := dev("8086", 0)
		d.Taints = []resourceapi.DeviceTaint{{Key: "sriov.dra.dev/link-down", Value: "ens1f0", Effect: resourceapi.DeviceTaintEffectNoSchedule}}
		if !at.IsZero() {
			d.Taints[0].TimeAdded = &metav1.Time{Time: at}
		}
		return d
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		x, y []resourceapi.Device
		want bool
	}{
		{"same", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{dev("8086", 0)}, true},
		{"map order does not matter", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{reordered}, true},
		{"nil and empty attributes", []resourceapi.Device{{Name: "a"}}, []resourceapi.Device{{Name: "a", Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}}}, true},
		{"a string value", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{dev("15b3", 0)}, false},
		{"an int value", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{dev("8086", 1)}, false},
		{"a taint", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{tainted(time.Time{})}, false},
		{"when a taint was added", []resourceapi.Device{tainted(now)}, []resourceapi.Device{tainted(now.Add(time.Second))}, false},
		{"a device more", []resourceapi.Device{dev("8086", 0)}, []resourceapi.Device{dev("8086", 0), dev("8086", 0)}, false},
		{"order of devices", []resourceapi.Device{{Name: "a"}, {Name: "b"}}, []resourceapi.Device{{Name: "b"}, {Name: "a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e devicesEqual
			assert.Equal(t, tc.want, e.equal(tc.x, tc.y))
			assert.Equal(t, tc.want, e.equal(tc.y, tc.x), "symmetric")
		})
	}
}
