// Package testnet holds helpers for appnet's tests: loopback listeners and
// the gate for interop tests that need a real, independent program.
package testnet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where every tool the
// interop tests need has been installed by `make test`.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// NeedTool returns the path of the program name. Where it is missing, the
// test is skipped with a message on a developer's machine, and FAILS in CI,
// because CI installs every tool first (scripts/install-tools).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, "%s is not installed (make tools, as root, installs it; see scripts/tools.txt)", name)
	return ""
}

// Missing ends a test that cannot run here for the reason given (a tool,
// root, a kernel feature): it is skipped on a developer's machine and
// FAILS under CI=true, where everything the tests need is provided, so
// that no test silently checks nothing in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("testnet: %s, and CI=true", why)
	}
	t.Skipf("testnet: %s", why)
}

// ListenTCP returns a TCP listener on 127.0.0.1 at a free port, closed when
// the test ends.
func ListenTCP(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: listen tcp: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenUDP returns a UDP socket on 127.0.0.1 at a free port, closed when
// the test ends.
func ListenUDP(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: listen udp: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// ListenBoth opens a UDP socket and a TCP listener on the same free port
// of 127.0.0.1, both closed when the test ends: what a DNS server serves.
// A free UDP port's TCP twin may be held by another program, so it tries
// a few ports. listenPacket opens the UDP socket (nil: net.ListenPacket).
func ListenBoth(t testing.TB, listenPacket func(addr string) (net.PacketConn, error)) (net.PacketConn, net.Listener) {
	t.Helper()
	if listenPacket == nil {
		listenPacket = func(addr string) (net.PacketConn, error) { return net.ListenPacket("udp", addr) }
	}
	for range 50 {
		pc, err := listenPacket("127.0.0.1:0")
		if err != nil {
			t.Fatalf("testnet: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			t.Cleanup(func() { pc.Close(); ln.Close() })
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("testnet: no port free for both UDP and TCP")
	return nil, nil
}
