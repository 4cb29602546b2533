//go:build e2e

// Package e2e runs sriov-dra against real Kubernetes components: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd with
// runc, and the kubelet, built from pinned modules by `make tools`.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sriov-dra/sriov-dra/e2e/framework"
)

var (
	binDir = flag.String("bin-dir", "../_output/bin", "directory with the pinned Kubernetes binaries and sriov-dra")
	// Not -artifacts: go test (1.26) takes that as its own boolean flag,
	// and every flag after it would silently miss the test binary.
	artifactsDir = flag.String("logs-dir", "../_output/e2e-artifacts", "where component logs go when a test fails")
	imageArchive = flag.String("image-archive", "../_output/sriov-dra-image.tar", "the node image archive (make image) that the DaemonSet tests install")
	keepCluster  = flag.Bool("keep-cluster", false, "leave the cluster running after the tests (debugging)")
	// The upgrade test starts from this release, as `make previous-release`
	// writes it: its node image (image.tar) and manifests (manifests.yaml).
	previousDir = flag.String("previous-dir", "", "the previous release's image.tar and manifests.yaml (make previous-release), for the upgrade test; empty skips it")
)

// cluster is shared by every test in the package: starting one takes seconds.
var cluster *framework.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	abs, err := filepath.Abs(*binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sriov-dra-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cluster, err = framework.Start(ctx, framework.Options{
		Dir: dir, BinDir: abs, Node: true,
		AuditPolicy: auditPolicy,
		Logf:        func(f string, a ...any) { fmt.Printf("e2e: "+f+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start cluster: %v\n", err)
		saveLogs(dir)
		return 1
	}
	fmt.Printf("e2e: cluster up in %s (logs: %s)\n", time.Since(start).Round(time.Millisecond), cluster.LogDir)
	code := m.Run()
	if code != 0 {
		if err := cluster.CollectLogs(*artifactsDir); err == nil {
			fmt.Printf("e2e: component logs saved to %s\n", *artifactsDir)
		}
	}
	if *keepCluster {
		fmt.Printf("e2e: cluster kept running: KUBECONFIG=%s\n", cluster.Kubeconfig)
		return code
	}
	cluster.Stop()
	if left := framework.Leftovers(dir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the cluster left things behind:\n")
		for _, l := range left {
			fmt.Fprintf(os.Stderr, "  %s\n", l)
		}
		return 1
	}
	fmt.Println("e2e: cleanup check: no processes, mounts, pod cgroups, network devices or state left")
	return code
}

func saveLogs(dir string) {
	c := &framework.Cluster{LogDir: filepath.Join(dir, "logs")}
	if err := c.CollectLogs(*artifactsDir); err == nil {
		fmt.Printf("e2e: component logs saved to %s\n", *artifactsDir)
	}
}

// auditPolicy records writes to ResourceSlices, so tests can count them.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
  resources:
  - group: resource.k8s.io
    resources: ["resourceslices"]
- level: None
`
