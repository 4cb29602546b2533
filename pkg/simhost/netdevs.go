package simhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

var linkTypeNumbers = map[string]string{"ether": "1", "infiniband": "32"}

// netdev writes net/<ifName> the way the kernel shows it. A PF whose link
// is down has a carrier attribute that cannot be read (EINVAL on a real
// kernel; here a directory, which fails to read as well).
func (w *writer) netdev(devDir, ifName, linkType string, up, isPF, switchdev bool) error {
	dir := filepath.Join(devDir, "net", ifName)
	w.ifIndex++
	state, carrier := "up", "1"
	if !up {
		state, carrier = "down", "0"
	}
	typ, ok := linkTypeNumbers[linkType]
	if !ok {
		return fmt.Errorf("unknown link type %q", linkType)
	}
	mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", w.ifIndex>>16&0xff, w.ifIndex>>8&0xff, w.ifIndex&0xff)
	if linkType == "infiniband" {
		mac = "00:00:10:49:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:" + mac[len(mac)-2:]
	}
	if err := w.files(dir, "address", mac, "operstate", state, "type", typ, "mtu", "1500", "speed", "25000",
		"ifindex", strconv.Itoa(w.ifIndex+1), "flags", "0x1003", "tx_queue_len", "1000"); err != nil {
		return err
	}
	switch {
	case isPF && !up:
		if err := os.MkdirAll(filepath.Join(dir, "carrier"), 0o755); err != nil {
			return err
		}
	default:
		if err := w.files(dir, "carrier", carrier); err != nil {
			return err
		}
	}
	if isPF {
		if err := w.files(dir, "phys_port_name", "p0"); err != nil {
			return err
		}
	}
	if switchdev {
		if err := w.files(dir, "phys_switch_id", "aabbccddeeff0011"); err != nil {
			return err
		}
	}
	w.netdevDirs[ifName] = dir
	return w.link(w.sys("class/net/"+ifName), dir)
}

// netdevParent is the device directory a PF's netdev hangs off: the PCI
// function itself, or for a virtio NIC its virtio child device.
func (w *writer) netdevParent(fnDir string, pf PF) (string, error) {
	if pf.Driver != "virtio-pci" {
		return fnDir, nil
	}
	dir := filepath.Join(fnDir, "virtio"+strconv.Itoa(w.virtioDev))
	w.virtioDev++
	// A virtio-net device: virtio vendor 0x1af4, device type 1 (network).
	if err := w.files(dir, "vendor", "0x1af4", "device", "0x0001", "uevent", "DRIVER=virtio_net"); err != nil {
		return "", err
	}
	return dir, nil
}

// upper writes a virtual interface over others, linked both ways as the
// kernel links stacked devices (lower_<if> on the upper, upper_<if> on each
// lower, and master for the members of a bond or bridge).
func (w *writer) upper(u Upper) error {
	switch u.Kind {
	case "bond", "team", "bridge", "vlan":
	default:
		return fmt.Errorf("kind %q is not bond, team, bridge or vlan", u.Kind)
	}
	if _, dup := w.netdevDirs[u.Name]; dup || u.Name == "" {
		return fmt.Errorf("interface name %q is empty or used already", u.Name)
	}
	dir := w.sys(filepath.Join("devices/virtual/net", u.Name))
	w.ifIndex++
	if err := w.files(dir, "address", fmt.Sprintf("02:00:00:ff:00:%02x", w.ifIndex&0xff), "operstate", "up", "carrier", "1",
		"type", "1", "mtu", "1500", "ifindex", strconv.Itoa(w.ifIndex+1), "flags", "0x1003"); err != nil {
		return err
	}
	for _, lower := range u.Lowers {
		lowerDir, ok := w.netdevDirs[lower]
		if !ok {
			return fmt.Errorf("lower interface %q is not in the spec", lower)
		}
		if err := w.link(filepath.Join(dir, "lower_"+lower), lowerDir); err != nil {
			return err
		}
		if err := w.link(filepath.Join(lowerDir, "upper_"+u.Name), dir); err != nil {
			return err
		}
		if u.Kind != "vlan" {
			if err := w.link(filepath.Join(lowerDir, "master"), dir); err != nil {
				return err
			}
		}
	}
	if u.DefaultRoute {
		w.routes = append(w.routes, u.Name)
	}
	w.netdevDirs[u.Name] = dir
	return w.link(w.sys("class/net/"+u.Name), dir)
}
