package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

func runSimulate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate")
	specPath := fs.String("spec", "", "YAML host spec to write")
	profiles := fs.String("profile", "", "built-in profiles, comma-separated: "+strings.Join(simhost.ProfileNames(), ", "))
	out := fs.String("out", "", "directory to write the host into (must be empty or missing)")
	charDevices := fs.Bool("char-devices", false, "make /dev entries real char devices (needs root), so container runtimes can inject them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	if (*specPath == "") == (*profiles == "") {
		return errors.New("give exactly one of --spec or --profile")
	}
	var spec simhost.Spec
	var err error
	if *specPath != "" {
		spec, err = simhost.LoadSpec(*specPath)
	} else {
		spec, err = simhost.Combine(strings.Split(*profiles, ",")...)
	}
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
		return fmt.Errorf("--out %s is not empty", *out)
	}
	if err := simhost.Write(*out, spec, simhost.WriteOptions{CharDevices: *charDevices}); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "simulated host written to %s (use --sysfs-root %s/sys)\n", *out, *out)
	return err
}
