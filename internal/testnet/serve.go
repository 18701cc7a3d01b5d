package testnet

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// Server is a server Serve can run: the shape of http.Server and of the
// project's own servers.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve runs s on ln and returns ln's address. When the test ends it shuts
// s down (5 s at most) and fails the test if Shutdown fails or Serve
// returns anything but closed, the server's ErrServerClosed.
func Serve(t testing.TB, s Server, ln net.Listener, closed error) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, closed) {
			t.Errorf("Serve returned %v, want %v", err, closed)
		}
	})
	return ln.Addr().String()
}
