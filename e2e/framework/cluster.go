// Package framework runs a real single-node Kubernetes on this machine for
// sriov-dra's integration and e2e tests: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, containerd (with runc) and the
// kubelet, all on loopback, all state under one directory, and a cleanup that
// leaves nothing behind whether the test passed or not.
package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options chooses what to start.
type Options struct {
	// Dir holds all cluster state; it is removed by Stop. Required.
	Dir string
	// BinDir holds the pinned binaries (make tools): _output/bin.
	BinDir string
	// Node starts containerd and the kubelet; without it only the control
	// plane runs (enough for API and scheduler tests).
	Node bool
	// NodeName is the kubelet's node name (default "e2e-node").
	NodeName string
	// CDIDir is where containerd looks for CDI specs (default Dir/cdi).
	CDIDir string
	// AuditPolicy, when set, enables the apiserver audit log at AuditLog().
	AuditPolicy string
	// Logf reports progress (t.Logf); may be nil.
	Logf func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	Options
	LogDir     string
	Kubeconfig string
	Client     kubernetes.Interface
	RestConfig *rest.Config
	// NodeIP is the kubelet's address, on a veth pair the cluster made.
	NodeIP string

	procs     []*process
	pki       *pki
	token     string
	ports     map[string]int
	criSocket string
}

const adminToken = "sriov-dra-e2e-admin-token" //nolint:gosec // G101: the throwaway test cluster's token, on loopback only

// Start brings up the cluster and waits until it is usable. On error the
// partly started cluster is stopped and cleaned up.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Dir == "" || o.BinDir == "" {
		return nil, errors.New("framework: Dir and BinDir are required")
	}
	if o.NodeName == "" {
		o.NodeName = "e2e-node"
	}
	if o.CDIDir == "" {
		o.CDIDir = filepath.Join(o.Dir, "cdi")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	c = &Cluster{Options: o, LogDir: filepath.Join(o.Dir, "logs"), token: adminToken}
	for _, d := range []string{c.LogDir, c.CDIDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.checkBinaries(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	c.ports = map[string]int{"etcd": ports[0], "etcd-peer": ports[1], "apiserver": ports[2], "kcm": ports[3],
		"scheduler": ports[4], "kubelet": ports[5], "kubelet-healthz": ports[6]}
	if c.pki, err = makePKI(o.Dir); err != nil {
		return nil, fmt.Errorf("make certificates: %w", err)
	}
	start := time.Now()
	if err := c.startControlPlane(ctx); err != nil {
		return nil, err
	}
	o.Logf("control plane ready in %s", time.Since(start).Round(time.Millisecond))
	if o.Node {
		nodeStart := time.Now()
		if err := c.startNode(ctx); err != nil {
			return nil, err
		}
		o.Logf("node %s ready in %s", o.NodeName, time.Since(nodeStart).Round(time.Millisecond))
	}
	return c, nil
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c *Cluster) checkBinaries() error {
	need := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	if c.Node {
		need = append(need, "kubelet", "containerd", "containerd-shim-runc-v2", "ctr")
	}
	var missing []string
	for _, b := range need {
		if _, err := os.Stat(c.bin(b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s in %s: run `make tools`", strings.Join(missing, ", "), c.BinDir)
	}
	if c.Node {
		for _, tool := range []string{"runc", "busybox"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%s not found: apt-get install runc busybox-static containernetworking-plugins", tool)
			}
		}
		if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
			return errors.New("CNI plugins not found in /usr/lib/cni: apt-get install containernetworking-plugins")
		}
	}
	return nil
}

// APIServerURL is the apiserver's loopback address.
func (c *Cluster) APIServerURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.ports["apiserver"])
}

// EtcdURL is etcd's client URL (its /metrics is there too).
func (c *Cluster) EtcdURL() string { return "http://127.0.0.1:" + strconv.Itoa(c.ports["etcd"]) }

// AuditLog is the apiserver audit log path (when Options.AuditPolicy is set).
func (c *Cluster) AuditLog() string { return filepath.Join(c.Dir, "audit.log") }

// KubeletRootDir is the kubelet's --root-dir (plugins_registry and plugins live here).
func (c *Cluster) KubeletRootDir() string { return filepath.Join(c.Dir, "kubelet") }

// PodLogsDir is where the kubelet writes container logs.
func (c *Cluster) PodLogsDir() string { return filepath.Join(c.Dir, "pod-logs") }

func (c *Cluster) startControlPlane(ctx context.Context) error {
	etcd, err := c.start("etcd", c.bin("etcd"),
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"]),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"]),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd-peer"]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd-peer"]),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", c.ports["etcd-peer"]),
		"--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, etcd, 30*time.Second, "etcd", httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", c.ports["etcd"]), "")); err != nil {
		return err
	}
	tokens := filepath.Join(c.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	args := []string{
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(c.ports["apiserver"]),
		"--tls-cert-file", c.pki.serverCert, "--tls-private-key-file", c.pki.serverKey,
		"--client-ca-file", c.pki.caCert,
		"--token-auth-file", tokens,
		"--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", c.pki.saPub,
		"--service-account-signing-key-file", c.pki.saKey,
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--runtime-config", "resource.k8s.io/v1=true",
		"--allow-privileged=true",
		"--endpoint-reconciler-type", "none",
	}
	if c.AuditPolicy != "" {
		policy := filepath.Join(c.Dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(c.AuditPolicy), 0o644); err != nil {
			return err
		}
		args = append(args, "--audit-policy-file", policy, "--audit-log-path", c.AuditLog(), "--audit-log-format", "json")
	}
	apiserver, err := c.start("kube-apiserver", c.bin("kube-apiserver"), args...)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, apiserver, 90*time.Second, "kube-apiserver", httpOK(c.APIServerURL()+"/readyz", c.token)); err != nil {
		return err
	}
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	if _, err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports["kcm"]),
		"--service-account-private-key-file", c.pki.saKey, "--root-ca-file", c.pki.caCert,
		"--use-service-account-credentials=false", "--leader-elect=false",
		"--controllers", "*,-csrsigning,-nodeipam"); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(c.ports["scheduler"]), "--leader-elect=false"); err != nil {
		return err
	}
	for _, p := range c.procs[2:] {
		port := c.ports["kcm"]
		if p.name == "kube-scheduler" {
			port = c.ports["scheduler"]
		}
		if err := waitFor(ctx, p, 60*time.Second, p.name, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), "")); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) writeKubeconfig() error {
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, c.APIServerURL(), c.pki.caCert, c.token)
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.RestConfig = cfg
	c.Client, err = kubernetes.NewForConfig(cfg)
	return err
}

// Stop stops every component and removes everything the cluster made: pod
// processes, mounts, cgroups, network devices and the state directory. It
// is safe to call more than once and after a failed Start.
func (c *Cluster) Stop() {
	c.Logf("stopping cluster")
	var kubelet, containerd *process
	for _, p := range c.procs {
		switch p.name {
		case "kubelet":
			kubelet = p
		case "containerd":
			containerd = p
		}
	}
	if kubelet != nil {
		kubelet.stop(10 * time.Second)
	}
	if c.Node {
		killPodProcesses(c.Logf)
	}
	if containerd != nil {
		containerd.stop(10 * time.Second)
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	if !c.Node {
		// A control plane alone made no pods, cgroups or network devices;
		// the machine-wide cleanup would reach another cluster's node.
		unmountUnder(c.Dir, c.Logf)
		if err := os.RemoveAll(c.Dir); err != nil {
			c.Logf("remove %s: %v", c.Dir, err)
		}
		return
	}
	CleanupDir(c.Dir, c.Logf)
}

// CollectLogs copies every component log into dst (the test's artifacts).
func (c *Cluster) CollectLogs(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	return filepath.Walk(c.LogDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, filepath.Base(path)), b, 0o644)
	})
}
