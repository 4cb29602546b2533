// Package prepare plans what a container gets for its allocated devices —
// driver rebinds, device nodes, the classic PCIDEVICE_* environment, the CDI
// spec, device-info files and the claim's network status — byte-compatible
// with what sriov-network-device-plugin gave pods. It does no I/O and uses no
// Kubernetes client: the executor (pkg/claims, pkg/deviceplugin) gathers the
// inputs and carries the plan out.
package prepare

import (
	"fmt"
	"maps"
	"path"
	"strconv"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
)

// DevNodes answers whether a /dev-relative node exists and where it is on
// the host.
type DevNodes interface {
	DevExists(rel string) bool
	DevPath(rel string) string
}

// Node is a device node: its host path and the path inside the container.
type Node struct {
	HostPath string
	Path     string
}

// Info is one device's _INFO entry: provider -> key -> value.
type Info map[string]map[string]string

// DeviceEdits is what one device adds to a container.
type DeviceEdits struct {
	// ID is the classic device ID: PCI address, or an SF's auxiliary name.
	ID    string
	Nodes []Node
	Info  Info
}

// ForDevice computes a device's edits. A node the device needs but the host
// lacks is an error naming the device and the node; nothing is ever added
// that does not exist on the host.
func ForDevice(d *discovery.Device, o Options, dev DevNodes) (DeviceEdits, error) {
	e := DeviceEdits{ID: d.ID(), Info: Info{"generic": {"deviceID": d.ID()}}}
	need := func(rel, containerPath string) error {
		if !dev.DevExists(rel) {
			return fmt.Errorf("device %s: %s does not exist on the host", d.Name, dev.DevPath(rel))
		}
		e.Nodes = append(e.Nodes, Node{HostPath: dev.DevPath(rel), Path: containerPath})
		return nil
	}
	switch {
	case d.Driver == "vfio-pci":
		if d.IOMMUGroup < 0 {
			return e, fmt.Errorf("device %s: bound to vfio-pci but has no IOMMU group", d.Name)
		}
		group := strconv.Itoa(d.IOMMUGroup)
		hostNode := "vfio/" + group
		if d.IOMMUNoIOMMU {
			hostNode = "vfio/noiommu-" + group
		}
		if err := need("vfio/vfio", "/dev/vfio/vfio"); err != nil {
			return e, err
		}
		if err := need(hostNode, "/dev/vfio/"+group); err != nil {
			return e, err
		}
		e.Info["vfio"] = map[string]string{"dev-mount": "/dev/vfio/" + group, "mount": "/dev/vfio/vfio"}
	case d.UIODevice != "":
		if err := need(d.UIODevice, "/dev/"+d.UIODevice); err != nil {
			return e, err
		}
		e.Info["uio"] = map[string]string{"mount": "/dev/" + d.UIODevice}
	}
	if d.VDPAType == "vhost" && d.VDPADevice != "" {
		if err := need(d.VDPADevice, "/dev/"+d.VDPADevice); err != nil {
			return e, err
		}
		e.Info["vdpa"] = map[string]string{"mount": "/dev/" + d.VDPADevice}
	}
	if o.RDMA && d.RDMA {
		rdma := map[string]string{}
		if len(d.RDMADevices) > 0 {
			rdma["rdma_dev"] = d.RDMADevices[0]
		}
		own := 0
		for _, rel := range append(append([]string(nil), d.RDMACharDevices...), "infiniband/rdma_cm") {
			if !dev.DevExists(rel) {
				continue // the host has no such node; never invent one
			}
			if rel != "infiniband/rdma_cm" {
				own++
			}
			e.Nodes = append(e.Nodes, Node{HostPath: dev.DevPath(rel), Path: "/dev/" + rel})
			rdma[rdmaKey(path.Base(rel))] = "/dev/" + rel
		}
		if own == 0 {
			return e, fmt.Errorf("device %s: RDMA requested but none of its RDMA char devices exist under %s", d.Name, dev.DevPath("infiniband"))
		}
		e.Info["rdma"] = rdma
	}
	if o.NeedVhostNet {
		if err := need("vhost-net", "/dev/vhost-net"); err != nil {
			return e, err
		}
		if err := need("net/tun", "/dev/net/tun"); err != nil {
			return e, err
		}
		e.Info["vhost"] = map[string]string{"net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun"}
	}
	if len(o.AdditionalInfo) > 0 {
		e.Info["extra"] = maps.Clone(o.AdditionalInfo)
	}
	return e, nil
}

// rdmaKey names a char device in the rdma provider: uverbs0 -> uverbs.
func rdmaKey(node string) string {
	for _, k := range []string{"uverbs", "umad", "issm", "rdma_cm"} {
		if len(node) >= len(k) && node[:len(k)] == k {
			return k
		}
	}
	return node
}
