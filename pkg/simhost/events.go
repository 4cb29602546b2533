package simhost

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// PollInterval is how often a simulated host's PF links are read: a tree of
// files sends no kernel events.
const PollInterval = time.Second

// WatchEvents polls the operstate and carrier of the PFs' netdevs once a
// second and reports each change; a simulated host has no kernel to send
// events. The set of PF netdevs is read again every ten polls.
func (h *Host) WatchEvents(ctx context.Context, notify func(reason string)) error {
	tick := time.NewTicker(h.poll())
	defer tick.Stop()
	var netdevs []string
	last := map[string]string{}
	for n := 0; ; n++ {
		if n%10 == 0 {
			netdevs = h.pfNetdevs()
		}
		h.pollLinks(netdevs, last, notify)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pollLinks reads each netdev's link and reports those that changed since
// last (which it updates).
func (h *Host) pollLinks(netdevs []string, last map[string]string, notify func(string)) {
	h.links.Lock()
	defer h.links.Unlock()
	for _, dir := range netdevs {
		state := h.linkState(dir)
		if prev, seen := last[dir]; seen && prev != state {
			notify(fmt.Sprintf("link %s %s", path.Base(dir), state))
		}
		last[dir] = state
	}
}

func (h *Host) poll() time.Duration {
	if h.pollInterval > 0 {
		return h.pollInterval
	}
	return PollInterval
}

// linkState is a netdev's operstate and carrier as one string.
func (h *Host) linkState(dir string) string {
	op, _ := h.ReadSysString(path.Join(dir, "operstate"))
	carrier, err := h.ReadSysString(path.Join(dir, "carrier"))
	if err != nil {
		carrier = "unreadable"
	}
	return op + "/" + carrier
}

// pfNetdevs lists the sysfs directories of the netdevs of PCI functions
// that are not VFs.
func (h *Host) pfNetdevs() []string {
	names, _ := h.ListSys("class/net")
	var out []string
	for _, n := range names {
		dir, err := h.ResolveSysLink(path.Join("class/net", n))
		if err != nil || strings.HasPrefix(dir, "devices/virtual/") {
			continue
		}
		fn := path.Dir(path.Dir(dir)) // devices/.../<function>/net/<if>
		if h.SysExists(path.Join(fn, "physfn")) || h.SysExists(path.Join(fn, "sfnum")) {
			continue
		}
		out = append(out, dir)
	}
	return out
}

// SetLink sets an interface's link up or down as the kernel shows it: a
// down link has operstate "down" and a carrier that cannot be read.
func (h *Host) SetLink(ifName string, up bool) error {
	rel, err := h.ResolveSysLink(path.Join("class/net", ifName))
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifName, err)
	}
	dir := h.SysPath(rel)
	h.links.Lock()
	defer h.links.Unlock()
	state, carrier := "down", ""
	if up {
		state, carrier = "up", "1"
	}
	if err := os.RemoveAll(filepath.Join(dir, "carrier")); err != nil {
		return err
	}
	if up {
		err = os.WriteFile(filepath.Join(dir, "carrier"), []byte(carrier+"\n"), 0o644)
	} else {
		err = os.Mkdir(filepath.Join(dir, "carrier"), 0o755) // reading it fails, like EINVAL
	}
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "operstate"), []byte(state+"\n"), 0o644)
}
