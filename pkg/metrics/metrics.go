// Package metrics holds the daemon's Prometheus metrics and serves them with
// its health endpoints: /metrics, /healthz (alive) and /readyz (serving).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/sriov-dra/sriov-dra/pkg/unixsock"
)

const namespace = "sriov_dra"

// The reason label of the prepare and unprepare errors counters. Each one a
// call can fail with is exposed from the start, at 0, so that the first
// failure of a reason is an increase a rule sees (a series that appears at
// 1 has none).
const (
	// ReasonClaim is one claim of a call that failed.
	ReasonClaim = "claim"
	// The rest are whole calls that failed, by why.
	ReasonCheckpoint = "checkpoint"
	ReasonDiscovery  = "discovery"
	ReasonBind       = "bind"
	ReasonCanceled   = "canceled"
	ReasonOther      = "other"
)

var (
	prepareReasons   = []string{ReasonClaim, ReasonCheckpoint, ReasonDiscovery, ReasonBind, ReasonCanceled, ReasonOther}
	unprepareReasons = []string{ReasonClaim, ReasonCheckpoint, ReasonCanceled, ReasonOther}
)

// Metrics are the daemon's measurements, in a registry of their own.
type Metrics struct {
	registry *prometheus.Registry

	DevicesPublished   *prometheus.GaugeVec
	DevicesUnhealthy   prometheus.Gauge
	PrepareDuration    prometheus.Histogram
	UnprepareDuration  prometheus.Histogram
	PrepareErrors      *prometheus.CounterVec
	UnprepareErrors    *prometheus.CounterVec
	Rescans            *prometheus.CounterVec
	RescanDuration     prometheus.Histogram
	SliceWrites        *prometheus.CounterVec
	Rebinds            prometheus.Counter
	LegacyAllocations  *prometheus.CounterVec
	CheckpointReadable prometheus.Gauge
	NRIConnected       prometheus.Gauge
	NetdevMoves        *prometheus.CounterVec
	ConfigWarnings     prometheus.Gauge

	// slicesOnce registers sriov_dra_resourceslices_synced (WatchSlices).
	slicesOnce sync.Once
}

// New registers the metrics in a registry of their own, with the Go runtime
// and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &Metrics{
		registry: reg,
		DevicesPublished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "devices_published",
			Help: "Devices in the node's ResourceSlices, by device type and classic pool (\"\" for none)."}, []string{"type", "pool"}),
		DevicesUnhealthy: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "devices_unhealthy",
			Help: "Devices whose PF link is down."}),
		PrepareDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "prepare_duration_seconds",
			Help: "Time of each NodePrepareResources call.", Buckets: latency}),
		UnprepareDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "unprepare_duration_seconds",
			Help: "Time of each NodeUnprepareResources call.", Buckets: latency}),
		PrepareErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "prepare_errors_total",
			Help: "Failed prepares, by reason: claim (one claim of a call failed), or checkpoint, discovery, bind, canceled (the whole call failed)."}, []string{"reason"}),
		UnprepareErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "unprepare_errors_total",
			Help: "Failed unprepares, by reason: claim (one claim of a call failed), or checkpoint, canceled (the whole call failed)."}, []string{"reason"}),
		Rescans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "rescans_total",
			Help: "Rediscoveries of the host, by what caused them (event or periodic)."}, []string{"cause"}),
		RescanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "rescan_duration_seconds",
			Help: "Time of each rediscovery, pools and slices included.", Buckets: latency}),
		SliceWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "resourceslice_writes_total",
			Help: "ResourceSlice API writes, by verb."}, []string{"verb"}),
		Rebinds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "driver_rebinds_total",
			Help: "Devices bound to another kernel driver for a claim."}),
		LegacyAllocations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "legacy_allocations_total",
			Help: "Device-plugin Allocate calls answered, by classic resource."}, []string{"resource"}),
		CheckpointReadable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "checkpoint_readable",
			Help: "1 while the prepared-claims checkpoint reads back, 0 once it could not."}),
		NRIConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "nri_connected",
			Help: "1 while the container runtime's NRI delivers pod sandbox events (--nri)."}),
		NetdevMoves: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "netdev_moves_total",
			Help: "Netdevs moved into pods (to=pod) and back (to=host), and failed moves (result=error)."}, []string{"to", "result"}),
		ConfigWarnings: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_warnings",
			Help: "Fields of the classic config in force that were ignored (unknown or misspelt): each widens or changes a pool in silence."}),
	}
	reg.MustRegister(m.DevicesPublished, m.DevicesUnhealthy, m.PrepareDuration, m.UnprepareDuration, m.PrepareErrors,
		m.UnprepareErrors, m.Rescans, m.RescanDuration, m.SliceWrites, m.Rebinds, m.LegacyAllocations, m.CheckpointReadable,
		m.NRIConnected, m.NetdevMoves, m.ConfigWarnings)
	m.CheckpointReadable.Set(1)
	for _, r := range prepareReasons {
		m.PrepareErrors.WithLabelValues(r)
	}
	for _, r := range unprepareReasons {
		m.UnprepareErrors.WithLabelValues(r)
	}
	return m
}

// WatchSlices exposes sriov_dra_resourceslices_synced: 1 while the API held
// the ResourceSlices the driver last asked for at its writer's last look, 0
// while they are still to be written or writing them fails. synced is asked
// at each scrape. Without a call (nothing published: the legacy shim alone)
// the metric is not exposed. Only the first call counts.
func (m *Metrics) WatchSlices(synced func() bool) {
	m.slicesOnce.Do(func() {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "resourceslices_synced",
			Help: "1 while the API holds the ResourceSlices the driver last asked for, 0 while they are still to be written or writing them fails."},
			func() float64 { return boolValue(synced()) }))
	})
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Checks answer the health endpoints: nil is healthy, an error says why not.
type Checks struct {
	Alive func() error
	Ready func() error
}

// ServeConfig says where the endpoints are served.
type ServeConfig struct {
	// Addr (host:port) serves /metrics, /healthz and /readyz, with
	// SO_REUSEPORT so that the two instances of a rolling update on the host
	// network can both listen. Empty: off.
	Addr string
	// Socket serves the same on a Unix socket (0600) that belongs to one
	// instance: the DaemonSet's probes ask there. Empty: off.
	Socket string
	// Profiling adds Go's /debug/pprof/ endpoints, on the socket only (local
	// and root-only, never on the network).
	Profiling bool
}

// Serve serves the endpoints until ctx ends.
func (m *Metrics) Serve(ctx context.Context, cfg ServeConfig, checks Checks) error {
	addr, sock := cfg.Addr, cfg.Socket
	mux := http.NewServeMux()
	check := func(fn func() error) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			if fn != nil {
				if err := fn(); err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("/healthz", check(checks.Alive))
	mux.HandleFunc("/readyz", check(checks.Ready))
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	// /readyz's answer as a metric, asked at each scrape: alerts see a
	// driver that is up but not ready.
	if err := m.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "ready",
		Help: "1 while /readyz passes (registered with the kubelet, devices published, NRI connected where enabled), 0 while it fails."},
		func() float64 { return boolValue(checks.Ready == nil || checks.Ready() == nil) })); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var tcp, unix net.Listener
	if addr != "" {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", addr, err)
		}
		tcp = ln
	}
	if sock != "" {
		if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
			return err
		}
		// Never over another process's socket, and removed on shutdown
		// only while it is still ours.
		ln, err := unixsock.Listen(ctx, sock, 0o600)
		if err != nil {
			return fmt.Errorf("health socket: %w", err)
		}
		unix = ln
	}
	var servers []*http.Server
	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				klog.FromContext(ctx).Error(err, "Metrics server failed", "addr", ln.Addr())
			}
		}()
	}
	if tcp != nil {
		serve(tcp, mux)
	}
	if unix != nil {
		h := http.Handler(mux)
		if cfg.Profiling {
			local := http.NewServeMux()
			local.Handle("/", mux)
			local.HandleFunc("/debug/pprof/", pprof.Index)
			local.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			local.HandleFunc("/debug/pprof/profile", pprof.Profile)
			local.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			local.HandleFunc("/debug/pprof/trace", pprof.Trace)
			h = local
		}
		serve(unix, h)
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(shutdown)
		}
	}()
	return nil
}
