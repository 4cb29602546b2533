package prepare

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// ErrUnknownDevice marks a claim whose device is not in the inventory the
// plan was made from; a fresher inventory may have it.
var ErrUnknownDevice = errors.New("device is not on this node")

// Input is everything a plan depends on. The caller reads it from the host
// and the API beforehand; planning itself reads nothing.
type Input struct {
	DriverName string
	// PoolName is this node's pool: allocations from any other pool are refused.
	PoolName string
	Claims   []*resourceapi.ResourceClaim
	// Inventory is the node's devices as last discovered.
	Inventory *discovery.Inventory
	// Pools are the classic pools the devices fall in; nil without a config.
	Pools *selector.Result
	// Classes holds at least the DeviceClasses the claims' requests name
	// (see ClassNames). A class is only needed when no config names the
	// resource.
	Classes map[string]*resourceapi.DeviceClass
	// Pods holds the pods the claims are reserved for, by UID. A pod that is
	// missing makes all its claims in this call share one environment.
	Pods map[types.UID]*corev1.Pod
	// Uplinks are the functions under the host's default routes, read
	// just now: they are never rebound.
	Uplinks discovery.Uplinks
	// PodNetwork is set when the driver moves netdevs into pods (--nri);
	// without it a config's network section is refused.
	PodNetwork bool
	// AllowedDrivers are the drivers a config may bind a device to (the
	// admin's --allowed-drivers); a rebind to any other is refused.
	AllowedDrivers []string
}

// DevicePlan is one allocated device and what it is prepared with.
type DevicePlan struct {
	// Request is the claim's request ("" on the device-plugin path).
	Request string
	Pool    string
	// Device is the device as the plan saw it, before any rebind.
	Device  discovery.Device
	Options Options
	// ClassicPool is the classic pool the device was in when planned ("" for
	// none): it stays the device's pool while it is allocated, whatever
	// driver the allocation binds.
	ClassicPool string
	// Granted are the class-only fields the claim's config set because its
	// DeviceClass grants them (claimMaySet): the caller logs them.
	Granted []string
}

// SettingsAtPrepare reports whether the device's network section is VF
// settings applied through its PF at prepare: the device has no kernel
// netdev to move into the pod (it is, or is rebound to, vfio-pci or uio).
func (d *DevicePlan) SettingsAtPrepare() bool {
	_, rebound := d.Rebind()
	return d.Options.Network != nil && (rebound || d.Device.IfName == "")
}

// Rebind reports the driver the device must be bound to for the
// allocation, if any.
func (d *DevicePlan) Rebind() (string, bool) {
	return d.Options.Driver, d.Options.Driver != "" && d.Options.Driver != d.Device.Driver
}

// ClaimPlan is the plan for one claim, or for one device-plugin allocation.
type ClaimPlan struct {
	// ID names the allocation: the claim's UID, or an allocation ID on the
	// device-plugin path. CDI device names and the spec file derive from it.
	ID string
	// Claim is nil on the device-plugin path.
	Claim   *resourceapi.ResourceClaim
	Devices []DevicePlan
	// Peers are the IDs of the plans in the same call whose devices share a
	// container with this plan's (itself included): their devices are merged
	// into one PCIDEVICE_ variable per resource, as the classic plugin's
	// single allocation per container was.
	Peers []string
	Err   error
}

// Resolve plans each claim: its devices, the options each is prepared with
// and the drivers to bind. A claim that cannot be prepared carries its error;
// the others are unaffected.
func Resolve(in Input) []ClaimPlan {
	plans := make([]ClaimPlan, len(in.Claims))
	for i, c := range in.Claims {
		plans[i] = ClaimPlan{ID: string(c.UID), Claim: c}
		devs, err := in.resolveClaim(c)
		if err != nil {
			plans[i].Err = fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
			continue
		}
		plans[i].Devices = devs
	}
	linkContainerPeers(plans, in.Pods)
	return plans
}

func (in *Input) resolveClaim(c *resourceapi.ResourceClaim) ([]DevicePlan, error) {
	if c.Status.Allocation == nil {
		return nil, errors.New("not allocated")
	}
	var out []DevicePlan
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Driver != in.DriverName {
			continue
		}
		if r.Pool != in.PoolName {
			return nil, fmt.Errorf("device %s is in pool %q, not this node's %q", r.Device, r.Pool, in.PoolName)
		}
		d, ok := in.Inventory.Get(r.Device)
		if !ok {
			return nil, fmt.Errorf("device %s: %w", r.Device, ErrUnknownDevice)
		}
		cfg, granted, err := requestConfig(in.DriverName, c, r.Request)
		if err != nil {
			return nil, err
		}
		fallback := ""
		if cfg.ResourceName == "" {
			if fallback, err = in.requestResourceName(c, r.Request); err != nil {
				return nil, err
			}
		}
		if r.AdminAccess != nil && *r.AdminAccess {
			// Admin access shares a device another claim may be using:
			// it must not be reconfigured or taken from its pod.
			cfg.Driver, cfg.Network = "", nil
		}
		pool := in.poolOf(d.Name)
		dp := DevicePlan{Request: r.Request, Pool: r.Pool, Device: d, Options: OptionsFor(pool, &d, cfg, fallback), Granted: granted}
		if pool != nil {
			dp.ClassicPool = pool.Name()
		}
		if err := in.checkRebind(&dp); err != nil {
			return nil, err
		}
		if err := in.checkNetwork(&dp); err != nil {
			return nil, err
		}
		out = append(out, dp)
	}
	return out, nil
}

func (in *Input) requestResourceName(c *resourceapi.ResourceClaim, request string) (string, error) {
	className := requestClass(c, request)
	if className == "" {
		return "", fmt.Errorf("request %q has no device class", request)
	}
	return classResourceName(in.Classes, className)
}

// poolOf is the classic pool a device is in (nil: none, or no config).
func (in *Input) poolOf(device string) *selector.Pool {
	if in.Pools == nil {
		return nil
	}
	pool, _ := in.Pools.PoolFor(device)
	return pool
}

func (in *Input) checkRebind(dp *DevicePlan) error {
	driver, ok := dp.Rebind()
	if !ok {
		return nil
	}
	d := &dp.Device
	if !slices.Contains(in.AllowedDrivers, driver) {
		return fmt.Errorf("device %s: driver %q is not allowed on this node (--allowed-drivers=%s)", d.Name, driver, strings.Join(in.AllowedDrivers, ","))
	}
	if d.FunctionType == discovery.FunctionSF {
		return fmt.Errorf("device %s is a subfunction; driver %q cannot be bound to it", d.Name, driver)
	}
	if why, protected := in.Uplinks.Protects(d); protected {
		return fmt.Errorf("device %s %s; refusing to bind it to %s", d.Name, why, driver)
	}
	return nil
}

// checkNetwork refuses a network section the device cannot take: the
// netdev is moved into the pod only by the NRI path, and only a kernel
// netdev can be moved; VF settings live on a PF, and are all a VF without
// a netdev (vfio-pci, uio) can take, at prepare.
func (in *Input) checkNetwork(dp *DevicePlan) error {
	n, d := dp.Options.Network, &dp.Device
	if n == nil {
		return nil
	}
	setsVF := n.VLAN != nil || n.VLANQoS != nil || n.Trust != nil || n.SpoofChk != nil || n.MinTxRate != nil || n.MaxTxRate != nil || n.LinkState != ""
	driver := d.Driver
	if to, ok := dp.Rebind(); ok {
		driver = to
	}
	switch {
	case d.VDPAType != "":
		return fmt.Errorf("device %s: a network section does not apply to a vDPA device", d.Name)
	case dp.SettingsAtPrepare() && d.FunctionType != discovery.FunctionVF:
		return fmt.Errorf("device %s: on a device without a kernel netdev (driver %q) a network section sets VF settings on the PF, and this device is a %s", d.Name, driver, d.FunctionType)
	case dp.SettingsAtPrepare() && !n.VFSettingsOnly():
		return fmt.Errorf("device %s has no kernel netdev (driver %q): network.interfaceName, mtu, addresses and routes need one; only the VF settings its PF holds apply (mac, vlan, vlanQoS, trust, spoofChk, minTxRate, maxTxRate, linkState)", d.Name, driver)
	case dp.SettingsAtPrepare():
		return nil
	case !in.PodNetwork:
		return fmt.Errorf("device %s: config has a network section, but this driver does not move netdevs into pods (start it with --nri)", d.Name)
	case d.FunctionType != discovery.FunctionVF && setsVF:
		return fmt.Errorf("device %s: network.vlan, vlanQoS, trust, spoofChk, minTxRate, maxTxRate and linkState are VF settings held by a PF, and this device is a %s", d.Name, d.FunctionType)
	}
	return nil
}

// PoolPlan plans a device-plugin allocation: devices of one classic pool
// for one container, with the pool's options and its full name as the
// resource name (as the classic plugin gave them), identified by id.
func PoolPlan(id string, pool *selector.Pool, devices []discovery.Device) ClaimPlan {
	p := ClaimPlan{ID: id, Peers: []string{id}}
	for _, d := range devices {
		p.Devices = append(p.Devices, DevicePlan{Device: d, Options: OptionsFor(pool, &d, netconfig.NetConfig{}, pool.Name())})
	}
	return p
}
