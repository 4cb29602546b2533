// Command sriov-dra is the SR-IOV DRA driver's single binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

// DefaultDriverName is the DRA driver name published in ResourceSlices.
const DefaultDriverName = "sriov.dra.dev"

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"convert":         {"turn a classic config into DeviceClasses and ResourceClaimTemplates, one per pool", runConvert},
		"discover":        {"list the devices this host offers", runDiscover},
		"simulate":        {"write a simulated host (sysfs, /dev, /proc) into a directory", runSimulate},
		"pools":           {"show which devices each classic config pool selects", runPools},
		"probe":           {"ask a running daemon whether it is alive (healthz) or ready (readyz)", runProbe},
		"run":             {"run the node daemon: DRA kubelet plugin publishing this node's devices", runDaemon},
		"validate-config": {"check a classic sriov-network-device-plugin config file", runValidateConfig},
		"version":         {"print the version", runVersion},
	}
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		return 2
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sriov-dra: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	logger := klog.NewKlogr()
	ctx = klog.NewContext(ctx, logger)
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		var ee exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, "sriov-dra "+args[0]+": "+ee.msg)
			return ee.code
		}
		fmt.Fprintf(stderr, "sriov-dra %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// exitError ends a command with a specific exit code and message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage: sriov-dra COMMAND [flags]\n\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set through SRIOV_DRA_<FLAG> (e.g. SRIOV_DRA_SYSFS_ROOT).")
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "sriov-dra %s\n", version)
	return err
}

// newFlagSet returns a flag set that also carries klog's flags.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sriov-dra "+name, flag.ContinueOnError)
	klog.InitFlags(fs)
	return fs
}

// parseFlags applies SRIOV_DRA_* environment fallbacks, then the arguments,
// which win over the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", env, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

func envName(flagName string) string {
	return "SRIOV_DRA_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}
