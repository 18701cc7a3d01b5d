package chord

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"appnet/trace"
)

// Peer is a node on real sockets: a Node, the Server that answers for it
// on a TCP listener, and the TCPTransport it calls others with.
type Peer struct {
	Node      *Node
	Server    *Server
	Transport *TCPTransport

	ln      net.Listener
	wg      sync.WaitGroup
	serveMu sync.Mutex
	err     error
}

// NewPeer makes a node listening on ln; its address is ln's. Call Start,
// then Join (or not, to found a ring).
func NewPeer(ln net.Listener, cfg Config, host string, tr *trace.Tracer, logger *slog.Logger) (*Peer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = logger
	t := &TCPTransport{Host: host, Tracer: tr, Timeout: cfg.CallTimeout}
	// The node calls from its own IP, the one in its address, since the
	// nodes it calls check that a claimed address is the source.
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		t.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: a.IP}}
	}
	n, err := NewNode(ln.Addr().String(), cfg, t, SystemClock{})
	if err != nil {
		return nil, err
	}
	return &Peer{Node: n, Transport: t, ln: ln,
		Server: &Server{Handler: n, Host: host, Tracer: tr, Logger: logger,
			MaxConns: cfg.MaxConns, MaxConnsPerAddr: cfg.MaxConnsPerAddr}}, nil
}

// Start serves requests and starts the periodic maintenance.
func (p *Peer) Start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.Server.Serve(p.ln); err != nil && !errors.Is(err, ErrServerClosed) {
			p.serveMu.Lock()
			p.err = err
			p.serveMu.Unlock()
			p.Node.cfg.Logger.Error("chord server stopped", "err", err)
		}
	}()
	p.Node.Start()
}

// Join enters the ring through the node at addr.
func (p *Peer) Join(ctx context.Context, addr string) error { return p.Node.Join(ctx, addr) }

// Shutdown stops abruptly (to the ring, a failure): maintenance, server,
// connections.
func (p *Peer) Shutdown(ctx context.Context) error {
	p.Node.Stop()
	err := p.Server.Shutdown(ctx)
	p.wg.Wait()
	p.Transport.Close()
	return err
}

// Leave leaves the ring gracefully (keys to the successor, neighbours
// told), then shuts down.
func (p *Peer) Leave(ctx context.Context) error {
	err := p.Node.Leave(ctx)
	return errors.Join(err, p.Shutdown(ctx))
}
