package framework

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Gate is a TCP relay in front of the API server that can be shut, so that
// a client sees the API server as down (connections reset) and then back,
// while the real API server keeps running for everyone else.
type Gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
	wg     sync.WaitGroup
	// Kubeconfig is a copy of the cluster's that goes through the gate.
	Kubeconfig string
}

// NewGate starts a shut gate on loopback. Close it when done.
func (c *Cluster) NewGate(dir string) (*Gate, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	target := strings.TrimPrefix(c.APIServerURL(), "https://")
	g := &Gate{ln: ln, target: target, Kubeconfig: filepath.Join(dir, "gated-kubeconfig")}
	kc, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		ln.Close()
		return nil, err
	}
	gated := strings.Replace(string(kc), "https://"+target, "https://"+ln.Addr().String(), 1)
	if err := os.WriteFile(g.Kubeconfig, []byte(gated), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	g.wg.Go(g.serve)
	return g, nil
}

// Open lets connections through from now on.
func (g *Gate) Open() { g.open.Store(true) }

// Close stops the gate and waits for its connections to end.
func (g *Gate) Close() {
	g.ln.Close()
	g.wg.Wait()
}

func (g *Gate) serve() {
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			return
		}
		if !g.open.Load() {
			conn.Close() // the API server is "down"
			continue
		}
		g.wg.Go(func() { g.relay(conn) })
	}
}

func (g *Gate) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
}
