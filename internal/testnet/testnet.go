// Package testnet holds helpers for appnet's tests: loopback listeners and
// the gate for interop tests that need a real, independent program.
package testnet

import (
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
	if InCI() {
		t.Fatalf("testnet: %s is not installed, and CI=true: make test should have installed it (see scripts/tools.txt)", name)
	}
	t.Skipf("testnet: %s is not installed; `make tools` (as root) installs it", name)
	return ""
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
