package prepare

import (
	"maps"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
)

// Options are what one device is prepared with.
type Options struct {
	// ResourceName names the PCIDEVICE_<R> variables and the device-info file.
	ResourceName   string
	NeedVhostNet   bool
	RDMA           bool
	AdditionalInfo map[string]string
	// Driver, when it differs from the device's, is bound for the
	// allocation's lifetime.
	Driver string
	// Network, when set, moves the device's netdev into the pod and
	// configures it there (the --nri path).
	Network *netconfig.Network
}

// OptionsFor builds the options of one device, whichever path allocated it.
// The device's classic pool (nil when it is in none) gives the defaults —
// needVhostNet, isRdma mounts and additionalInfo — and cfg, the opaque
// configs already merged class before claim, adds to them. The resource name
// is cfg's, else fallbackName (the DeviceClass's extended resource name or
// name on the DRA path, the pool's name on the device-plugin path).
func OptionsFor(pool *selector.Pool, d *discovery.Device, cfg netconfig.NetConfig, fallbackName string) Options {
	var o Options
	if pool != nil {
		o.AdditionalInfo = pool.Config.AdditionalInfoFor(d.ID())
		for _, s := range pool.Config.Selectors {
			o.NeedVhostNet = o.NeedVhostNet || s.NeedVhostNet
			o.RDMA = o.RDMA || s.IsRdma
		}
	}
	o.NeedVhostNet = o.NeedVhostNet || netconfig.Bool(cfg.NeedVhostNet)
	o.RDMA = o.RDMA || netconfig.Bool(cfg.RDMA)
	if len(cfg.AdditionalInfo) > 0 {
		merged := maps.Clone(o.AdditionalInfo)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, cfg.AdditionalInfo)
		o.AdditionalInfo = merged
	}
	o.Driver = cfg.Driver
	o.Network = cfg.Network
	o.ResourceName = cfg.ResourceName
	if o.ResourceName == "" {
		o.ResourceName = fallbackName
	}
	return o
}
