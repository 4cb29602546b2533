// Package nriplugin connects the driver to the container runtime's Node
// Resource Interface (containerd's NRI) and turns pod sandbox events into
// calls of a Handler: a sandbox is created, stopped or removed, or the
// runtime lists the sandboxes that exist when the plugin (re)connects.
package nriplugin

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"k8s.io/klog/v2"
)

// Sandbox is a pod sandbox as the runtime reports it.
type Sandbox struct {
	ID        string
	PodUID    string
	Namespace string
	Name      string
	// NetNS is the path of the sandbox's network namespace ("" for a
	// sandbox in the host's network).
	NetNS string
}

// Handler acts on sandbox events; an error from SandboxCreated fails the
// sandbox's creation with its message.
type Handler interface {
	SandboxCreated(ctx context.Context, sb Sandbox) error
	SandboxStopped(ctx context.Context, sb Sandbox) error
	// SandboxesExist is called on every (re)connection with all sandboxes
	// the runtime has, so that what belonged to one that went away while
	// the plugin was not connected can be repaired.
	SandboxesExist(ctx context.Context, all []Sandbox)
}

// Config selects the runtime's socket and how the plugin is known to it.
type Config struct {
	Socket string
	// Name and Index identify the plugin in the runtime ("10-sriov-dra");
	// the index orders plugins.
	Name  string
	Index string
	// OnConnected and OnDisconnected report the connection (metrics,
	// readiness); either may be nil.
	OnConnected    func()
	OnDisconnected func()
}

// Plugin is the NRI plugin; Connected tells whether it is registered with
// the runtime and has received the sandbox list.
type Plugin struct {
	cfg       Config
	handler   Handler
	connected atomic.Bool
	// logger is Run's, for the runtime's calls (set before any comes).
	logger klog.Logger
}

// New returns a plugin that calls h.
func New(cfg Config, h Handler) *Plugin {
	return &Plugin{cfg: cfg, handler: h}
}

// Connected reports whether the runtime currently delivers events.
func (p *Plugin) Connected() bool { return p.connected.Load() }

// Reconnect delays: the first retry comes quickly (a runtime restart takes
// about a second), later ones back off.
const (
	minRetry = 500 * time.Millisecond
	maxRetry = 10 * time.Second
)

// Run connects to the runtime and serves its events until ctx ends,
// connecting again whenever the runtime goes away (a containerd restart).
func (p *Plugin) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("nri")
	ctx = klog.NewContext(ctx, logger)
	p.logger = logger
	delay := minRetry
	for ctx.Err() == nil {
		start := time.Now()
		err := p.serve(ctx)
		p.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if p.cfg.OnDisconnected != nil {
			p.cfg.OnDisconnected()
		}
		if time.Since(start) > maxRetry {
			delay = minRetry
		}
		logger.Error(err, "Not connected to the runtime's NRI socket; retrying", "socket", p.cfg.Socket, "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetry)
	}
}

// serve runs one connection until it ends.
func (p *Plugin) serve(ctx context.Context) error {
	s, err := stub.New(p, stub.WithPluginName(p.cfg.Name), stub.WithPluginIdx(p.cfg.Index),
		stub.WithSocketPath(p.cfg.Socket), stub.WithLogger(nriLogger{}))
	if err != nil {
		return fmt.Errorf("NRI plugin: %w", err)
	}
	err = s.Run(ctx)
	if err == nil {
		err = errors.New("connection closed")
	}
	return err
}

// Synchronize is the runtime's list of what exists, sent once per connection.
func (p *Plugin) Synchronize(ctx context.Context, pods []*api.PodSandbox, _ []*api.Container) ([]*api.ContainerUpdate, error) {
	all := make([]Sandbox, 0, len(pods))
	for _, pod := range pods {
		all = append(all, sandboxOf(pod))
	}
	p.handler.SandboxesExist(p.context(ctx), all)
	klog.FromContext(p.context(ctx)).Info("Connected to the runtime", "socket", p.cfg.Socket, "sandboxes", len(all))
	p.connected.Store(true)
	if p.cfg.OnConnected != nil {
		p.cfg.OnConnected()
	}
	return nil, nil
}

// RunPodSandbox is called after the sandbox and its network namespace are
// made, before any container starts.
func (p *Plugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.handler.SandboxCreated(p.context(ctx), sandboxOf(pod))
}

// StopPodSandbox is called before the sandbox's network namespace is
// removed.
func (p *Plugin) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.handler.SandboxStopped(p.context(ctx), sandboxOf(pod))
}

// RemovePodSandbox comes after StopPodSandbox, or alone when a sandbox
// whose creation failed is cleaned up.
func (p *Plugin) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.handler.SandboxStopped(p.context(ctx), sandboxOf(pod))
}

// context carries the plugin's logger into a runtime call's context.
func (p *Plugin) context(ctx context.Context) context.Context {
	return klog.NewContext(ctx, p.logger)
}

func sandboxOf(pod *api.PodSandbox) Sandbox {
	sb := Sandbox{ID: pod.GetId(), PodUID: pod.GetUid(), Namespace: pod.GetNamespace(), Name: pod.GetName()}
	for _, ns := range pod.GetLinux().GetNamespaces() {
		if ns.GetType() == "network" {
			sb.NetNS = ns.GetPath()
		}
	}
	return sb
}

// nriLogger sends the NRI library's messages to klog.
type nriLogger struct{}

func (nriLogger) Debugf(ctx context.Context, format string, args ...any) {
	klog.FromContext(ctx).V(5).Info(fmt.Sprintf(format, args...))
}

func (nriLogger) Infof(ctx context.Context, format string, args ...any) {
	klog.FromContext(ctx).V(2).Info(fmt.Sprintf(format, args...))
}

func (nriLogger) Warnf(ctx context.Context, format string, args ...any) {
	klog.FromContext(ctx).Info("Warning: " + fmt.Sprintf(format, args...))
}

func (nriLogger) Errorf(ctx context.Context, format string, args ...any) {
	klog.FromContext(ctx).Error(nil, fmt.Sprintf(format, args...))
}
