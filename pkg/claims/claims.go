// Package claims carries out prepare plans for the kubelet: it records
// them in the node's checkpoint, rebinds drivers, writes CDI specs and
// device-info files, undoes all of it on unprepare or after a crash, and
// unprepares claims the API says are gone. Its tests run on the DRA side
// as the daemon assembles it, in pkg/driver.
package claims

import (
	"context"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodestate"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// Host is what preparing needs from the OS: the devices and the node's
// routes (read at each prepare), device nodes and driver binds;
// *host.Host and *simhost.Host implement it.
type Host interface {
	discovery.Host
	prepare.DevNodes
	BindDriver(pciAddress, driver string) (previous string, err error)
}

// Devices gives the prepare path the devices as last discovered, and a
// fresh discovery after it changed the host.
type Devices interface {
	Snapshot() (*discovery.Inventory, *selector.Result)
	Rediscover(ctx context.Context) (*discovery.Inventory, error)
}

// PodNetwork is the pod network side: netdevs moved into pods, and the
// claims' network status.
type PodNetwork interface {
	// Enabled: netdevs are moved into pods; Connected: the runtime's NRI
	// delivers the sandbox events that do it.
	Enabled() bool
	Connected() bool
	// Detach puts a device's netdev back from its pod.
	Detach(ctx context.Context, d *checkpoint.Device) error
	// Repair puts back, in cp, what sandboxes gone meanwhile hold.
	Repair(ctx context.Context, cp checkpoint.Data) error
	// ReadVF returns the record that puts back what n changes on the VF's
	// PF (nil: nothing), SetVF sets it, RestoreVF puts it back: the
	// settings of a VF without a netdev, at prepare.
	ReadVF(dev discovery.Device, n *netconfig.Network) (*checkpoint.VFSet, error)
	SetVF(set *checkpoint.VFSet, n *netconfig.Network) error
	RestoreVF(set *checkpoint.VFSet) error
	ReportStatus(c *resourceapi.ResourceClaim, e checkpoint.Claim)
	SetStatus(uid types.UID, e checkpoint.Claim)
	ForgetStatus(uid types.UID)
}

// Config is what the executor needs.
type Config struct {
	DriverName string
	NodeName   string
	CDIRoot    string
	DevInfoDir string
	// PluginDir holds the helper's metadata files (dra-device-metadata/).
	PluginDir string
	Host      Host
	State     *nodestate.Store
	Devices   Devices
	PodNet    PodNetwork
	Client    kubernetes.Interface
	Metrics   *metrics.Metrics
	// AllowedDrivers are the drivers a config may rebind to (--allowed-drivers).
	AllowedDrivers []string
	// Shared is set when another instance may run beside this one (a
	// rolling update, --pod-uid).
	Shared bool
}

// Executor carries out prepare plans: the claims' entries in the
// checkpoint, the files on the node and driver rebinds.
type Executor struct {
	driverName     string
	nodeName       string
	cdiRoot        string
	devInfoDir     string
	pluginDir      string
	host           Host
	devices        Devices
	state          *nodestate.Store
	podnet         PodNetwork
	lookups        *lookups
	metrics        *metrics.Metrics
	allowedDrivers []string
	shared         bool
}

// New returns the executor; Run starts its API caches and garbage
// collection, Recover must run before the first prepare.
func New(cfg Config) *Executor {
	return &Executor{driverName: cfg.DriverName, nodeName: cfg.NodeName, cdiRoot: cfg.CDIRoot, devInfoDir: cfg.DevInfoDir,
		pluginDir: cfg.PluginDir, host: cfg.Host, devices: cfg.Devices, state: cfg.State, podnet: cfg.PodNet,
		lookups: newLookups(cfg.Client, cfg.NodeName), metrics: cfg.Metrics, allowedDrivers: cfg.AllowedDrivers, shared: cfg.Shared}
}

// Run serves the API caches and unprepares claims that are gone, until
// ctx ends.
func (p *Executor) Run(ctx context.Context) {
	p.lookups.start(ctx)
	p.collectGarbage(ctx)
}
