package prepare

import (
	resourceapi "k8s.io/api/resource/v1"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// File is a file to write: a name in its directory and the content.
type File struct {
	Name string
	Data []byte
}

// RenderedDevice is what one device of a plan adds to the containers.
type RenderedDevice struct {
	DevicePlan
	// Device is the device as it is now, after any rebind.
	Device discovery.Device
	Edits  DeviceEdits
	// CDIName is the device's CDI device name, unique across spec files.
	CDIName string
}

// Metadata is what the device's workload reads from its metadata file
// (KEP-5304, /var/run/kubernetes.io/dra-device-attributes/...): the device's
// attributes as they are now (a rebound device's driver; no netdev name once
// it has none), its classic device ID and the resource name its variables
// carry.
func (d *RenderedDevice) Metadata() map[string]resourceapi.DeviceAttribute {
	attrs := d.Device.Attributes()
	out := make(map[string]resourceapi.DeviceAttribute, len(attrs)+2)
	for k, v := range attrs {
		out[string(k)] = v
	}
	id := d.Device.ID()
	out[MetadataDeviceID] = resourceapi.DeviceAttribute{StringValue: &id}
	if name := d.Options.ResourceName; name != "" {
		out[MetadataResourceName] = resourceapi.DeviceAttribute{StringValue: &name}
	}
	if n := d.Options.Network; d.SettingsAtPrepare() {
		// A VF without a netdev: what its PF was told, for the DPDK
		// application or the VM that programs it.
		if mac := n.NormalizedMAC(); mac != "" {
			out[MetadataMAC] = resourceapi.DeviceAttribute{StringValue: &mac}
		}
		if n.VLAN != nil {
			vlan := int64(*n.VLAN)
			out[MetadataVLAN] = resourceapi.DeviceAttribute{IntValue: &vlan}
		}
	}
	return out
}

// The metadata names beside the published attributes: the classic device ID
// under the name the slices publish it (Multus reads it there), and the
// resource name in the driver's domain.
const (
	MetadataDeviceID     = "k8s.cni.cncf.io/deviceID"
	MetadataResourceName = "resourceName"
	// MetadataMAC and MetadataVLAN are set on a VF without a netdev whose
	// network section set them on its PF.
	MetadataMAC  = "mac"
	MetadataVLAN = "vlan"
)

// Rendered is what a prepared claim (or device-plugin allocation) leaves on
// the node: a CDI spec, device-info files and the claim's device status.
type Rendered struct {
	ID      string
	Devices []RenderedDevice
	// Env holds the PCIDEVICE_ variables the allocation's containers get.
	Env []string
	// Spec is the CDI spec (kind <driver>/net), written as SpecFile.
	Spec     *cdispec.Spec
	SpecFile string
	// InfoFiles are the Network Plumbing WG device-info files.
	InfoFiles []File
	// Status lists the claim's network devices (KEP-4817).
	Status []resourceapi.AllocatedDeviceStatus
	Err    error
}

// CDIKind is the CDI kind of a driver's specs.
func CDIKind(driverName string) string { return driverName + "/net" }

// CDIDeviceID is the qualified CDI name of a rendered device.
func (r *Rendered) CDIDeviceID(driverName string, d *RenderedDevice) string {
	return CDIKind(driverName) + "=" + d.CDIName
}

// Render computes what each plan's containers get. It runs after any rebind
// the plans asked for: inv is the inventory as it is now (a rebound device's
// driver, netdev and vfio group are what its edits depend on), and nodes
// answers which /dev nodes exist. A plan that failed before stays failed; a
// plan whose device lacks a node it needs fails, naming the node.
func Render(driverName string, plans []ClaimPlan, inv *discovery.Inventory, nodes DevNodes) []Rendered {
	out := make([]Rendered, len(plans))
	byID := map[string]*Rendered{}
	for i := range plans {
		out[i] = renderDevices(&plans[i], inv, nodes)
		byID[plans[i].ID] = &out[i]
	}
	for i := range plans {
		r := &out[i]
		if r.Err != nil {
			continue
		}
		// Devices of every peer (this plan included, in call order),
		// grouped by resource, so that peers write identical variables.
		byResource := map[string][]DeviceEdits{}
		for _, id := range plans[i].Peers {
			if peer := byID[id]; peer != nil && peer.Err == nil {
				for _, d := range peer.Devices {
					byResource[d.Options.ResourceName] = append(byResource[d.Options.ResourceName], d.Edits)
				}
			}
		}
		done := map[string]bool{}
		for _, d := range r.Devices {
			name := d.Options.ResourceName
			if done[name] {
				continue
			}
			done[name] = true
			env, err := Env(name, byResource[name])
			if err != nil {
				r.Err = err
				break
			}
			r.Env = append(r.Env, env...)
		}
		if r.Err == nil {
			r.finish(driverName)
		}
	}
	return out
}

// renderDevices computes each device's edits from its current state.
func renderDevices(p *ClaimPlan, inv *discovery.Inventory, nodes DevNodes) Rendered {
	r := Rendered{ID: p.ID, Err: p.Err}
	if r.Err != nil {
		return r
	}
	for _, dp := range p.Devices {
		now, ok := inv.Get(dp.Device.Name)
		if !ok {
			now = dp.Device
		}
		edits, err := ForDevice(&now, dp.Options, nodes)
		if err != nil {
			r.Err = err
			return r
		}
		r.Devices = append(r.Devices, RenderedDevice{DevicePlan: dp, Device: now, Edits: edits, CDIName: p.ID + "-" + dp.Device.Name})
	}
	return r
}

// finish builds the spec, the device-info files and the status.
func (r *Rendered) finish(driverName string) {
	cdiDevices := make([]CDIDevice, len(r.Devices))
	for i, d := range r.Devices {
		cdiDevices[i] = CDIDevice{Name: d.CDIName, Nodes: d.Edits.Nodes}
	}
	r.Spec = Spec(CDIKind(driverName), cdiDevices, r.Env)
	r.SpecFile = SpecFileName(CDIKind(driverName), r.ID)
	for _, d := range r.Devices {
		if d.Device.FunctionType != discovery.FunctionSF {
			// Device-info files describe PCI devices.
			data, err := DeviceInfo(&d.Device, d.Edits.Info["vhost"] != nil)
			if err != nil {
				r.Err = err
				return
			}
			r.InfoFiles = append(r.InfoFiles, File{Name: DeviceInfoFileName(d.Options.ResourceName, d.Device.ID()), Data: data})
		}
		switch mac := d.Options.Network.NormalizedMAC(); {
		case d.Device.IfName != "" && d.Device.Driver != "vfio-pci":
			r.Status = append(r.Status, resourceapi.AllocatedDeviceStatus{
				Driver: driverName, Pool: d.Pool, Device: d.Device.Name,
				NetworkData: &resourceapi.NetworkDeviceData{InterfaceName: d.Device.IfName, HardwareAddress: d.Device.HardwareAddress},
			})
		case d.SettingsAtPrepare() && mac != "":
			// No netdev: the MAC its PF gives it is what the workload sees.
			r.Status = append(r.Status, resourceapi.AllocatedDeviceStatus{
				Driver: driverName, Pool: d.Pool, Device: d.Device.Name,
				NetworkData: &resourceapi.NetworkDeviceData{HardwareAddress: mac},
			})
		}
	}
}
