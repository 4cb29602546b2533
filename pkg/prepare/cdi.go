package prepare

import (
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// CDIDevice is one CDI device of a claim's spec.
type CDIDevice struct {
	// Name must be unique across all spec files: <claim UID>-<device name>.
	Name  string
	Nodes []Node
}

// Spec builds a claim's CDI spec: one CDI device per allocated device and
// the environment on the spec, so it applies with any of them.
func Spec(kind string, devices []CDIDevice, env []string) *cdispec.Spec {
	s := &cdispec.Spec{Kind: kind, ContainerEdits: cdispec.ContainerEdits{Env: env}}
	for _, d := range devices {
		cd := cdispec.Device{Name: d.Name}
		for _, n := range d.Nodes {
			cd.ContainerEdits.DeviceNodes = append(cd.ContainerEdits.DeviceNodes, &cdispec.DeviceNode{Path: n.Path, HostPath: n.HostPath})
		}
		if len(cd.ContainerEdits.DeviceNodes) == 0 {
			// CDI requires every device to edit something; an env entry is
			// the smallest valid edit for a device without nodes (a netdev VF).
			cd.ContainerEdits.Env = []string{"SRIOV_DRA_DEVICE_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(d.Name)) + "=1"}
		}
		s.Devices = append(s.Devices, cd)
	}
	return s
}

// SpecFileName is the spec file for a claim in the CDI directory.
func SpecFileName(vendorClass, claimUID string) string {
	vendor, class, _ := strings.Cut(vendorClass, "/")
	return cdi.GenerateTransientSpecName(vendor, class, claimUID) + ".json"
}

// SpecFilePrefix is what every spec file of a CDI kind starts with.
func SpecFilePrefix(vendorClass string) string {
	return strings.TrimSuffix(SpecFileName(vendorClass, ""), ".json")
}
