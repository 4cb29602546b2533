// Package simhost writes simulated hosts: sysfs, /dev and /proc trees laid
// out as a real Linux kernel lays them out, described by a short Spec, so
// that every layer of sriov-dra (and its demo) runs without SR-IOV hardware.
package simhost

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Spec describes a host: its physical functions and what hangs off them.
type Spec struct {
	PFs []PF `json:"pfs"`
	// Uppers are virtual interfaces stacked on the functions' netdevs.
	Uppers []Upper `json:"uppers,omitempty"`
}

// Upper is a bond, team, bridge or VLAN interface over other interfaces
// (netdevs of the spec's functions, or earlier uppers).
type Upper struct {
	Name string `json:"name"`
	// Kind is bond, team, bridge or vlan.
	Kind   string   `json:"kind"`
	Lowers []string `json:"lowers"`
	// DefaultRoute makes this interface carry the host's default route.
	DefaultRoute bool `json:"defaultRoute,omitempty"`
}

// PF is one physical PCI function: a NIC port or an accelerator.
// Fields left empty take the Model's values.
type PF struct {
	// Address is the PCI address, "0000:3b:00.0".
	Address string `json:"address"`
	// Model names a preset (see Models) that fills IDs, drivers and VF layout.
	Model    string `json:"model,omitempty"`
	Vendor   string `json:"vendor,omitempty"`
	Device   string `json:"device,omitempty"`
	Class    string `json:"class,omitempty"`
	Driver   string `json:"driver,omitempty"`
	IfName   string `json:"ifName,omitempty"`
	NUMANode *int   `json:"numaNode,omitempty"`
	// Root is the PCIe root complex ("pci0000:3a"); default pci<domain>:00.
	Root string `json:"root,omitempty"`
	// LinkType is "ether" (default for NICs) or "infiniband".
	LinkType string `json:"linkType,omitempty"`
	// LinkDown takes the PF and its VFs' links down.
	LinkDown bool `json:"linkDown,omitempty"`
	// DefaultRoute makes the PF's netdev carry the host's default route.
	DefaultRoute bool   `json:"defaultRoute,omitempty"`
	RDMA         bool   `json:"rdma,omitempty"`
	EswitchMode  string `json:"eswitchMode,omitempty"`
	DDPProfile   string `json:"ddpProfile,omitempty"`

	// TotalVFs > 0 makes the function SR-IOV capable.
	TotalVFs int `json:"totalVFs,omitempty"`
	// NumVFs is how many VFs are enabled.
	NumVFs   int    `json:"numVFs,omitempty"`
	VFOffset int    `json:"vfOffset,omitempty"`
	VFStride int    `json:"vfStride,omitempty"`
	VFDevice string `json:"vfDevice,omitempty"`
	VFDriver string `json:"vfDriver,omitempty"`
	VFRDMA   bool   `json:"vfRDMA,omitempty"`
	// VFs overrides individual VFs by index.
	VFs []VF `json:"vfs,omitempty"`
	// SFs are subfunctions (auxiliary devices) of this PF.
	SFs []SF `json:"sfs,omitempty"`
}

// VF overrides one VF of a PF.
type VF struct {
	Index  int    `json:"index"`
	Driver string `json:"driver,omitempty"`
	// InPodNetns hides the VF's netdev, as when it was moved into a pod.
	InPodNetns bool `json:"inPodNetns,omitempty"`
	// VDPA adds a vDPA device of this type ("vhost" or "virtio").
	VDPA string `json:"vdpa,omitempty"`
	// NoIOMMU puts the VF in a vfio-noiommu group.
	NoIOMMU bool `json:"noIOMMU,omitempty"`
	// DefaultRoute makes the VF's netdev carry the host's default route.
	DefaultRoute bool `json:"defaultRoute,omitempty"`
	// PKeys are the InfiniBand partition keys in port 1's table of the
	// VF's RDMA device ("0x7fff"); an empty slot follows them.
	PKeys []string `json:"pKeys,omitempty"`
}

// SF is a subfunction: an auxiliary device "<driver>.sf.<id>".
type SF struct {
	ID     int    `json:"id"`
	SFNum  int    `json:"sfNum"`
	IfName string `json:"ifName,omitempty"`
	RDMA   bool   `json:"rdma,omitempty"`
	VDPA   string `json:"vdpa,omitempty"`
}

// LoadSpec reads a YAML or JSON spec, rejecting unknown fields.
func LoadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("read spec: %w", err)
	}
	var s Spec
	if err := yaml.UnmarshalStrict(bytes.TrimSpace(b), &s); err != nil {
		return Spec{}, fmt.Errorf("decode spec %s: %w", path, err)
	}
	return s, nil
}

// pciAddr is a parsed domain:bus:device.function.
type pciAddr struct{ domain, bus, devfn int }

func parseAddr(s string) (pciAddr, error) {
	var a pciAddr
	var dev, fn int
	if _, err := fmt.Sscanf(s, "%04x:%02x:%02x.%1x", &a.domain, &a.bus, &dev, &fn); err != nil || dev > 31 || fn > 7 || len(s) != 12 {
		return a, fmt.Errorf("address %q is not a PCI address like 0000:3b:00.0", s)
	}
	a.devfn = dev<<3 | fn
	return a, nil
}

// plus returns the address n functions (routing IDs) further on.
func (a pciAddr) plus(n int) pciAddr {
	rid := a.bus<<8 | a.devfn + n
	return pciAddr{domain: a.domain, bus: rid >> 8 & 0xff, devfn: rid & 0xff}
}

func (a pciAddr) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.domain, a.bus, a.devfn>>3, a.devfn&7)
}

func hex4(s string) string {
	s = strings.TrimPrefix(strings.ToLower(s), "0x")
	if _, err := strconv.ParseUint(s, 16, 16); err != nil {
		return s
	}
	return "0x" + s
}
