package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	netconfig "github.com/sriov-dra/sriov-dra/api/netconfig/v1alpha1"
	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
)

// PrepareHost is what preparing needs from the OS; *host.Host implements it.
type PrepareHost interface {
	prepare.DevFS
	BootID() string
	BindDriver(pciAddress, driver string) (previous string, err error)
}

// preparer owns prepared-claim state: the checkpoint, CDI specs, device-info
// files and driver rebinds. Every call re-reads the checkpoint from disk,
// since during a rolling update two driver instances share it.
type preparer struct {
	mu         sync.Mutex
	driverName string
	nodeName   string
	cdiRoot    string
	devInfoDir string
	checkpoint string
	host       PrepareHost
	client     kubernetes.Interface
	// inventory returns the current devices; fresh forces a rediscovery.
	inventory func(ctx context.Context, fresh bool) (*discovery.Inventory, error)
	// poolOptions returns the classic pool's settings for a device, if any.
	poolOptions func(d *discovery.Device) prepare.Options
	// defaultRoutes reports interfaces that must never be rebound.
	defaultRoutes func() map[string]bool
}

func (p *preparer) cdiKind() string { return p.driverName + "/net" }

// claimWork is one claim being prepared in a call.
type claimWork struct {
	claim   *resourceapi.ResourceClaim
	entry   checkpoint.Claim
	devices []workDevice
	err     error
}

type workDevice struct {
	result   resourceapi.DeviceRequestAllocationResult
	device   discovery.Device
	config   netconfig.NetConfig
	resource string
	edits    prepare.DeviceEdits
}

func (p *preparer) load() (checkpoint.Data, error) {
	d, stale, err := checkpoint.Load(p.checkpoint, p.host.BootID())
	if err != nil {
		return d, err
	}
	if stale {
		// Another boot's claims are gone with it; their files are not.
		for uid, c := range d.Claims {
			p.removeFiles(c)
			delete(d.Claims, uid)
		}
		d.BootID = p.host.BootID()
	}
	return d, nil
}

// Prepare prepares claims (the kubelet's NodePrepareResources).
func (p *preparer) Prepare(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	logger := klog.FromContext(ctx)
	cp, err := p.load()
	if err != nil {
		return nil, err
	}
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	var work []*claimWork
	for _, c := range claims {
		entry, ok := cp.Claims[string(c.UID)]
		if ok && entry.State == checkpoint.StatePrepared {
			out[c.UID] = resultFromEntry(entry)
			continue
		}
		if ok {
			// A crash left it half-prepared: undo, then prepare again.
			p.rollback(ctx, entry)
			delete(cp.Claims, string(c.UID))
		}
		w := &claimWork{claim: c}
		w.err = p.resolve(ctx, w)
		work = append(work, w)
	}
	// Record intent (and original drivers) before touching anything.
	for _, w := range work {
		if w.err == nil {
			cp.Claims[string(w.claim.UID)] = w.entry
		}
	}
	if err := checkpoint.Save(p.checkpoint, cp); err != nil {
		return nil, fmt.Errorf("save checkpoint: %w", err)
	}
	for _, w := range work {
		if w.err == nil {
			w.err = p.bindAndEdit(ctx, w)
		}
	}
	p.writeSpecs(ctx, work)
	for _, w := range work {
		if w.err != nil {
			logger.Error(w.err, "Prepare failed", "claim", klog.KObj(w.claim))
			if _, ok := cp.Claims[string(w.claim.UID)]; ok {
				p.rollback(ctx, cp.Claims[string(w.claim.UID)])
				delete(cp.Claims, string(w.claim.UID))
			}
			out[w.claim.UID] = kubeletplugin.PrepareResult{Err: w.err}
			continue
		}
		w.entry.State = checkpoint.StatePrepared
		cp.Claims[string(w.claim.UID)] = w.entry
		out[w.claim.UID] = resultFromEntry(w.entry)
	}
	if err := checkpoint.Save(p.checkpoint, cp); err != nil {
		return nil, fmt.Errorf("save checkpoint: %w", err)
	}
	for _, w := range work {
		if w.err == nil {
			p.setNetworkStatus(ctx, w)
		}
	}
	return out, nil
}

func resultFromEntry(e checkpoint.Claim) kubeletplugin.PrepareResult {
	var r kubeletplugin.PrepareResult
	for _, d := range e.Devices {
		r.Devices = append(r.Devices, kubeletplugin.Device{
			Requests: []string{d.Request}, PoolName: d.Pool, DeviceName: d.Name, CDIDeviceIDs: d.CDIDeviceIDs,
		})
	}
	return r
}

// resolve finds the claim's devices, their configs and resource names,
// without side effects.
func (p *preparer) resolve(ctx context.Context, w *claimWork) error {
	c := w.claim
	if c.Status.Allocation == nil {
		return fmt.Errorf("claim %s/%s is not allocated", c.Namespace, c.Name)
	}
	inv, err := p.inventory(ctx, false)
	if err != nil {
		return err
	}
	w.entry = checkpoint.Claim{Namespace: c.Namespace, Name: c.Name, State: checkpoint.StatePreparing,
		CDISpec: filepath.Join(p.cdiRoot, prepare.SpecFileName(p.cdiKind(), string(c.UID)))}
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Driver != p.driverName {
			continue
		}
		if r.Pool != p.nodeName {
			return fmt.Errorf("claim %s/%s: device %s is in pool %q, not this node's %q", c.Namespace, c.Name, r.Device, r.Pool, p.nodeName)
		}
		d, ok := inv.Get(r.Device)
		if !ok {
			// A device that appeared since the last rescan.
			if inv, err = p.inventory(ctx, true); err != nil {
				return err
			}
			if d, ok = inv.Get(r.Device); !ok {
				return fmt.Errorf("claim %s/%s: device %s is not on this node any more", c.Namespace, c.Name, r.Device)
			}
		}
		cfg, err := p.configFor(c, r.Request)
		if err != nil {
			return fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
		}
		resource, err := p.resourceName(ctx, c, r.Request, cfg)
		if err != nil {
			return err
		}
		wd := workDevice{result: r, device: d, config: cfg, resource: resource}
		cd := checkpoint.Device{Request: r.Request, Pool: r.Pool, Name: r.Device, PCIAddress: d.PCIAddress,
			CDIDeviceIDs: []string{p.cdiKind() + "=" + string(c.UID) + "-" + r.Device}}
		if cfg.Driver != "" && cfg.Driver != d.Driver {
			if d.FunctionType == discovery.FunctionSF {
				return fmt.Errorf("claim %s/%s: device %s is a subfunction; driver %q cannot be bound to it", c.Namespace, c.Name, r.Device, cfg.Driver)
			}
			if p.defaultRoutes()[d.IfName] {
				return fmt.Errorf("claim %s/%s: device %s (%s) carries the default route; refusing to bind it to %s", c.Namespace, c.Name, r.Device, d.IfName, cfg.Driver)
			}
			cd.OriginalDriver, cd.BoundDriver = d.Driver, cfg.Driver
		}
		w.entry.Devices = append(w.entry.Devices, cd)
		w.devices = append(w.devices, wd)
	}
	return nil
}

// configFor merges the opaque NetConfigs for a request: class configs
// first, then the claim's, each only where it names the request (or none).
func (p *preparer) configFor(c *resourceapi.ResourceClaim, request string) (netconfig.NetConfig, error) {
	var out netconfig.NetConfig
	base, _, _ := strings.Cut(request, "/")
	for _, source := range []resourceapi.AllocationConfigSource{resourceapi.AllocationConfigSourceClass, resourceapi.AllocationConfigSourceClaim} {
		for i, cfg := range c.Status.Allocation.Devices.Config {
			if cfg.Source != source || cfg.Opaque == nil || cfg.Opaque.Driver != p.driverName {
				continue
			}
			if len(cfg.Requests) > 0 && !containsAny(cfg.Requests, request, base) {
				continue
			}
			nc, err := netconfig.Decode(cfg.Opaque.Parameters.Raw)
			if err != nil {
				return out, fmt.Errorf("config[%d] (from %s): %w", i, strings.ToLower(string(source)), err)
			}
			out = out.Merge(nc)
		}
	}
	return out, nil
}

func containsAny(xs []string, vals ...string) bool {
	for _, x := range xs {
		for _, v := range vals {
			if x == v {
				return true
			}
		}
	}
	return false
}

// resourceName picks the PCIDEVICE_ name: the config's resourceName, else
// the DeviceClass's extendedResourceName (KEP-5004), else the class name.
func (p *preparer) resourceName(ctx context.Context, c *resourceapi.ResourceClaim, request string, cfg netconfig.NetConfig) (string, error) {
	if cfg.ResourceName != "" {
		return cfg.ResourceName, nil
	}
	className := requestClass(c, request)
	if className == "" {
		return "", fmt.Errorf("claim %s/%s: request %q has no device class", c.Namespace, c.Name, request)
	}
	class, err := p.client.ResourceV1().DeviceClasses().Get(ctx, className, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("claim %s/%s: device class %s: %w", c.Namespace, c.Name, className, err)
	}
	if class.Spec.ExtendedResourceName != nil && *class.Spec.ExtendedResourceName != "" {
		return *class.Spec.ExtendedResourceName, nil
	}
	return className, nil
}

func requestClass(c *resourceapi.ResourceClaim, request string) string {
	base, sub, _ := strings.Cut(request, "/")
	for _, r := range c.Spec.Devices.Requests {
		if r.Name != base {
			continue
		}
		if r.Exactly != nil {
			return r.Exactly.DeviceClassName
		}
		for _, s := range r.FirstAvailable {
			if s.Name == sub {
				return s.DeviceClassName
			}
		}
	}
	return ""
}

// bindAndEdit rebinds devices as configured and computes their edits.
func (p *preparer) bindAndEdit(ctx context.Context, w *claimWork) error {
	rebound := false
	for _, cd := range w.entry.Devices {
		if cd.BoundDriver == "" {
			continue
		}
		if _, err := p.host.BindDriver(cd.PCIAddress, cd.BoundDriver); err != nil {
			return fmt.Errorf("bind %s to %s: %w", cd.Name, cd.BoundDriver, err)
		}
		klog.FromContext(ctx).Info("Rebound device for claim", "device", cd.Name, "from", cd.OriginalDriver, "to", cd.BoundDriver, "claim", klog.KObj(w.claim))
		rebound = true
	}
	if rebound {
		// One rediscovery for all rebound devices: their driver, netdev
		// and vfio group are what the edits depend on.
		inv, err := p.inventory(ctx, true)
		if err != nil {
			return err
		}
		for i := range w.devices {
			if d, ok := inv.Get(w.devices[i].device.Name); ok {
				w.devices[i].device = d
			}
		}
	}
	for i := range w.devices {
		wd := &w.devices[i]
		opts := p.poolOptions(&wd.device)
		opts.NeedVhostNet = opts.NeedVhostNet || netconfig.Bool(wd.config.NeedVhostNet)
		opts.RDMA = opts.RDMA || netconfig.Bool(wd.config.RDMA)
		if len(wd.config.AdditionalInfo) > 0 {
			merged := map[string]string{}
			for k, v := range opts.AdditionalInfo {
				merged[k] = v
			}
			for k, v := range wd.config.AdditionalInfo {
				merged[k] = v
			}
			opts.AdditionalInfo = merged
		}
		edits, err := prepare.ForDevice(&wd.device, opts, p.host)
		if err != nil {
			return err
		}
		wd.edits = edits
	}
	return nil
}

// writeSpecs writes each claim's CDI spec and device-info files. A claim's
// variables list the devices of every claim that shares a container with it
// (two claims of one class in one container give one merged variable, as
// the classic plugin's single allocation did); claims in different
// containers of a pod stay apart.
func (p *preparer) writeSpecs(ctx context.Context, work []*claimWork) {
	peers := p.containerPeers(ctx, work)
	for _, w := range work {
		if w.err != nil {
			continue
		}
		resources := map[string][]prepare.DeviceEdits{}
		for _, other := range work {
			if other.err != nil || !peers[w.claim.UID][other.claim.UID] {
				continue
			}
			for _, wd := range other.devices {
				resources[wd.resource] = append(resources[wd.resource], wd.edits)
			}
		}
		w.err = p.writeClaimFiles(ctx, w, resources)
	}
}

// containerPeers maps each claim to the claims (itself included) used by
// the same container of the pod it is reserved for. Without the pod (no
// client, or the pod cannot be read) every claim of the pod is a peer.
func (p *preparer) containerPeers(ctx context.Context, work []*claimWork) map[types.UID]map[types.UID]bool {
	peers := map[types.UID]map[types.UID]bool{}
	link := func(a, b types.UID) {
		if peers[a] == nil {
			peers[a] = map[types.UID]bool{}
		}
		peers[a][b] = true
	}
	byPod := map[types.UID][]*claimWork{}
	for _, w := range work {
		link(w.claim.UID, w.claim.UID)
		if len(w.claim.Status.ReservedFor) > 0 {
			byPod[w.claim.Status.ReservedFor[0].UID] = append(byPod[w.claim.Status.ReservedFor[0].UID], w)
		}
	}
	for podUID, claims := range byPod {
		groups := p.containerClaimGroups(ctx, claims[0].claim, podUID)
		if groups == nil {
			groups = [][]string{nil} // one group: the whole pod
			for _, w := range claims {
				groups[0] = append(groups[0], w.claim.Name)
			}
		}
		for _, g := range groups {
			for _, a := range claims {
				for _, b := range claims {
					if slices.Contains(g, a.claim.Name) && slices.Contains(g, b.claim.Name) {
						link(a.claim.UID, b.claim.UID)
					}
				}
			}
		}
	}
	return peers
}

// containerClaimGroups reads the pod a claim is reserved for and returns,
// per container, the names of the ResourceClaims it uses; nil if unknown.
func (p *preparer) containerClaimGroups(ctx context.Context, c *resourceapi.ResourceClaim, podUID types.UID) [][]string {
	if p.client == nil {
		return nil
	}
	ref := c.Status.ReservedFor[0]
	if ref.Resource != "pods" || ref.APIGroup != "" {
		return nil
	}
	pod, err := p.client.CoreV1().Pods(c.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil || pod.UID != podUID {
		klog.FromContext(ctx).V(2).Info("Cannot read the claim's pod; merging variables pod-wide", "claim", klog.KObj(c), "err", err)
		return nil
	}
	claimName := map[string]string{}
	for _, pc := range pod.Spec.ResourceClaims {
		if pc.ResourceClaimName != nil {
			claimName[pc.Name] = *pc.ResourceClaimName
		}
	}
	for _, st := range pod.Status.ResourceClaimStatuses {
		if st.ResourceClaimName != nil {
			claimName[st.Name] = *st.ResourceClaimName
		}
	}
	var groups [][]string
	for _, ctr := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		var g []string
		for _, rc := range ctr.Resources.Claims {
			if n, ok := claimName[rc.Name]; ok {
				g = append(g, n)
			}
		}
		groups = append(groups, g)
	}
	if ext := pod.Status.ExtendedResourceClaimStatus; ext != nil {
		// A claim the scheduler made for extended resources serves every
		// container that asked for one.
		groups = append(groups, []string{ext.ResourceClaimName})
	}
	return groups
}

func (p *preparer) writeClaimFiles(_ context.Context, w *claimWork, resources map[string][]prepare.DeviceEdits) error {
	var env []string
	seen := map[string]bool{}
	var devices []prepare.CDIDevice
	for _, wd := range w.devices {
		if !seen[wd.resource] {
			seen[wd.resource] = true
			e, err := prepare.Env(wd.resource, resources[wd.resource])
			if err != nil {
				return err
			}
			env = append(env, e...)
		}
		devices = append(devices, prepare.CDIDevice{Name: string(w.claim.UID) + "-" + wd.device.Name, Nodes: wd.edits.Nodes})
	}
	if _, err := prepare.WriteSpec(p.cdiRoot, filepath.Base(w.entry.CDISpec), prepare.Spec(p.cdiKind(), devices, env)); err != nil {
		return err
	}
	for _, wd := range w.devices {
		if wd.device.FunctionType == discovery.FunctionSF {
			continue // device-info describes PCI devices
		}
		data, err := prepare.DeviceInfo(&wd.device, wd.edits.Info["vhost"] != nil)
		if err != nil {
			return err
		}
		path := prepare.DeviceInfoFile(p.devInfoDir, wd.resource, wd.device.ID())
		if err := prepare.WriteFileAtomic(path, data); err != nil {
			return fmt.Errorf("device-info file: %w", err)
		}
		w.entry.InfoFiles = append(w.entry.InfoFiles, path)
	}
	return nil
}

// setNetworkStatus publishes the netdev of each prepared device in the
// claim's status (KEP-4817), for Multus and users. Failure is logged only.
func (p *preparer) setNetworkStatus(ctx context.Context, w *claimWork) {
	var devs []resourceapi.AllocatedDeviceStatus
	for _, wd := range w.devices {
		if wd.device.IfName == "" || wd.device.Driver == "vfio-pci" {
			continue
		}
		devs = append(devs, resourceapi.AllocatedDeviceStatus{
			Driver: p.driverName, Pool: wd.result.Pool, Device: wd.result.Device,
			NetworkData: &resourceapi.NetworkDeviceData{InterfaceName: wd.device.IfName, HardwareAddress: wd.device.HardwareAddress},
		})
	}
	if len(devs) == 0 || p.client == nil {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := p.client.ResourceV1().ResourceClaims(w.claim.Namespace).Get(ctx, w.claim.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c.UID != w.claim.UID {
			return apierrors.NewNotFound(resourceapi.Resource("resourceclaims"), w.claim.Name)
		}
		kept := c.Status.Devices[:0]
		for _, d := range c.Status.Devices {
			if d.Driver != p.driverName {
				kept = append(kept, d)
			}
		}
		c.Status.Devices = append(kept, devs...)
		_, err = p.client.ResourceV1().ResourceClaims(c.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		klog.FromContext(ctx).Error(err, "Setting claim network status failed", "claim", klog.KObj(w.claim))
	}
}

// Unprepare undoes Prepare (the kubelet's NodeUnprepareResources).
func (p *preparer) Unprepare(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp, err := p.load()
	if err != nil {
		return nil, err
	}
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		entry, ok := cp.Claims[string(c.UID)]
		if !ok {
			out[c.UID] = nil // never prepared here, or already undone
			continue
		}
		if err := p.rollback(ctx, entry); err != nil {
			out[c.UID] = err
			continue
		}
		delete(cp.Claims, string(c.UID))
		out[c.UID] = nil
	}
	if err := checkpoint.Save(p.checkpoint, cp); err != nil {
		return nil, fmt.Errorf("save checkpoint: %w", err)
	}
	return out, nil
}

// rollback removes a claim's files and restores rebound drivers.
func (p *preparer) rollback(ctx context.Context, e checkpoint.Claim) error {
	errs := []error{p.removeFiles(e)}
	for _, d := range e.Devices {
		if d.BoundDriver == "" {
			continue
		}
		if _, err := p.host.BindDriver(d.PCIAddress, d.OriginalDriver); err != nil {
			errs = append(errs, fmt.Errorf("restore %s to %q: %w", d.Name, d.OriginalDriver, err))
			continue
		}
		klog.FromContext(ctx).Info("Restored device driver", "device", d.Name, "driver", d.OriginalDriver)
	}
	return errors.Join(errs...)
}

func (p *preparer) removeFiles(e checkpoint.Claim) error {
	var errs []error
	for _, f := range append([]string{e.CDISpec}, e.InfoFiles...) {
		if f != "" {
			errs = append(errs, prepare.RemoveFile(f))
		}
	}
	return errors.Join(errs...)
}

// reconcile runs at start-up: it rolls back half-prepared claims, unprepares
// claims no pod uses any more, and removes CDI specs of this driver that no
// checkpoint entry owns.
func (p *preparer) reconcile(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logger := klog.FromContext(ctx)
	cp, err := p.load()
	if err != nil {
		return err
	}
	for uid, e := range cp.Claims {
		keep := e.State == checkpoint.StatePrepared
		if keep && p.client != nil {
			c, err := p.client.ResourceV1().ResourceClaims(e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				keep = false
			case err != nil:
				logger.Error(err, "Checking claim at start-up; keeping it", "claim", klog.KRef(e.Namespace, e.Name))
			default:
				keep = string(c.UID) == uid && len(c.Status.ReservedFor) > 0
			}
		}
		if keep {
			continue
		}
		logger.Info("Unpreparing claim left by an earlier run", "claim", klog.KRef(e.Namespace, e.Name), "state", e.State)
		if err := p.rollback(ctx, e); err != nil {
			logger.Error(err, "Cleanup of claim failed", "claim", klog.KRef(e.Namespace, e.Name))
			continue
		}
		delete(cp.Claims, uid)
	}
	if err := checkpoint.Save(p.checkpoint, cp); err != nil {
		return err
	}
	owned := map[string]bool{}
	for _, e := range cp.Claims {
		owned[e.CDISpec] = true
	}
	prefix := strings.TrimSuffix(prepare.SpecFileName(p.cdiKind(), ""), ".json")
	entries, _ := os.ReadDir(p.cdiRoot)
	for _, ent := range entries {
		path := filepath.Join(p.cdiRoot, ent.Name())
		name := strings.TrimPrefix(ent.Name(), ".")
		if strings.HasPrefix(name, prefix) && !owned[path] {
			logger.Info("Removing CDI spec no claim owns", "path", path)
			_ = prepare.RemoveFile(path)
		}
	}
	return nil
}
