package deviceplugin

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/nodefiles"
	"github.com/sriov-dra/sriov-dra/pkg/prepare"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/unixsock"
)

// resource serves one classic resource (a pool) to the kubelet over the
// device-plugin API. Its gRPC server can be stopped and started any number
// of times, as each kubelet restart requires.
type resource struct {
	pluginapi.UnimplementedDevicePluginServer
	name string // intel.com/intel_sriov_dpdk
	m    *Manager

	mu      sync.Mutex
	pool    *selector.Pool
	inv     *discovery.Inventory
	list    []*pluginapi.Device
	changed chan struct{} // closed and replaced when list changes
	// The endpoint the kubelet knows (see socket.go): the gRPC server,
	// its socket, and how many sockets were made before it.
	server  *grpc.Server
	ln      *unixsock.Listener
	stopped bool // the pool left the config: never served again
}

func newResource(m *Manager, name string) *resource {
	return &resource{name: name, m: m, changed: make(chan struct{})}
}

// update takes the pool's current devices; ListAndWatch streams see the
// new list if it differs.
func (r *resource) update(pool *selector.Pool, inv *discovery.Inventory, health func(*discovery.Device) string) {
	list := make([]*pluginapi.Device, 0, len(pool.Devices))
	for _, d := range pool.Devices {
		dev := &pluginapi.Device{ID: d.ID(), Health: health(d)}
		if d.NUMANode >= 0 && !pool.Config.ExcludeTopology {
			dev.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(d.NUMANode)}}}
		}
		list = append(list, dev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pool, r.inv = pool, inv
	if sameList(r.list, list) {
		return
	}
	r.list = list
	close(r.changed)
	r.changed = make(chan struct{})
}

func sameList(a, b []*pluginapi.Device) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Health != b[i].Health || numa(a[i]) != numa(b[i]) {
			return false
		}
	}
	return true
}

func numa(d *pluginapi.Device) int64 {
	if d.Topology == nil || len(d.Topology.Nodes) == 0 {
		return -1
	}
	return d.Topology.Nodes[0].ID
}

// GetDevicePluginOptions tells the kubelet that preferred allocations are offered.
func (r *resource) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch sends the device list, and a new one whenever it changes.
func (r *resource) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	for {
		r.mu.Lock()
		list, changed := r.list, r.changed
		r.mu.Unlock()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: list}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// GetPreferredAllocation picks devices deterministically (see prefer).
func (r *resource) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	r.mu.Lock()
	pool := r.pool
	r.mu.Unlock()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, c := range req.ContainerRequests {
		ids := prefer(pool, c.AvailableDeviceIDs, c.MustIncludeDeviceIDs, int(c.AllocationSize))
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// Allocate gives each container its devices' nodes, the classic PCIDEVICE_
// variables and device-info files, from the same planner the DRA path uses.
// An unknown device ID fails the whole request, naming the ID.
func (r *resource) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	start := time.Now()
	r.mu.Lock()
	pool, inv := r.pool, r.inv
	r.mu.Unlock()
	if pool == nil {
		return nil, status.Errorf(codes.Unavailable, "resource %s: no devices discovered yet", r.name)
	}
	byID := make(map[string]*discovery.Device, len(pool.Devices))
	for _, d := range pool.Devices {
		byID[d.ID()] = d
	}
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		var devices []discovery.Device
		for _, id := range c.DevicesIds {
			d, ok := byID[id]
			if !ok {
				return nil, status.Errorf(codes.InvalidArgument, "resource %s: unknown device ID %q", r.name, id)
			}
			devices = append(devices, *d)
		}
		cr, err := r.containerResponse(pool, inv, devices)
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "resource %s: %v", r.name, err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cr)
	}
	klog.FromContext(ctx).V(2).Info("Allocated", "resource", r.name, "containers", len(req.ContainerRequests), "duration", time.Since(start))
	if r.m.cfg.OnAllocate != nil {
		r.m.cfg.OnAllocate(r.name)
	}
	return resp, nil
}

func (r *resource) containerResponse(pool *selector.Pool, inv *discovery.Inventory, devices []discovery.Device) (*pluginapi.ContainerAllocateResponse, error) {
	plan := prepare.PoolPlan(r.cdiID(), pool, devices)
	rendered := prepare.Render(r.m.cfg.DriverName, []prepare.ClaimPlan{plan}, inv, r.m.cfg.Host)[0]
	if rendered.Err != nil {
		return nil, rendered.Err
	}
	cr := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
	for _, e := range rendered.Env {
		k, v, _ := strings.Cut(e, "=")
		cr.Envs[k] = v
	}
	for i := range rendered.Devices {
		d := &rendered.Devices[i]
		if r.m.cfg.CDI {
			cr.CdiDevices = append(cr.CdiDevices, &pluginapi.CDIDevice{Name: rendered.CDIDeviceID(r.m.cfg.DriverName, d)})
			continue
		}
		for _, n := range d.Edits.Nodes {
			cr.Devices = append(cr.Devices, &pluginapi.DeviceSpec{ContainerPath: n.Path, HostPath: n.HostPath, Permissions: "rw"})
		}
	}
	for _, f := range rendered.InfoFiles {
		path := filepath.Join(r.m.cfg.DevInfoDir, f.Name)
		if err := nodefiles.WriteFile(path, f.Data); err != nil {
			return nil, fmt.Errorf("device-info file: %w", err)
		}
		if id, ok := DeviceInfoID(f.Name); ok {
			r.m.files.record(path, id, time.Now())
		}
	}
	return cr, nil
}

// cdiID names the resource's static CDI spec (with --legacy-cdi) and so its
// CDI devices: <driver>/net=legacy-<resource>-<device>.
func (r *resource) cdiID() string {
	return "legacy-" + strings.NewReplacer("/", "-", ".", "-", "_", "-").Replace(r.name)
}
