// Command e2e-cluster keeps a harness cluster running for manual work
// (make cluster-up / cluster-down) and cleans up after killed test runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e-cluster up|down|clean [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "/tmp/sriov-dra-cluster", "cluster state directory")
	binDir := fs.String("bin-dir", "_output/bin", "pinned binaries")
	_ = fs.Parse(os.Args[2:])
	logf := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	var err error
	switch os.Args[1] {
	case "up":
		err = up(*dir, *binDir, logf)
	case "down":
		err = down(*dir)
	case "clean":
		err = clean(*dir, logf)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e-cluster:", err)
		os.Exit(1)
	}
}

// up starts the cluster and stays in the foreground until SIGTERM/SIGINT.
func up(dir, binDir string, logf func(string, ...any)) error {
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists: run `make cluster-down` first", dir)
	}
	pidFile := dir + ".pid"
	c, err := framework.Start(ctx, framework.Options{Dir: dir, BinDir: abs, Node: true, Logf: logf})
	if err != nil {
		return err
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		c.Stop()
		return err
	}
	logf("cluster ready: export KUBECONFIG=%s", c.Kubeconfig)
	<-ctx.Done()
	c.Stop()
	_ = os.Remove(pidFile)
	return nil
}

func down(dir string) error {
	b, err := os.ReadFile(dir + ".pid")
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no cluster running")
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		_ = os.Remove(dir + ".pid")
		return fmt.Errorf("signal harness %d: %w", pid, err)
	}
	for i := 0; i < 600; i++ {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("cluster stopped")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("harness %d did not stop within 60s", pid)
}

// clean removes leftovers of dir and of any e2e test run's temp dirs, then
// checks that nothing is left.
func clean(dir string, logf func(string, ...any)) error {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sriov-dra-e2e-*"))
	if dir != "" {
		dirs = append(dirs, dir)
	}
	var left []string
	for _, d := range dirs {
		framework.CleanupDir(d, logf)
		left = append(left, framework.Leftovers(d)...)
	}
	// Simulated hosts of e2e tests killed before their cleanup ran.
	hosts, _ := filepath.Glob("/dev/shm/sriov-dra-host-*")
	more, _ := filepath.Glob(filepath.Join(os.TempDir(), "sriov-dra-host-*"))
	for _, h := range append(hosts, more...) {
		if err := os.RemoveAll(h); err != nil {
			left = append(left, "simulated host "+h+": "+err.Error())
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("still left after cleanup:\n  %s", strings.Join(left, "\n  "))
	}
	fmt.Println("cleanup check: no e2e processes, mounts, pod cgroups, network devices or state left")
	return nil
}
