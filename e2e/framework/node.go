package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// nodeIP sits on a veth pair the cluster creates and removes; it is in
	// TEST-NET-1 (RFC 5737), so nothing outside this machine answers to it.
	nodeIP   = "192.0.2.10"
	vethName = "sdrae2e0"
	// NetdevPrefix starts the names of netdevs tests make on the host;
	// CleanupDir removes those a killed test left.
	NetdevPrefix = "sdte"
	vethPeer     = "sdrae2e1"
	cniBridge    = "sdrae2ebr0"
	cniNetwork   = "sriov-dra-e2e"
	podSubnet    = "10.213.0.0/24"
	criSockName  = "containerd.sock"
)

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %w: %s", args, err, out)
	}
	return nil
}

// makeNodeNetwork gives the kubelet a non-loopback node IP on a veth pair.
func makeNodeNetwork() error {
	_ = ipCmd("link", "del", vethName) // leftover from a killed run
	if err := ipCmd("link", "add", vethName, "type", "veth", "peer", "name", vethPeer); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"addr", "add", nodeIP + "/32", "dev", vethName},
		{"link", "set", vethName, "up"},
		{"link", "set", vethPeer, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startNode(ctx context.Context) error {
	if err := makeNodeNetwork(); err != nil {
		return fmt.Errorf("node network: %w", err)
	}
	c.NodeIP = nodeIP
	if err := c.startContainerd(ctx); err != nil {
		return err
	}
	if err := c.importImages(ctx); err != nil {
		return err
	}
	return c.startKubelet(ctx)
}

func (c *Cluster) containerdDir() string { return filepath.Join(c.Dir, "containerd") }

// NRISocket is containerd's NRI socket (NRI is on; no plugin runs unless a
// test starts one).
func (c *Cluster) NRISocket() string { return filepath.Join(c.containerdDir(), "nri.sock") }

// NetNSDir is where containerd mounts the pods' network namespaces (under
// its CRI plugin's state dir: netns_mounts_under_state_dir).
func (c *Cluster) NetNSDir() string {
	return filepath.Join(c.containerdDir(), "state", "io.containerd.grpc.v1.cri", "netns")
}

// sharedMountPoint makes dir a mount point of its own with shared
// propagation, as `ip netns` does for /run/netns and as everything is on a
// systemd host: a DaemonSet pod that mounts the pods' network namespaces
// with HostToContainer propagation then sees those made after it started
// (the runtime refuses the mount on a private one, as this machine's root
// is).
func sharedMountPoint(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if mps := mountsUnder(dir); len(mps) > 0 && mps[len(mps)-1] == dir {
		return nil // a restart: done already
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// RestartContainerd stops containerd and starts it again, as an upgrade
// does; the pods' shims and containers keep running meanwhile.
func (c *Cluster) RestartContainerd(ctx context.Context) error {
	c.stopProcess("containerd")
	return c.startContainerd(ctx)
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	dir := c.containerdDir()
	if err := sharedMountPoint(c.NetNSDir()); err != nil {
		return err
	}
	c.criSocket = filepath.Join(dir, criSockName)
	cniConf := filepath.Join(c.Dir, "cni", "net.d")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]]}},
    {"type": "loopback"}
  ]
}
`, cniNetwork, cniBridge, filepath.Join(c.Dir, "cni", "ipam"), podSubnet)
	if err := os.WriteFile(filepath.Join(cniConf, "10-e2e.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 3
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = [%q]
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'

[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = %q
  plugin_path = %q
  plugin_config_path = %q

[plugins.'io.containerd.internal.v1.opt']
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.criSocket, c.criSocket+".ttrpc",
		PauseImage, c.CDIDir, runc, cniConf, c.NRISocket(), filepath.Join(dir, "nri", "plugins"), filepath.Join(dir, "nri", "conf.d"),
		filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	p, err := c.start("containerd", c.bin("containerd"), "--config", cfgPath, "--log-level", "info")
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 30*time.Second, "containerd", func(ctx context.Context) error {
		if err := fileExists(c.criSocket); err != nil {
			return err
		}
		return exec.CommandContext(ctx, c.bin("ctr"), "--address", c.criSocket, "version").Run()
	})
}

// importImages builds the pause and busybox images locally (no registry is
// reachable) and imports them into containerd's k8s.io namespace.
func (c *Cluster) importImages(ctx context.Context) error {
	imgDir := filepath.Join(c.Dir, "images")
	pauseBin := filepath.Join(c.BinDir, "pause")
	if _, err := os.Stat(pauseBin); err != nil {
		return fmt.Errorf("pause binary missing (make tools builds it): %w", err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	archives, err := buildImages(imgDir, pauseBin, busybox)
	if err != nil {
		return err
	}
	for _, a := range archives {
		if err := c.ImportImage(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// TagImage gives an imported image a second name, as pushing the same
// build under a new tag does.
func (c *Cluster) TagImage(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, c.bin("ctr"), "--address", c.criSocket, "-n", "k8s.io",
		"images", "tag", "--force", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tag %s as %s: %w: %s", src, dst, err, out)
	}
	return nil
}

// ImportImage imports an OCI archive (`make image`) into containerd's k8s.io
// namespace, unpacked for this machine's platform, as a pull would.
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	out, err := exec.CommandContext(ctx, c.bin("ctr"), "--address", c.criSocket, "-n", "k8s.io",
		"images", "import", "--local", "--no-unpack=false", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s: %w: %s", archive, err, out)
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context) error {
	root := c.KubeletRootDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
podLogsDir: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
failSwapOn: false
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%%", "imagefs.available": "1%%", "nodefs.inodesFree": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 5s
enforceNodeAllocatable: ["pods"]
maxPods: 256
`, c.criSocket, c.ports["kubelet"], c.ports["kubelet-healthz"], c.PodLogsDir())
	cfgPath := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	p, err := c.start("kubelet", c.bin("kubelet"),
		"--config", cfgPath, "--kubeconfig", c.Kubeconfig,
		"--root-dir", root, "--cert-dir", filepath.Join(root, "pki"),
		"--hostname-override", c.NodeName, "--node-ip", nodeIP, "--v", "2")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, p, 60*time.Second, "kubelet healthz", httpOK("http://127.0.0.1:"+strconv.Itoa(c.ports["kubelet-healthz"])+"/healthz", "")); err != nil {
		return err
	}
	if err := waitFor(ctx, p, 90*time.Second, "node Ready", c.nodeReady); err != nil {
		return err
	}
	return waitFor(ctx, p, 60*time.Second, "default service account", func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// RestartKubelet stops the kubelet and starts it again, as an upgrade or a
// crash does; pods keep running in containerd meanwhile. It returns once the
// node is Ready again.
func (c *Cluster) RestartKubelet(ctx context.Context) error {
	c.stopProcess("kubelet")
	return c.startKubelet(ctx)
}

// stopProcess stops the named component and forgets it.
func (c *Cluster) stopProcess(name string) {
	for i, p := range c.procs {
		if p.name == name {
			p.stop(30 * time.Second)
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			return
		}
	}
}

func (c *Cluster) nodeReady(ctx context.Context) error {
	node, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s: %s: %s", c.NodeName, cond.Reason, cond.Message)
		}
	}
	return errNotReady
}
