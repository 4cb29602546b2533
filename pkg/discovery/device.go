// Package discovery builds one immutable inventory of the SR-IOV related
// devices of a host: VFs, PFs without VFs, auxiliary devices (SFs) and PCI
// accelerators, with every attribute the classic selectors need.
package discovery

import (
	"fmt"
	"slices"
	"strings"
)

// FunctionType tells how a device relates to SR-IOV.
type FunctionType string

const (
	FunctionPF FunctionType = "pf"
	FunctionVF FunctionType = "vf"
	FunctionSF FunctionType = "sf"
)

// DeviceType is the classic plugin's pool device type.
type DeviceType string

const (
	DeviceTypeNet         DeviceType = "netDevice"
	DeviceTypeAccelerator DeviceType = "accelerator"
	DeviceTypeAuxNet      DeviceType = "auxNetDevice"
)

// Device is one allocatable device. Empty strings and negative numbers mean
// "unknown or not applicable"; such attributes are not published.
type Device struct {
	// Name is a DNS label derived from the stable address.
	Name         string
	FunctionType FunctionType
	DeviceType   DeviceType

	// PCIAddress is the function's own address; for an SF, its parent's.
	PCIAddress string
	// AuxName is the auxiliary device name of an SF ("mlx5_core.sf.4").
	AuxName string
	AuxType string
	SFNum   int

	Vendor   string
	DeviceID string
	Driver   string

	PFName     string
	RootDevice string
	VFIndex    int

	IfName          string
	HardwareAddress string
	LinkType        string
	// OperState is the netdev's operstate ("up", "down", ...), or the PF's
	// when the device's own netdev is not visible.
	OperState string
	// PFLinkDown reports that the link of the device's PF (its own, for a
	// PF) is down: the device carries no traffic. Network devices only.
	PFLinkDown bool

	RDMA bool
	// PKeys are the InfiniBand partition keys of its RDMA devices' ports
	// ("0x7fff"), sorted.
	PKeys []string
	// RDMADevices are the RDMA (infiniband class) device names, e.g. mlx5_0.
	RDMADevices []string
	// RDMACharDevices are /dev-relative char device paths of the RDMA devices
	// (infiniband/uverbs0, infiniband/umad0, infiniband/issm0).
	RDMACharDevices []string

	DDPProfile  string
	EswitchMode string

	VDPAType string
	// VDPADevice is the /dev-relative vhost-vdpa node (vhost-vdpa-0).
	VDPADevice string

	// UIODevice is the /dev-relative uio node (uio0) for uio drivers.
	UIODevice string

	// AcpiIndex is the firmware's acpi_index of the function, if any.
	AcpiIndex string

	NUMANode   int
	IOMMUGroup int
	// IOMMUNoIOMMU reports a vfio-noiommu group (/dev/vfio/noiommu-N).
	IOMMUNoIOMMU bool

	PCIBusID string
	PCIeRoot string
}

// ID is the classic plugin's device ID: the PCI address, or an SF's
// auxiliary device name.
func (d *Device) ID() string {
	if d.FunctionType == FunctionSF {
		return d.AuxName
	}
	return d.PCIAddress
}

// PCIDeviceName turns "0000:3b:02.0" into the DNS label "pci-0000-3b-02-0".
func PCIDeviceName(addr string) string {
	return dnsLabel("pci-", addr)
}

// AuxDeviceName turns "mlx5_core.sf.4" into "aux-mlx5-core-sf-4".
func AuxDeviceName(auxName string) string {
	return dnsLabel("aux-", auxName)
}

// dnsLabel is prefix followed by s, lower case, with '-' for each rune that
// is not a letter or digit: one allocation per device name.
func dnsLabel(prefix, s string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(s))
	b.WriteString(prefix)
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

func (d *Device) String() string {
	return fmt.Sprintf("%s (%s %s)", d.Name, d.FunctionType, d.ID())
}

// Equal reports whether two devices are the same in every field.
// TestDeviceEqualSeesEveryField fails when a field is added here but not
// compared.
func (d *Device) Equal(o *Device) bool {
	return d.Name == o.Name && d.FunctionType == o.FunctionType && d.DeviceType == o.DeviceType &&
		d.PCIAddress == o.PCIAddress && d.AuxName == o.AuxName && d.AuxType == o.AuxType && d.SFNum == o.SFNum &&
		d.Vendor == o.Vendor && d.DeviceID == o.DeviceID && d.Driver == o.Driver &&
		d.PFName == o.PFName && d.RootDevice == o.RootDevice && d.VFIndex == o.VFIndex &&
		d.IfName == o.IfName && d.HardwareAddress == o.HardwareAddress && d.LinkType == o.LinkType &&
		d.OperState == o.OperState && d.PFLinkDown == o.PFLinkDown && d.RDMA == o.RDMA &&
		slices.Equal(d.PKeys, o.PKeys) && slices.Equal(d.RDMADevices, o.RDMADevices) &&
		slices.Equal(d.RDMACharDevices, o.RDMACharDevices) &&
		d.DDPProfile == o.DDPProfile && d.EswitchMode == o.EswitchMode && d.VDPAType == o.VDPAType &&
		d.VDPADevice == o.VDPADevice && d.UIODevice == o.UIODevice && d.AcpiIndex == o.AcpiIndex &&
		d.NUMANode == o.NUMANode && d.IOMMUGroup == o.IOMMUGroup && d.IOMMUNoIOMMU == o.IOMMUNoIOMMU &&
		d.PCIBusID == o.PCIBusID && d.PCIeRoot == o.PCIeRoot
}
