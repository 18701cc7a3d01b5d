package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The built binary runs a lab until SIGINT or SIGTERM, then closes every
// listener and exits 0.
func TestLabStopsCleanlyOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "appnet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	labFile := filepath.Join(t.TempDir(), "lab.toml")
	os.WriteFile(labFile, []byte("[host.sig]\naddress = \"127.0.0.51\"\n[host.sig.uppercase]\ntcp = 12200\nudp = 12200\n"), 0o644)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "lab", labFile)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() && !strings.Contains(sc.Text(), "Ctrl-C stops the lab") {
			}
			if c, err := net.Dial("tcp", "127.0.0.51:12200"); err != nil {
				t.Fatalf("lab not serving: %v", err)
			} else {
				c.Close()
			}
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("lab did not stop within 15s of the signal")
			}
			// Every listener is closed: the ports can be bound again.
			ln, err := net.Listen("tcp", "127.0.0.51:12200")
			if err != nil {
				t.Fatalf("TCP port still taken after exit: %v", err)
			}
			ln.Close()
			pc, err := net.ListenPacket("udp", "127.0.0.51:12200")
			if err != nil {
				t.Fatalf("UDP port still taken after exit: %v", err)
			}
			pc.Close()
		})
	}
}
