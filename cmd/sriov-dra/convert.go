package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/convert"
)

func runConvert(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("convert")
	configPath := fs.String("config", "", "classic sriov-network-device-plugin config file (config.json)")
	prefix := fs.String("resource-prefix", classic.DefaultResourcePrefix, "resource prefix for pools that set none")
	driverName := fs.String("driver-name", DefaultDriverName, "DRA driver name the nodes run")
	mode := fs.String("mode", string(convert.ModeAttributes), "attributes: match the pool name nodes publish (they run with the same --config); selectors: the pool's selectors in CEL (nodes run without it)")
	output := fs.String("o", "yaml", "output format: yaml or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("--config is required")
	}
	if *output != "yaml" && *output != "json" {
		return fmt.Errorf("-o %q: want yaml or json", *output)
	}
	cfg, err := loadConfig(*configPath, *prefix, stderr)
	if err != nil {
		return err
	}
	pools, err := convert.Convert(cfg, convert.Options{DriverName: *driverName, Mode: convert.Mode(*mode)})
	if err != nil {
		return err
	}
	var items []any
	for _, p := range pools {
		items = append(items, clean(p.Class), clean(p.Template))
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for i, item := range items {
		b, err := yaml.Marshal(item)
		if err != nil {
			return err
		}
		if i%2 == 0 {
			fmt.Fprintf(stdout, "# %s\n", pools[i/2].ResourceName)
		}
		if _, err := fmt.Fprintf(stdout, "%s---\n", b); err != nil {
			return err
		}
	}
	return nil
}

// clean is an object as plain JSON values, without the empty creation
// timestamp every typed object's metadata carries (a claim template has a
// second one, in spec.metadata, which is then empty).
func clean(obj any) map[string]any {
	b, _ := json.Marshal(obj)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for parent, container := range map[string]map[string]any{"": m, "spec": asMap(m["spec"])} {
		meta := asMap(container["metadata"])
		if meta == nil {
			continue
		}
		delete(meta, "creationTimestamp")
		if parent != "" && len(meta) == 0 {
			delete(container, "metadata")
		}
	}
	return m
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
