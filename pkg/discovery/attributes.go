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
	m := make(map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, 24)
	str := func(name, v string) {
		if v != "" {
			m[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{StringValue: &v}
		}
	}
	num := func(name string, v int) {
		if v >= 0 {
			n := int64(v)
			m[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{IntValue: &n}
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
		rdma := d.RDMA
		m[AttrRDMA] = resourceapi.DeviceAttribute{BoolValue: &rdma}
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
