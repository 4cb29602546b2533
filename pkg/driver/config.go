package driver

import (
	"errors"
	"fmt"
	"slices"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sriov-dra/sriov-dra/pkg/deviceplugin"
)

// Config is everything the daemon needs; cmd/sriov-dra fills it from flags.
type Config struct {
	DriverName string
	NodeName   string
	Host       Host
	// DRA runs the DRA kubelet plugin and publishes ResourceSlices; without
	// it the daemon serves only the legacy resources and needs no API.
	DRA            bool
	KubeClient     kubernetes.Interface
	CDIRoot        string
	PluginDir      string
	RegistrarDir   string
	RescanInterval time.Duration
	// ConfigPath is the classic ConfigMap's config.json; optional.
	ConfigPath     string
	ResourcePrefix string
	// PodUID enables rolling updates when running in a DaemonSet.
	PodUID string
	// PodResourcesSocket is the kubelet's PodResources API: devices pods
	// hold through the device-plugin API (classic pools moved to DRA) stay
	// out of the slices. Empty: not asked.
	PodResourcesSocket string
	// DevInfoDir receives Network Plumbing WG device-info files.
	DevInfoDir string
	// LegacyResources are the classic resources served through the
	// device-plugin API (or deviceplugin.All); their devices are withheld
	// from the ResourceSlices.
	LegacyResources []string
	// DevicePluginDir is the kubelet's device-plugins directory.
	DevicePluginDir string
	// LegacyCDI makes the legacy resources answer with CDI devices.
	LegacyCDI bool
	// LinkDownEffect is the effect of the taint on devices whose PF link is
	// down: NoSchedule (default), NoExecute, or None.
	LinkDownEffect resourceapi.DeviceTaintEffect
	// MetricsAddr serves /metrics, /healthz and /readyz (empty: off);
	// HealthSocket serves /healthz and /readyz on a Unix socket (empty: off).
	MetricsAddr  string
	HealthSocket string
	// Profiling serves Go's /debug/pprof/ on HealthSocket.
	Profiling bool
	// NRISocket, when set, connects to the container runtime's NRI there
	// and moves the netdevs of devices whose config has a network section
	// into their pods.
	NRISocket string
	// AllowedDrivers are the kernel drivers a NetConfig may bind a device to
	// (--allowed-drivers); a rebind to any other is refused at prepare.
	AllowedDrivers []string
}

// DefaultPodResourcesSocket is the kubelet's PodResources API.
const DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// DefaultDevInfoDir is where Multus and SR-IOV CNI look for device-info files.
const DefaultDevInfoDir = "/var/run/k8s.cni.cncf.io/devinfo/dp"

// workDirs are the directories the enabled parts write in. Only those are
// created: in a DaemonSet the others are not mounted, and the container's
// root filesystem is read-only.
func (cfg *Config) workDirs() []string {
	dirs := []string{cfg.PluginDir, cfg.CDIRoot}
	if cfg.DRA {
		dirs = append(dirs, cfg.RegistrarDir)
	}
	if len(cfg.LegacyResources) > 0 {
		dirs = append(dirs, cfg.DevicePluginDir)
	}
	return slices.DeleteFunc(dirs, func(d string) bool { return d == "" })
}

// complete checks the config and fills defaults.
func (cfg *Config) complete() error {
	if cfg.NodeName == "" || cfg.DriverName == "" || cfg.Host == nil {
		return errors.New("driver: node name, driver name and host are required")
	}
	if cfg.DRA && (cfg.KubeClient == nil || cfg.PluginDir == "") {
		return errors.New("driver: the DRA plugin needs a kube client and a plugin dir")
	}
	if !cfg.DRA && len(cfg.LegacyResources) == 0 {
		return errors.New("with the DRA plugin off (--dra=false), --legacy-resources must name what to serve")
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = 30 * time.Second
	}
	if cfg.DevInfoDir == "" {
		cfg.DevInfoDir = DefaultDevInfoDir
	}
	if cfg.DevicePluginDir == "" && len(cfg.LegacyResources) > 0 {
		cfg.DevicePluginDir = deviceplugin.DefaultDir
	}
	switch cfg.LinkDownEffect {
	case "":
		cfg.LinkDownEffect = resourceapi.DeviceTaintEffectNoSchedule
	case resourceapi.DeviceTaintEffectNoSchedule, resourceapi.DeviceTaintEffectNoExecute, resourceapi.DeviceTaintEffectNone:
	default:
		return fmt.Errorf("--link-down-effect: %q is not NoSchedule, NoExecute or None", cfg.LinkDownEffect)
	}
	return nil
}
