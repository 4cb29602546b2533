package discovery

import (
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/deviceattribute"
)

// Attribute names, unqualified (the driver's own domain) unless they carry
// a domain. They mirror the classic selectors so every classic pool can be
// written in CEL.
const (
	AttrVendor       = "vendor"
	AttrDeviceID     = "deviceID"
	AttrDriver       = "driver"
	AttrPCIAddress   = "pciAddress"
	AttrFunctionType = "functionType"
	AttrDeviceType   = "deviceType"
	AttrPFName       = "pfName"
	AttrRootDevice   = "rootDevice"
	AttrVFIndex      = "vfIndex"
	AttrSFNum        = "sfNum"
	AttrIfName       = "ifName"
	AttrLinkType     = "linkType"
	AttrRDMA         = "rdma"
	AttrDDPProfile   = "ddpProfile"
	AttrVDPAType     = "vdpaType"
	AttrAuxType      = "auxType"
	AttrNUMANode     = "numaNode"
	AttrIOMMUGroup   = "iommuGroup"
	AttrEswitchMode  = "eswitchMode"
	AttrAcpiIndex    = "acpiIndex"
	// AttrPKeys is the partition keys, comma-separated (an attribute holds
	// one value): CEL tests one with split(",").
	AttrPKeys    = "pKeys"
	AttrPCIBusID = string(deviceattribute.StandardDeviceAttributePCIBusID)
	AttrPCIeRoot = string(deviceattribute.StandardDeviceAttributePCIeRoot)
	// AttrStdNUMANode is the standard name of numaNode, which CPU, memory
	// and GPU drivers publish too, so one claim can align across them.
	AttrStdNUMANode = string(deviceattribute.StandardDeviceAttributeNUMANode)
)

// Attributes returns the device's attributes in the DRA API's form. Unknown
// or inapplicable attributes are left out; rdma is always present on
// network devices so that CEL can test it without has().
func (d *Device) Attributes() map[resourceapi.QualifiedName]resourceapi.DeviceAttribute {
	return d.SharedAttributes(nil, 0)
}

// SharedAttributes is Attributes with the values taken from vals, which
// shares one value between the devices that have it, and room for extra
// attributes the caller adds. A nil vals shares nothing.
func (d *Device) SharedAttributes(vals *AttrValues, extra int) map[resourceapi.QualifiedName]resourceapi.DeviceAttribute {
	// A VF has about 20 attributes: the hint sizes the map once.
	m := make(map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, 24+extra)
	str := func(name, v string) {
		if v != "" {
			m[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{StringValue: vals.String(v)}
		}
	}
	num := func(name string, v int) {
		if v >= 0 {
			m[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{IntValue: vals.Int(int64(v))}
		}
	}
	str(AttrVendor, d.Vendor)
	str(AttrDeviceID, d.DeviceID)
	str(AttrDriver, d.Driver)
	str(AttrPCIAddress, d.PCIAddress)
	str(AttrFunctionType, string(d.FunctionType))
	str(AttrDeviceType, string(d.DeviceType))
	str(AttrPFName, d.PFName)
	str(AttrRootDevice, d.RootDevice)
	num(AttrVFIndex, d.VFIndex)
	num(AttrSFNum, d.SFNum)
	str(AttrIfName, d.IfName)
	str(AttrLinkType, d.LinkType)
	if d.DeviceType != DeviceTypeAccelerator {
		m[AttrRDMA] = resourceapi.DeviceAttribute{BoolValue: vals.Bool(d.RDMA)}
	}
	str(AttrDDPProfile, d.DDPProfile)
	str(AttrVDPAType, d.VDPAType)
	str(AttrAuxType, d.AuxType)
	num(AttrNUMANode, d.NUMANode)
	if numa, ok := m[AttrNUMANode]; ok {
		m[resourceapi.QualifiedName(AttrStdNUMANode)] = numa
	}
	num(AttrIOMMUGroup, d.IOMMUGroup)
	str(AttrEswitchMode, d.EswitchMode)
	str(AttrAcpiIndex, d.AcpiIndex)
	str(AttrPKeys, strings.Join(d.PKeys, ","))
	str(AttrPCIBusID, d.PCIBusID)
	str(AttrPCIeRoot, d.PCIeRoot)
	return m
}

// AttrValues hands out the values of many devices' attributes, one per
// distinct value: the VFs of a host share most of theirs (vendor, driver,
// PF, NUMA node...), and a pointer per device and attribute was most of the
// garbage a rescan of a large host left. Values are carved from blocks, so
// even distinct ones cost no allocation each. The values are shared: they
// must not be modified. An AttrValues is not safe for concurrent use; a nil
// one allocates each value afresh.
type AttrValues struct {
	strs  map[string]*string
	ints  map[int64]*int64
	bools [2]*bool
	// The blocks the next distinct values are carved from.
	strBlock []string
	intBlock []int64
}

// attrBlock is how many values a block holds: a PF's VFs' worth.
const attrBlock = 128

// NewAttrValues returns an empty AttrValues.
func NewAttrValues() *AttrValues {
	return &AttrValues{strs: map[string]*string{}, ints: map[int64]*int64{}}
}

// String returns a pointer to a string equal to s.
func (v *AttrValues) String(s string) *string {
	if v == nil {
		return fresh(s)
	}
	return intern(v.strs, &v.strBlock, s)
}

// Int returns a pointer to an int64 equal to n.
func (v *AttrValues) Int(n int64) *int64 {
	if v == nil {
		return fresh(n)
	}
	return intern(v.ints, &v.intBlock, n)
}

// fresh returns a pointer to a copy of x. Taking the address of the
// parameter in the methods themselves would move it to the heap on every
// call, shared or not.
func fresh[T any](x T) *T { return &x }

// intern returns the shared pointer to a value equal to x, storing x in
// block (allocated attrBlock values at a time) the first time.
func intern[T comparable](seen map[T]*T, block *[]T, x T) *T {
	if p, ok := seen[x]; ok {
		return p
	}
	if len(*block) == cap(*block) {
		*block = make([]T, 0, attrBlock)
	}
	*block = append(*block, x)
	p := &(*block)[len(*block)-1]
	seen[x] = p
	return p
}

// Bool returns a pointer to a bool equal to b.
func (v *AttrValues) Bool(b bool) *bool {
	if v == nil {
		return fresh(b)
	}
	i := 0
	if b {
		i = 1
	}
	if v.bools[i] == nil {
		v.bools[i] = fresh(b)
	}
	return v.bools[i]
}

// PlainAttributes returns the attributes as plain Go values (string, int64,
// bool), the form the CLI prints as JSON.
func (d *Device) PlainAttributes() map[string]any {
	attrs := d.Attributes()
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		switch {
		case v.StringValue != nil:
			out[string(k)] = *v.StringValue
		case v.IntValue != nil:
			out[string(k)] = *v.IntValue
		case v.BoolValue != nil:
			out[string(k)] = *v.BoolValue
		case v.VersionValue != nil:
			out[string(k)] = *v.VersionValue
		}
	}
	return out
}
