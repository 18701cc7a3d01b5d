package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// appnet builds the binary once per test run (without the race detector,
// whatever the tests run with: the experiment measures time).
func appnet(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "appnet-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "appnet")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// The built binary runs a lab until SIGINT or SIGTERM, then closes every
// listener and exits 0.
func TestLabStopsCleanlyOnSignal(t *testing.T) {
	bin := appnet(t)
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

// `appnet experiment distribution --quick`, as the issue asks of CI: every
// measured time is at least its bound (below it, the shaping leaks), and
// P2P at N = 8 is within 1.5 times its bound. The ratio is a measurement
// on a shared machine, so a run above 1.5 is tried once more (the bound
// check is never retried); both runs are logged.
func TestExperimentQuick(t *testing.T) {
	bin := appnet(t)
	var last float64
	for attempt := 1; attempt <= 2; attempt++ {
		dir := t.TempDir()
		out, err := exec.Command(bin, "--log-level", "warn", "experiment", "distribution", "--quick", "-o", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("experiment: %v\n%s", err, out)
		}
		t.Logf("attempt %d:\n%s", attempt, out)
		f, err := os.Open(filepath.Join(dir, "distribution.csv"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) != 7 {
			t.Fatalf("distribution.csv: %d rows, %v", len(rows), err)
		}
		for _, name := range []string{"distribution.png", "distribution.svg"} {
			if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() < 1000 {
				t.Errorf("%s: %v", name, err)
			}
		}
		last = 0
		for _, r := range rows[1:] {
			n, mode := r[0], r[1]
			measured, _ := strconv.ParseFloat(r[3], 64)
			bound, _ := strconv.ParseFloat(r[4], 64)
			ratio, _ := strconv.ParseFloat(r[7], 64)
			if measured < bound {
				t.Errorf("N = %s %s: measured %.3fs is below the bound %.3fs: the shaping leaks", n, mode, measured, bound)
			}
			if n == "8" && mode == "p2p" {
				last = ratio
			}
		}
		if last > 0 && last <= 1.5 {
			return
		}
	}
	t.Errorf("P2P at N = 8: measured/bound = %.3f, want at most 1.5", last)
}
