package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

func runPools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pools")
	var hf hostFlags
	hf.register(fs)
	configPath := fs.String("config", "", "classic sriov-network-device-plugin config file (config.json)")
	prefix := fs.String("resource-prefix", classic.DefaultResourcePrefix, "resource prefix for pools that set none")
	output := fs.String("o", "table", "output format: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("--config is required")
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: want table or json", *output)
	}
	cfg, err := loadConfig(*configPath, *prefix, stderr)
	if err != nil {
		return err
	}
	h, err := hf.host()
	if err != nil {
		return err
	}
	inv, err := discovery.Discover(ctx, h)
	if err != nil {
		return err
	}
	res, err := selector.Select(cfg, inv)
	if err != nil {
		return err
	}
	if *output == "json" {
		out := struct {
			Pools map[string][]string `json:"pools"`
		}{Pools: map[string][]string{}}
		for i := range res.Pools {
			out.Pools[res.Pools[i].Name()] = res.Pools[i].IDs()
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tTYPE\tCOUNT\tDEVICES")
	for i := range res.Pools {
		p := &res.Pools[i]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Name(), p.Config.DeviceType, len(p.Devices), dash(strings.Join(p.IDs(), ",")))
	}
	return tw.Flush()
}

func runValidateConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate-config")
	prefix := fs.String("resource-prefix", classic.DefaultResourcePrefix, "resource prefix for pools that set none")
	strict := fs.Bool("strict", true, "unknown fields are errors; false prints them as warnings, as `run` logs them and starts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: sriov-dra validate-config [--strict=false] FILE")
	}
	path := fs.Arg(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg *classic.Config
	if *strict {
		cfg, err = classic.Parse(data, *prefix)
	} else {
		var warnings []error
		cfg, warnings, err = classic.ParseLenient(data, *prefix)
		for _, w := range warnings {
			fmt.Fprintf(stdout, "warning: %v (ignored)\n", w)
		}
	}
	if err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("%s is invalid:\n  %s", path, strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	types := map[string]int{}
	for _, r := range cfg.ResourceList {
		types[r.DeviceType]++
	}
	_, err = fmt.Fprintf(stdout, "%s: valid, %d pools (%d netDevice, %d accelerator, %d auxNetDevice)\n", path,
		len(cfg.ResourceList), types[classic.DeviceTypeNet], types[classic.DeviceTypeAccelerator], types[classic.DeviceTypeAuxNet])
	return err
}
