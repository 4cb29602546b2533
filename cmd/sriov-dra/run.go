package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	"k8s.io/klog/v2"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/deviceplugin"
	"github.com/sriov-dra/sriov-dra/pkg/driver"
)

func runDaemon(ctx context.Context, args []string, _, _ io.Writer) error {
	fs := flag.NewFlagSet("sriov-dra run", flag.ContinueOnError)
	logging := logsapi.NewLoggingConfiguration()
	logsapi.AddGoFlags(logging, fs)
	var hf hostFlags
	hf.register(fs)
	var cfg driver.Config
	fs.StringVar(&cfg.NodeName, "node-name", "", "this node's name (required; in a DaemonSet from the downward API)")
	fs.StringVar(&cfg.DriverName, "driver-name", DefaultDriverName, "DRA driver name")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file; empty means in-cluster")
	fs.StringVar(&cfg.CDIRoot, "cdi-root", "/var/run/cdi", "directory for CDI specs")
	fs.StringVar(&cfg.PluginDir, "plugin-dir", "", "plugin data directory (default /var/lib/kubelet/plugins/<driver-name>)")
	fs.StringVar(&cfg.RegistrarDir, "registrar-dir", "/var/lib/kubelet/plugins_registry", "kubelet plugin registration directory")
	fs.DurationVar(&cfg.RescanInterval, "rescan-interval", 30*time.Second, "how often to rediscover devices")
	fs.StringVar(&cfg.ConfigPath, "config", "", "classic sriov-network-device-plugin config.json; publishes each device's pool as k8s.cni.cncf.io/resourceName")
	fs.StringVar(&cfg.ResourcePrefix, "resource-prefix", classic.DefaultResourcePrefix, "resource prefix for pools that set none")
	fs.StringVar(&cfg.PodUID, "pod-uid", "", "the DaemonSet pod's UID, for rolling updates (downward API)")
	fs.StringVar(&cfg.DevInfoDir, "device-info-dir", driver.DefaultDevInfoDir, "directory for Network Plumbing WG device-info files")
	qps := fs.Float64("kube-api-qps", 50, "queries per second to the API server (claim status writes, slices; a node with hundreds of pods needs tens)")
	burst := fs.Int("kube-api-burst", 100, "burst of queries to the API server above --kube-api-qps")
	fs.BoolVar(&cfg.DRA, "dra", true, "run the DRA kubelet plugin and publish ResourceSlices; false serves only --legacy-resources, with no API access at all")
	legacy := fs.String("legacy-resources", "", "classic resources to serve through the kubelet's device-plugin API, comma-separated full names (intel.com/intel_sriov_dpdk), or all; needs --config")
	fs.StringVar(&cfg.PodResourcesSocket, "pod-resources-socket", driver.DefaultPodResourcesSocket, "the kubelet's PodResources API; devices pods hold through the device-plugin API (a classic pool moved to DRA) stay out of the slices until released; empty: not asked")
	fs.StringVar(&cfg.DevicePluginDir, "device-plugin-dir", deviceplugin.DefaultDir, "the kubelet's device-plugins directory (kubelet.sock)")
	fs.StringVar((*string)(&cfg.LinkDownEffect), "link-down-effect", "NoSchedule", "effect of the taint on devices whose PF link is down: NoSchedule, NoExecute (evicts their pods) or None (informs only)")
	fs.BoolVar(&cfg.LegacyCDI, "legacy-cdi", false, "legacy resources answer with CDI device names (the classic --use-cdi) instead of device nodes")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this host:port (e.g. :8080); empty is off")
	fs.BoolVar(&cfg.Profiling, "profiling", false, "serve Go's /debug/pprof/ on --health-socket (heap and CPU profiles of the running daemon: curl --unix-socket SOCK http://x/debug/pprof/heap)")
	fs.StringVar(&cfg.HealthSocket, "health-socket", "", "serve /healthz and /readyz on this Unix socket, for `sriov-dra probe` (e.g. /run/sriov-dra/health.sock); empty is off")
	allowedDrivers := fs.String("allowed-drivers", "vfio-pci", "kernel drivers a DeviceClass's (or a granted claim's) NetConfig may bind a device to for a claim's lifetime, comma-separated; empty allows none")
	nri := fs.Bool("nri", false, "move the netdevs of devices whose NetConfig has a network section into their pods through the container runtime's NRI (containerd with NRI enabled), and set them up there: no Multus needed")
	nriSocket := fs.String("nri-socket", "/var/run/nri/nri.sock", "the container runtime's NRI socket (with --nri)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := logsapi.ValidateAndApply(logging, nil); err != nil {
		return fmt.Errorf("logging flags: %w", err)
	}
	// The logger configured just now (text or JSON), not the one main made.
	ctx = klog.NewContext(ctx, klog.Background())
	defer klog.Flush()
	if cfg.NodeName == "" {
		return errors.New("--node-name (or SRIOV_DRA_NODE_NAME) is required")
	}
	if cfg.PluginDir == "" {
		cfg.PluginDir = filepath.Join("/var/lib/kubelet/plugins", cfg.DriverName)
	}
	if *nri {
		if !cfg.DRA {
			return errors.New("--nri needs the DRA plugin (--dra): the netdevs moved into pods are those of claims")
		}
		cfg.NRISocket = *nriSocket
	}
	drivers, err := driverList(*allowedDrivers)
	if err != nil {
		return err
	}
	cfg.AllowedDrivers = drivers
	if *legacy != "" {
		cfg.LegacyResources = strings.Split(*legacy, ",")
	}
	if cfg.DRA {
		// Like the classic plugin, the shim alone needs no API server.
		restCfg, err := loadKubeconfig(*kubeconfig)
		if err != nil {
			return err
		}
		restCfg.UserAgent = "sriov-dra/" + version
		restCfg.QPS, restCfg.Burst = float32(*qps), *burst
		if cfg.KubeClient, err = kubernetes.NewForConfig(restCfg); err != nil {
			return fmt.Errorf("kube client: %w", err)
		}
	}
	h, err := hf.host()
	if err != nil {
		return err
	}
	cfg.Host = h
	return driver.Run(ctx, cfg)
}

// driverList reads --allowed-drivers: names a kernel driver could have.
func driverList(s string) ([]string, error) {
	var out []string
	for d := range strings.SplitSeq(s, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if !netconfig.IsDriverName(d) {
			return nil, fmt.Errorf("--allowed-drivers: %q is not a kernel driver name", d)
		}
		out = append(out, d)
	}
	return out, nil
}

func loadKubeconfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
