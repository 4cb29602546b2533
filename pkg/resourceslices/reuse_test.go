package resourceslices_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// attrsOf maps each device of a pool to its attributes.
func attrsOf(pool resourceslice.Pool) map[string]map[resourceapi.QualifiedName]resourceapi.DeviceAttribute {
	out := map[string]map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}
	for _, s := range pool.Slices {
		for _, d := range s.Devices {
			out[d.Name] = d.Attributes
		}
	}
	return out
}

func sameMap(a, b map[resourceapi.QualifiedName]resourceapi.DeviceAttribute) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// TestBuildReuse: with a Reuse, a rebuild of an unchanged host hands every
// device its last map, and after a change only the changed devices get new
// ones — the pools always equal what Build makes without a Reuse. The e810
// profile's ens1f0 has VFs 0000:3b:02.0-7 on iavf (6 and 7 on vfio-pci).
func TestBuildReuse(t *testing.T) {
	ctx := context.Background()
	h, _ := simhosttest.NewProfileHost(t, "e810")
	discover := func() *discovery.Inventory {
		inv, err := discovery.Discover(ctx, h)
		require.NoError(t, err)
		return inv
	}
	names := map[string]string{}
	opts := resourceslices.Options{ResourceNameOf: func(name string) string { return names[name] }, Reuse: &resourceslices.Reuse{}}
	fresh := func(inv *discovery.Inventory) resourceslice.Pool {
		o := opts
		o.Reuse = nil
		pool, _ := resourceslices.Build(inv, o)
		return pool
	}

	first, _ := resourceslices.Build(discover(), opts)
	inv := discover()
	again, _ := resourceslices.Build(inv, opts)
	assert.Equal(t, fresh(inv), again)
	before, after := attrsOf(first), attrsOf(again)
	require.Len(t, after, 12)
	for name, attrs := range after {
		assert.True(t, sameMap(before[name], attrs), "unchanged %s got a new map", name)
	}

	_, err := h.BindDriver("0000:3b:02.0", "vfio-pci")
	require.NoError(t, err)
	names["pci-0000-3b-02-1"] = "intel.com/f1"
	inv = discover()
	changed, _ := resourceslices.Build(inv, opts)
	assert.Equal(t, fresh(inv), changed)
	now := attrsOf(changed)
	assert.Equal(t, "vfio-pci", *now["pci-0000-3b-02-0"][discovery.AttrDriver].StringValue)
	assert.Equal(t, "intel.com/f1", *now["pci-0000-3b-02-1"][resourceslices.AttrMultusResourceName].StringValue)
	for name, attrs := range now {
		changedDevice := name == "pci-0000-3b-02-0" || name == "pci-0000-3b-02-1"
		assert.Equal(t, !changedDevice, sameMap(after[name], attrs), "device %s", name)
	}
}
