package prepare

import (
	"encoding/json"
	"strings"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// DeviceInfoFileName is the Network Plumbing WG device-info file for a
// device of a resource: <resource with / as ->-<deviceID>-device.json.
func DeviceInfoFileName(resourceName, deviceID string) string {
	return strings.ReplaceAll(resourceName, "/", "-") + "-" + deviceID + "-device.json"
}

// DeviceInfo is the device-info (spec 1.1.0) content for a PCI device.
func DeviceInfo(d *discovery.Device, vhostNet bool) ([]byte, error) {
	pci := map[string]string{"pci-address": d.PCIAddress}
	if d.RootDevice != "" && d.RootDevice != d.PCIAddress {
		pci["pf-pci-address"] = d.RootDevice
	}
	if vhostNet {
		pci["vhost-net"] = "/dev/vhost-net"
	}
	if d.RDMA && len(d.RDMADevices) > 0 {
		pci["rdma-device"] = d.RDMADevices[0]
	}
	return json.Marshal(map[string]any{"type": "pci", "version": "1.1.0", "pci": pci})
}
