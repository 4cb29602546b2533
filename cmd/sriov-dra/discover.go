package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// hostFlags are the roots every command that reads the host takes.
type hostFlags struct{ opts host.Options }

func (h *hostFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.opts.SysfsRoot, "sysfs-root", host.DefaultSysfsRoot, "directory that stands for /sys")
	fs.StringVar(&h.opts.DevRoot, "dev-root", "", "directory that stands for /dev (default /dev, or dev/ beside a simulated --sysfs-root)")
	fs.StringVar(&h.opts.ProcRoot, "proc-root", "", "directory that stands for /proc (default /proc, or proc/ beside a simulated --sysfs-root)")
}

func (h *hostFlags) host() *host.Host { return host.New(h.opts.WithSiblingRoots()) }

func runDiscover(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("discover")
	var hf hostFlags
	hf.register(fs)
	output := fs.String("o", "table", "output format: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: want table or json", *output)
	}
	inv, err := discovery.Discover(ctx, hf.host())
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeDevicesJSON(stdout, inv)
	}
	return writeDevicesTable(stdout, inv)
}

type jsonDevice struct {
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes"`
}

func writeDevicesJSON(w io.Writer, inv *discovery.Inventory) error {
	out := struct {
		Devices []jsonDevice `json:"devices"`
	}{Devices: []jsonDevice{}}
	for d := range inv.All() {
		out.Devices = append(out.Devices, jsonDevice{Name: d.Name, Attributes: d.PlainAttributes()})
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

func writeDevicesTable(w io.Writer, inv *discovery.Inventory) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPCI ADDRESS\tVENDOR:DEVICE\tDRIVER\tPF\tINDEX\tLINK\tNUMA\tRDMA")
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
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\t%t\n", d.Name, d.FunctionType, d.DeviceType,
			d.PCIAddress, d.Vendor, d.DeviceID, dash(d.Driver), dash(d.PFName), index, dash(d.LinkType), numa, d.RDMA)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
