package driver

import (
	"errors"

	"github.com/sriov-dra/sriov-dra/pkg/nodeevents"
)

// alive answers /healthz: the daemon runs, can read its state, and the
// kubelet can still reach what it registered. An unreadable checkpoint
// fails it, so that the kubelet restarts the daemon, which sets the file
// aside and rebuilds; so does a socket of the DRA plugin or of the shim
// that is gone or was replaced by another process's: the kubelet would
// dial nothing, or someone else, and only a restart registers anew.
func (d *Driver) alive() error {
	var errs []error
	if d.state != nil && !d.state.Healthy() {
		errs = append(errs, errors.New("the checkpoint cannot be read"))
	}
	errs = append(errs, d.sockets.Check())
	if d.shim != nil {
		errs = append(errs, d.shim.Check())
	}
	return errors.Join(errs...)
}

// ready answers /readyz: registered with the kubelet, and the devices
// published (DRA) or served (legacy resources).
func (d *Driver) ready() error {
	if d.cfg.DRA {
		helper := d.registration.Load()
		if helper == nil {
			return errors.New("not started yet")
		}
		if st := helper.RegistrationStatus(); st == nil || !st.PluginRegistered {
			return errors.New("not registered with the kubelet yet")
		}
		if !d.published.Load() {
			return errors.New("devices not published yet")
		}
		if d.podnet.Enabled() && !d.podnet.Connected() {
			return errors.New("not connected to the container runtime's NRI")
		}
	}
	if d.shim != nil && !d.shim.Registered() {
		return errors.New("legacy resources not registered with the kubelet yet")
	}
	return nil
}

// newNodeEvents posts the daemon's warnings on its Node.
func newNodeEvents(cfg Config) *nodeevents.Events {
	return nodeevents.New(cfg.KubeClient, cfg.NodeName, cfg.DriverName)
}
