package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	classic "github.com/sriov-dra/sriov-dra/api/classic/v1"
	"github.com/sriov-dra/sriov-dra/pkg/discovery"
	"github.com/sriov-dra/sriov-dra/pkg/selector"
	"github.com/sriov-dra/sriov-dra/pkg/simhost"
	"github.com/sriov-dra/sriov-dra/pkg/simhost/simhosttest"
)

// registrar stands in for the kubelet's registration service and behaves
// as its device manager does (socket.go says where): it connects to each
// endpoint registered and keeps a ListAndWatch stream open, refuses a path
// it already holds ("device plugin already connected"), and forgets an
// endpoint when its stream ends. It records, in order, each endpoint
// connected and each stream ended.
type registrar struct {
	pluginapi.UnimplementedRegistrationServer
	dir string
	srv *grpc.Server

	mu      sync.Mutex
	reqs    []*pluginapi.RegisterRequest // accepted
	refused []string                     // endpoints registered while held
	held    map[string]bool              // endpoint → its stream is open
	events  []string                     // "connected <endpoint>", "ended <endpoint>"
	conns   []*grpc.ClientConn
}

func (r *registrar) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	r.mu.Lock()
	if r.held[req.Endpoint] {
		r.refused = append(r.refused, req.Endpoint)
		r.mu.Unlock()
		return nil, fmt.Errorf("device plugin already connected: %s", filepath.Join(r.dir, req.Endpoint))
	}
	r.held[req.Endpoint] = true
	r.mu.Unlock()
	release := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.held, req.Endpoint)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(r.dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		release()
		return nil, err
	}
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		conn.Close()
		release()
		return nil, fmt.Errorf("connect to %s: %w", req.Endpoint, err)
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.events = append(r.events, "connected "+req.Endpoint)
	r.conns = append(r.conns, conn)
	r.mu.Unlock()
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.held, req.Endpoint)
		r.events = append(r.events, "ended "+req.Endpoint)
	}()
	return &pluginapi.Empty{}, nil
}

func (r *registrar) registered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, req := range r.reqs {
		out[req.ResourceName]++
	}
	return out
}

// stop ends the registrar and its connections, as a kubelet that stops.
func (r *registrar) stop() {
	r.srv.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

// startRegistrar listens on dir/kubelet.sock, as a (re)starting kubelet does.
func startRegistrar(t testing.TB, dir string) *registrar {
	t.Helper()
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	r := &registrar{dir: dir, srv: grpc.NewServer(), held: map[string]bool{}}
	pluginapi.RegisterRegistrationServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.stop)
	return r
}

const poolsJSON = `{"resourceList":[
	{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"],"needVhostNet":true},"additionalInfo":{"*":{"token":"3e49"}}},
	{"resourceName":"rdma","resourcePrefix":"mellanox.com","excludeTopology":true,"selectors":{"isRdma":true}},
	{"resourceName":"net","selectors":{"drivers":["iavf"]}}]}`

type shim struct {
	allocs map[string]int // by resource, from Config.OnAllocate
	mu     sync.Mutex
	m      *Manager
	dir    string
	kube   *registrar
	h      *simhost.Host
	inv    *discovery.Inventory
	cfg    *classic.Config
	root   string
}

// newShim serves resources from an e810 (VFs 6 and 7 on vfio-pci, NUMA 0)
// and a ConnectX-6 Dx (4 RDMA VFs, NUMA 1) under the pools above.
func newShim(t testing.TB, cdi bool, resources ...string) *shim {
	t.Helper()
	return newShimWith(t, shimOptions{pools: poolsJSON, cdi: cdi}, resources...)
}

// shimOptions vary newShimWith's shim: its classic config, --legacy-cdi,
// and the device health it reports (nil: always Healthy).
type shimOptions struct {
	pools  string
	cdi    bool
	health func(*discovery.Device) string
}

// newShimWith is newShim on the same host, with those options.
func newShimWith(t testing.TB, o shimOptions, resources ...string) *shim {
	t.Helper()
	h, root := simhosttest.NewProfileHost(t, "e810", "cx6dx")
	// Short, and not under the test's name: Unix socket paths are limited
	// to 108 bytes.
	dir, err := os.MkdirTemp("", "dp")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg, err := classic.Parse([]byte(o.pools), "")
	require.NoError(t, err)
	require.NoError(t, CheckResources(resources, cfg))
	s := &shim{dir: dir, kube: startRegistrar(t, dir), h: h, cfg: cfg, root: root, allocs: map[string]int{}}
	s.m = New(Config{DriverName: "sriov.dra.dev", Dir: dir, Resources: resources, Host: h, DevInfoDir: filepath.Join(root, "devinfo"),
		CDI: o.cdi, CDIRoot: filepath.Join(root, "cdi"), PollInterval: 20 * time.Millisecond, Health: o.health, OnAllocate: func(resource string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.allocs[resource]++
		}})
	s.update(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.m.Run(ctx)
	return s
}

func (s *shim) update(t testing.TB) {
	t.Helper()
	inv, err := discovery.Discover(context.Background(), s.h)
	require.NoError(t, err)
	pools, err := selector.Select(s.cfg, inv)
	require.NoError(t, err)
	s.inv = inv
	s.m.Update(context.Background(), inv, pools)
}

// socket is the resource's socket now, once it has one.
func (s *shim) socket(t testing.TB, resource string) string {
	t.Helper()
	var sock string
	require.Eventually(t, func() bool {
		s.m.mu.Lock()
		r := s.m.resources[resource]
		s.m.mu.Unlock()
		if r == nil || !r.serving() {
			return false
		}
		sock = r.socket()
		return true
	}, 5*time.Second, 10*time.Millisecond, "%s served", resource)
	return sock
}

// client connects to a resource's socket, as the kubelet does.
func (s *shim) client(t testing.TB, resource string) pluginapi.DevicePluginClient {
	t.Helper()
	sock := s.socket(t, resource)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

func TestRegistersEachResource(t *testing.T) {
	s := newShim(t, false, All)
	require.Eventually(t, func() bool { return len(s.kube.registered()) == 3 }, 5*time.Second, 10*time.Millisecond)
	s.kube.mu.Lock()
	for _, req := range s.kube.reqs {
		assert.Equal(t, "v1beta1", req.Version)
		assert.Equal(t, socketName("sriov.dra.dev", req.ResourceName, "", 0), req.Endpoint)
		assert.True(t, req.Options.GetPreferredAllocationAvailable)
		st, err := os.Stat(filepath.Join(s.dir, req.Endpoint))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "sockets are 0600")
	}
	s.kube.mu.Unlock()
	assert.True(t, s.m.Serves("intel.com/dpdk"))
	assert.Equal(t, map[string]int{"intel.com/dpdk": 1, "mellanox.com/rdma": 1, "intel.com/net": 1}, s.kube.registered())
}

func TestListAndWatch(t *testing.T) {
	s := newShim(t, false, "intel.com/dpdk", "mellanox.com/rdma")
	stream, err := s.client(t, "intel.com/dpdk").ListAndWatch(context.Background(), &pluginapi.Empty{})
	require.NoError(t, err)
	first, err := stream.Recv()
	require.NoError(t, err)
	numa0 := &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: 0}}}
	require.Len(t, first.Devices, 2)
	for i, id := range []string{"0000:3b:02.6", "0000:3b:02.7"} {
		assert.Equal(t, id, first.Devices[i].ID)
		assert.Equal(t, pluginapi.Healthy, first.Devices[i].Health)
		assert.Equal(t, numa0.String(), first.Devices[i].Topology.String())
	}
	rdma, err := s.client(t, "mellanox.com/rdma").ListAndWatch(context.Background(), &pluginapi.Empty{})
	require.NoError(t, err)
	got, err := rdma.Recv()
	require.NoError(t, err)
	require.Len(t, got.Devices, 4)
	assert.Nil(t, got.Devices[0].Topology, "excludeTopology: no NUMA node")

	// A VF rebound to vfio-pci joins the dpdk pool: a new list is sent.
	_, err = s.h.BindDriver("0000:3b:02.0", "vfio-pci")
	require.NoError(t, err)
	s.update(t)
	next, err := stream.Recv()
	require.NoError(t, err)
	assert.Len(t, next.Devices, 3)
}

func TestAllocate(t *testing.T) {
	s := newShim(t, false, "intel.com/dpdk")
	c := s.client(t, "intel.com/dpdk")
	resp, err := c.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:3b:02.7", "0000:3b:02.6"}}}})
	require.NoError(t, err)
	require.Len(t, resp.ContainerResponses, 1)
	cr := resp.ContainerResponses[0]
	// The simulator numbers IOMMU groups as the kernel does: the two root
	// ports' bridges (0, 1), the three PFs (2-4), then the VFs in order:
	// ens1f0's VFs 0-7 are groups 5-12, so VFs 6 and 7 are 11 and 12.
	assert.Equal(t, map[string]string{
		"PCIDEVICE_INTEL_COM_DPDK": "0000:3b:02.7,0000:3b:02.6",
		"PCIDEVICE_INTEL_COM_DPDK_INFO": `{"0000:3b:02.6":{"extra":{"token":"3e49"},"generic":{"deviceID":"0000:3b:02.6"},"vfio":{"dev-mount":"/dev/vfio/11","mount":"/dev/vfio/vfio"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}},` +
			`"0000:3b:02.7":{"extra":{"token":"3e49"},"generic":{"deviceID":"0000:3b:02.7"},"vfio":{"dev-mount":"/dev/vfio/12","mount":"/dev/vfio/vfio"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"}}}`,
	}, cr.Envs)
	var paths []string
	for _, d := range cr.Devices {
		assert.Equal(t, "rw", d.Permissions)
		assert.Equal(t, filepath.Join(s.root, "dev", d.ContainerPath[len("/dev/"):]), d.HostPath)
		paths = append(paths, d.ContainerPath)
	}
	assert.Equal(t, []string{"/dev/vfio/vfio", "/dev/vfio/12", "/dev/vhost-net", "/dev/net/tun", "/dev/vfio/vfio", "/dev/vfio/11", "/dev/vhost-net", "/dev/net/tun"}, paths)
	info, err := os.ReadFile(filepath.Join(s.root, "devinfo", "intel.com-dpdk-0000:3b:02.6-device.json"))
	require.NoError(t, err)
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(info, &parsed))
	assert.Equal(t, "/dev/vhost-net", parsed["pci"].(map[string]any)["vhost-net"])

	_, err = c.Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:3b:02.6"}}, {DevicesIds: []string{"0000:3b:02.0"}}}})
	require.Error(t, err)
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, err.Error(), `resource intel.com/dpdk: unknown device ID "0000:3b:02.0"`)
	s.mu.Lock()
	assert.Equal(t, map[string]int{"intel.com/dpdk": 1}, s.allocs, "answered allocations counted, refused ones not")
	s.mu.Unlock()
}

func TestAllocateLegacyCDI(t *testing.T) {
	s := newShim(t, true, "intel.com/dpdk")
	spec := filepath.Join(s.root, "cdi", "sriov.dra.dev-net_legacy-intel-com-dpdk.json")
	require.Eventually(t, func() bool { _, err := os.Stat(spec); return err == nil }, 5*time.Second, 10*time.Millisecond)
	resp, err := s.client(t, "intel.com/dpdk").Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:3b:02.6"}}}})
	require.NoError(t, err)
	cr := resp.ContainerResponses[0]
	assert.Empty(t, cr.Devices, "the nodes come from the CDI spec, not twice")
	require.Len(t, cr.CdiDevices, 1)
	assert.Equal(t, "sriov.dra.dev/net=legacy-intel-com-dpdk-pci-0000-3b-02-6", cr.CdiDevices[0].Name)
	assert.Contains(t, cr.Envs, "PCIDEVICE_INTEL_COM_DPDK")
	b, err := os.ReadFile(spec)
	require.NoError(t, err)
	var parsed struct {
		Devices []struct {
			Name string `json:"name"`
		} `json:"devices"`
		ContainerEdits map[string]any `json:"containerEdits"`
	}
	require.NoError(t, json.Unmarshal(b, &parsed))
	require.Len(t, parsed.Devices, 2)
	assert.Equal(t, "legacy-intel-com-dpdk-pci-0000-3b-02-6", parsed.Devices[0].Name)
	assert.Empty(t, parsed.ContainerEdits, "no variables in the static spec: they come per allocation")
}

// TestKubeletRestartReRegisters: a restarting kubelet removes every socket
// in its directory and makes a new kubelet.sock; each resource comes back.
func TestKubeletRestartReRegisters(t *testing.T) {
	s := newShim(t, false, All)
	require.Eventually(t, func() bool { return len(s.kube.registered()) == 3 }, 5*time.Second, 10*time.Millisecond)
	for round := range 3 {
		s.kube.stop()
		entries, err := os.ReadDir(s.dir)
		require.NoError(t, err)
		for _, e := range entries {
			require.NoError(t, os.Remove(filepath.Join(s.dir, e.Name())))
		}
		assert.False(t, s.m.Registered(), "the sockets are gone: not ready")
		restarted := time.Now()
		s.kube = startRegistrar(t, s.dir)
		require.Eventually(t, func() bool { return len(s.kube.registered()) == 3 }, 2*time.Second, 5*time.Millisecond, "round %d", round)
		// The kubelet hears the registration before the shim's call returns.
		require.Eventually(t, s.m.Registered, 2*time.Second, 5*time.Millisecond, "round %d: registered with the kubelet, so ready", round)
		t.Logf("round %d: all resources registered %s after the kubelet's socket appeared", round, time.Since(restarted).Round(time.Millisecond))
		_, err = s.client(t, "intel.com/net").GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
		require.NoError(t, err, "the restarted server answers")
	}
}

// TestPoolRemovedStopsItsServer: a config reload without a pool stops that
// resource only; adding it back serves it again.
func TestPoolRemovedStopsItsServer(t *testing.T) {
	s := newShim(t, false, All)
	require.Eventually(t, func() bool { return len(s.kube.registered()) == 3 }, 5*time.Second, 10*time.Millisecond)
	full := s.cfg
	var err error
	s.cfg, err = classic.Parse([]byte(`{"resourceList":[{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}},{"resourceName":"net","selectors":{"drivers":["iavf"]}}]}`), "")
	require.NoError(t, err)
	s.update(t)
	rdmaSock := filepath.Join(s.dir, socketName("sriov.dra.dev", "mellanox.com/rdma", "", 0))
	_, err = os.Stat(rdmaSock)
	assert.True(t, os.IsNotExist(err), "the removed pool's socket is gone")
	_, err = os.Stat(filepath.Join(s.dir, socketName("sriov.dra.dev", "intel.com/net", "", 0)))
	assert.NoError(t, err, "the others keep serving")
	s.cfg = full
	s.update(t)
	require.Eventually(t, func() bool { return s.kube.registered()["mellanox.com/rdma"] == 2 }, 5*time.Second, 10*time.Millisecond)
}

func TestCheckResources(t *testing.T) {
	cfg, err := classic.Parse([]byte(poolsJSON), "")
	require.NoError(t, err)
	assert.NoError(t, CheckResources([]string{"intel.com/dpdk", "mellanox.com/rdma"}, cfg))
	assert.NoError(t, CheckResources([]string{All}, cfg))
	assert.NoError(t, CheckResources(nil, nil))
	err = CheckResources([]string{"intel.com/dpdk", "intel.com/rdma", "dpdk"}, cfg)
	assert.ErrorContains(t, err, `--legacy-resources: "intel.com/rdma" is not a resource of the config`)
	assert.ErrorContains(t, err, `"dpdk" is not a resource`)
	assert.ErrorContains(t, CheckResources([]string{All}, nil), "--legacy-resources needs --config")
}

// BenchmarkAllocate: one device, as the kubelet asks at container start.
func BenchmarkAllocate(b *testing.B) {
	s := newShim(b, false, "intel.com/dpdk")
	c := s.client(b, "intel.com/dpdk")
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"0000:3b:02.6"}}}}
	var durations []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Allocate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

// BenchmarkRegisterTen: ten resources served and registered with the kubelet.
func BenchmarkRegisterTen(b *testing.B) {
	var pools []string
	for i := range 10 {
		pools = append(pools, fmt.Sprintf(`{"resourceName":"pool%d","selectors":{"pciAddresses":["0000:3b:02.%d"]}}`, i, i%8))
	}
	cfg, err := classic.Parse([]byte(`{"resourceList":[`+join(pools)+`]}`), "")
	if err != nil {
		b.Fatal(err)
	}
	h, _ := simhosttest.NewProfileHost(b, "e810")
	inv, err := discovery.Discover(context.Background(), h)
	if err != nil {
		b.Fatal(err)
	}
	sel, err := selector.Select(cfg, inv)
	if err != nil {
		b.Fatal(err)
	}
	var durations []time.Duration
	for b.Loop() {
		dir, err := os.MkdirTemp("", "dp")
		if err != nil {
			b.Fatal(err)
		}
		kube := startRegistrar(b, dir)
		m := New(Config{DriverName: "sriov.dra.dev", Dir: dir, Resources: []string{All}, Host: h, DevInfoDir: dir, PollInterval: time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		m.Update(ctx, inv, sel)
		go m.Run(ctx)
		for len(kube.registered()) < 10 { // pools 8 and 9 are empty (0 and 1 took their VFs): registered all the same
			time.Sleep(100 * time.Microsecond)
		}
		durations = append(durations, time.Since(start))
		cancel()
		kube.stop()
		os.RemoveAll(dir)
	}
	reportPercentiles(b, durations)
}

func reportPercentiles(b *testing.B, durations []time.Duration) {
	slices.Sort(durations)
	pct := func(q float64) float64 {
		return float64(durations[int(q*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func join(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
