// Package podnet moves the netdevs of prepared devices into their pods and
// back (the runtime's NRI sandbox events), sets their VFs up on their PFs,
// and writes the claims' network status (KEP-4817). Its tests that need
// prepared claims run on the assembled DRA side, in pkg/driver.
package podnet

import (
	"context"

	"k8s.io/client-go/kubernetes"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/host"
	"github.com/sriov-dra/sriov-dra/pkg/metrics"
	"github.com/sriov-dra/sriov-dra/pkg/nodestate"
	"github.com/sriov-dra/sriov-dra/pkg/nriplugin"
)

// Host moves netdevs into pods and sets VFs up on their PFs; *host.Host
// and *simhost.Host implement it.
type Host interface {
	HostLink(name string) (host.LinkState, error)
	MoveLinkToPod(hostName string, p host.PodLink) (host.LinkState, error)
	MoveLinkToHost(netNS, podName string, orig host.LinkState) error
	PodLinkAddrs(netNS, name string) (mac string, addrs []string, err error)
	VF(pf string, index int) (host.VFState, error)
	SetVF(pf string, index int, c host.VFConfig) error
}

// podDevice is one netdev of a pod: where its record is in the checkpoint.
type podDevice struct {
	claim string // claim UID
	index int    // in the claim's Devices
}

// Devices are the host's devices as last discovered.
type Devices interface {
	Device(name string) (discovery.Device, bool)
}

// Config is what the pod network side needs.
type Config struct {
	DriverName string
	Host       Host
	State      *nodestate.Store
	Devices    Devices
	// Client writes the claims' network status.
	Client  kubernetes.Interface
	Metrics *metrics.Metrics
	// NRISocket is the container runtime's NRI socket; empty: netdevs are
	// not moved into pods (records of earlier moves are still put back).
	NRISocket string
}

// PodNet is the pod network side of prepared claims.
type PodNet struct {
	driverName string
	host       Host
	state      *nodestate.Store
	devices    Devices
	metrics    *metrics.Metrics
	status     *statusWriter
	// nri is nil without an NRI socket.
	nri *nriplugin.Plugin
}

var _ nriplugin.Handler = (*PodNet)(nil)

// New returns the pod network side; Run connects it.
func New(cfg Config) *PodNet {
	p := &PodNet{driverName: cfg.DriverName, host: cfg.Host, state: cfg.State, devices: cfg.Devices, metrics: cfg.Metrics,
		status: newStatusWriter(cfg.Client, cfg.DriverName)}
	if cfg.NRISocket != "" {
		p.nri = nriplugin.New(nriplugin.Config{Socket: cfg.NRISocket, Name: cfg.DriverName, Index: "10",
			OnConnected:    func() { cfg.Metrics.NRIConnected.Set(1) },
			OnDisconnected: func() { cfg.Metrics.NRIConnected.Set(0) }}, p)
	}
	return p
}

// Run writes claim statuses and, with an NRI socket, serves the runtime's
// sandbox events, until ctx ends. Start it after the first discovery: a
// sandbox event needs the devices' netdevs.
func (p *PodNet) Run(ctx context.Context) {
	if p.nri != nil {
		go p.nri.Run(ctx)
	}
	p.status.run(ctx, 4)
}

// Enabled reports whether netdevs are moved into pods (an NRI socket is set).
func (p *PodNet) Enabled() bool { return p.nri != nil }

// Connected reports whether the runtime's NRI delivers sandbox events.
func (p *PodNet) Connected() bool { return p.nri != nil && p.nri.Connected() }
