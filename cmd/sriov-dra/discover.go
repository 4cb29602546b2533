package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/driver"
	"github.com/sriov-dra/sriov-dra/pkg/health"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/resourceslices"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// hostFlags are the roots every command that reads the host takes.
type hostFlags struct {
	opts      host.Options
	simulated bool
}

func (h *hostFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.opts.SysfsRoot, "sysfs-root", host.DefaultSysfsRoot, "directory that stands for /sys")
	fs.StringVar(&h.opts.DevRoot, "dev-root", "", "directory that stands for /dev (default /dev, or dev/ beside a --sysfs-root that has one)")
	fs.StringVar(&h.opts.ProcRoot, "proc-root", "", "directory that stands for /proc (default /proc, or proc/ beside a --sysfs-root that has one)")
	fs.BoolVar(&h.simulated, "simulated", false, "--sysfs-root is a host written by `sriov-dra simulate`: answer devlink from its files and emulate driver binds in the tree")
}

func (h *hostFlags) host() (driver.Host, error) {
	o := h.opts.WithSiblingRoots()
	if !h.simulated {
		return host.New(o), nil
	}
	if filepath.Clean(o.SysfsRoot) == host.DefaultSysfsRoot {
		return nil, errors.New("--simulated needs --sysfs-root pointing at a simulated host's sys/")
	}
	return simhost.OpenWith(filepath.Dir(filepath.Clean(o.SysfsRoot)), o)
}

func runDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("discover")
	var hf hostFlags
	hf.register(fs)
	output := fs.String("o", "table", "output format: table, json, or yaml (the ResourceSlices `run` would publish)")
	nodeName := fs.String("node-name", "", "node name for -o yaml")
	driverName := fs.String("driver-name", DefaultDriverName, "DRA driver name for -o yaml")
	configPath := fs.String("config", "", "classic config.json for -o yaml (adds k8s.cni.cncf.io/resourceName)")
	prefix := fs.String("resource-prefix", classic.DefaultResourcePrefix, "resource prefix for pools that set none")
	all := fs.Bool("all", false, "also list the network and accelerator functions that are not offered, and why (uplinks, PFs with VFs)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *output {
	case "table", "json":
	case "yaml":
		if *nodeName == "" {
			return errors.New("-o yaml needs --node-name")
		}
	default:
		return fmt.Errorf("-o %q: want table, json or yaml", *output)
	}
	var cfg *classic.Config
	if *configPath != "" {
		var err error
		if cfg, err = loadConfig(*configPath, *prefix, stderr); err != nil {
			return err
		}
	}
	h, err := hf.host()
	if err != nil {
		return err
	}
	inv, err := discovery.Discover(ctx, h)
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	for _, pr := range inv.Problems() {
		logger.Info("Device problem", "problem", pr.String())
	}
	switch *output {
	case "json":
		return writeDevicesJSON(stdout, inv, *all)
	case "yaml":
		pool, _, _, err := resourceslices.DesiredPool(inv, cfg, resourceslices.PoolOptions{
			LinkDown: &resourceapi.DeviceTaint{Key: resourceslices.LinkDownTaintKey(*driverName), Effect: resourceapi.DeviceTaintEffectNoSchedule}})
		if err != nil {
			return err
		}
		for _, s := range resourceslices.ResourceSlices(pool, *driverName, *nodeName) {
			b, err := yaml.Marshal(s)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(stdout, "---\n%s", b); err != nil {
				return err
			}
		}
		return nil
	}
	return writeDevicesTable(stdout, inv, *all)
}

type jsonDevice struct {
	Name string `json:"name"`
	// Health is Healthy or Unhealthy; HealthReason says why.
	Health       string         `json:"health"`
	HealthReason string         `json:"healthReason,omitempty"`
	Attributes   map[string]any `json:"attributes"`
}

type jsonExcluded struct {
	PCIAddress string `json:"pciAddress"`
	IfName     string `json:"ifName,omitempty"`
	Reason     string `json:"reason"`
}

func writeDevicesJSON(w io.Writer, inv *discovery.Inventory, all bool) error {
	out := struct {
		Devices  []jsonDevice   `json:"devices"`
		Excluded []jsonExcluded `json:"excluded,omitempty"`
	}{Devices: []jsonDevice{}}
	for d := range inv.All() {
		v := health.Of(d)
		out.Devices = append(out.Devices, jsonDevice{Name: d.Name, Health: healthWord(v), HealthReason: v.Reason, Attributes: d.PlainAttributes()})
	}
	if all {
		out.Excluded = []jsonExcluded{}
		for _, e := range inv.Excluded() {
			out.Excluded = append(out.Excluded, jsonExcluded(e))
		}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

func writeDevicesTable(w io.Writer, inv *discovery.Inventory, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPCI ADDRESS\tVENDOR:DEVICE\tDRIVER\tPF\tINDEX\tLINK\tNUMA\tRDMA\tHEALTH")
	for d := range inv.All() {
		index := "-"
		switch {
		case d.VFIndex >= 0:
			index = strconv.Itoa(d.VFIndex)
		case d.SFNum >= 0:
			index = strconv.Itoa(d.SFNum)
		}
		numa := "-"
		if d.NUMANode >= 0 {
			numa = strconv.Itoa(d.NUMANode)
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", d.Name, d.FunctionType, d.DeviceType,
			d.PCIAddress, d.Vendor, d.DeviceID, dash(d.Driver), dash(d.PFName), index, dash(d.LinkType), numa, d.RDMA, healthWord(health.Of(d)))
	}
	if err := tw.Flush(); err != nil || !all {
		return err
	}
	fmt.Fprintln(w, "\nNOT OFFERED")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PCI ADDRESS\tINTERFACE\tREASON")
	for _, e := range inv.Excluded() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.PCIAddress, dash(e.IfName), e.Reason)
	}
	return tw.Flush()
}

func healthWord(v health.Verdict) string {
	if v.Healthy {
		return "Healthy"
	}
	return "Unhealthy"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
