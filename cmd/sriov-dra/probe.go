package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// runProbe asks a running daemon's health socket for /healthz or /readyz: the
// DaemonSet's exec probes. A Unix socket per pod, not the metrics port,
// because during a rolling update two pods share the host network and the
// port, and a probe must reach its own pod.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe")
	sock := fs.String("health-socket", "/run/sriov-dra/health.sock", "the daemon's --health-socket")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	check := "readyz"
	switch fs.NArg() {
	case 0:
	case 1:
		check = strings.TrimPrefix(fs.Arg(0), "/")
	default:
		return exitError{code: 2, msg: "takes one argument: healthz or readyz"}
	}
	if check != "healthz" && check != "readyz" {
		return exitError{code: 2, msg: fmt.Sprintf("unknown check %q: healthz or readyz", check)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daemon/"+check, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("%s: %v", check, err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return exitError{code: 1, msg: fmt.Sprintf("%s: %s (HTTP %d)", check, msg, resp.StatusCode)}
	}
	_, err = fmt.Fprintf(stdout, "%s: %s\n", check, msg)
	return err
}
