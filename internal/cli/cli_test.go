package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// leaves returns the path of every runnable command under root.
func leaves(root *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string(nil), path...), sub.Name())
			if !sub.HasSubCommands() {
				out = append(out, p)
			}
			walk(sub, p)
		}
	}
	walk(root, nil)
	return out
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	a := &app{}
	for _, path := range leaves(a.rootCommand()) {
		if path[0] == "help" {
			continue
		}
		re := regexp.MustCompile(`(?m)^  ` + strings.Join(path, " ") + ` +\S`)
		if !re.MatchString(out) {
			t.Errorf("help does not list %q on a line of its own:\n%s", strings.Join(path, " "), out)
		}
	}
	for _, flag := range []string{"--trace", "--log-level"} {
		if !strings.Contains(out, flag) {
			t.Errorf("help does not show %s", flag)
		}
	}
}

func TestEveryCommandHelpHasExample(t *testing.T) {
	for _, path := range leaves((&app{}).rootCommand()) {
		if path[0] == "help" {
			continue
		}
		code, out, _ := run(t, append(path, "-h")...)
		if code != ExitOK || !strings.Contains(out, "Example:\n  appnet ") || !strings.Contains(out, "Flags:") {
			t.Errorf("%s -h: exit %d, no example or flags:\n%s", strings.Join(path, " "), code, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"uppercase", "bogus"},
		{"uppercase", "send", "127.0.0.1:1"},
		{"uppercase", "send", "--nope", "a", "b"},
		{"uppercase", "serve"},
		{"--log-level", "loud", "lab", "--kinds"},
		{"lab", "a.toml", "b.toml"},
		{"lab", "--port-offset", "-5"},
		{"help", "bogus"},
	} {
		code, out, errs := run(t, args...)
		if code != ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, ExitUsage)
		}
		if out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "appnet: ") {
			t.Errorf("%q: want one line on stderr, got stdout %q stderr %q", args, out, errs)
		}
	}
}

func TestFailureExitCode(t *testing.T) {
	code, _, errs := run(t, "uppercase", "send", "--timeout", "1s", "127.0.0.1:1", "hello")
	if code != ExitFail || !strings.Contains(errs, "connection refused") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[host.a]\naddress = \"10.1.2.3\"\n"), 0o644)
	code, _, errs = run(t, "lab", bad)
	if code != ExitFail || !strings.Contains(errs, "bad.toml:2: ") || !strings.Contains(errs, "not in 127.0.0.0/8") {
		t.Errorf("bad lab file: exit %d, stderr %q", code, errs)
	}
}

// serve starts `appnet uppercase serve` and returns the TCP and UDP
// addresses it prints, and a function that stops it and returns its exit
// code and stderr.
func serve(t *testing.T, extra ...string) (tcp, udp string, stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	args := append([]string{"uppercase", "serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"}, extra...)
	go func() { done <- Main(ctx, args, &out, &errb) }()
	re := regexp.MustCompile(`serving (TCP|UDP) on (\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for tcp == "" || udp == "" {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve printed no addresses: %q %q", out.String(), errb.String())
		}
		for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
			if m[1] == "TCP" {
				tcp = m[2]
			} else {
				udp = m[2]
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return tcp, udp, func() (int, string) {
		cancel()
		return <-done, errb.String()
	}
}

// The demonstration: send prints HELLO over TCP and UDP, and
// --trace shows the C:/S: exchange on both sides.
func TestUppercaseSendAndServe(t *testing.T) {
	tcp, udp, stop := serve(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"tcp", []string{"--trace", "uppercase", "send", tcp, "hello"}},
		{"udp", []string{"--trace", "uppercase", "send", "--udp", udp, "hello"}},
	} {
		code, out, errs := run(t, tc.args...)
		if code != ExitOK || out != "HELLO\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, code, out, errs)
		}
		for _, want := range []string{"uppercase/" + tc.name + " 127.0.0.1:", "  C: hello\n", "  S: HELLO\n"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: trace lacks %q:\n%s", tc.name, want, errs)
			}
		}
	}
	code, _ := stop()
	if code != ExitOK {
		t.Errorf("serve exit %d after cancel", code)
	}
}

func TestServeTrace(t *testing.T) {
	tcp, _, stop := serve(t, "--trace", "--idle-timeout", "1m")
	if code, out, _ := run(t, "uppercase", "send", tcp, "traced"); code != ExitOK || out != "TRACED\n" {
		t.Fatalf("send: %d %q", code, out)
	}
	// The server notes the client's close after the client has its answer.
	time.Sleep(100 * time.Millisecond)
	_, errs := stop()
	for _, want := range []string{"*: connection opened", "C: traced", "S: TRACED"} {
		if !strings.Contains(errs, want) {
			t.Errorf("server trace lacks %q:\n%s", want, errs)
		}
	}
}

// lab --check on a lab file of its own (the default lab's addresses may be
// in use by the lab package's tests, which run at the same time).
func TestLabCheck(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lab.toml")
	os.WriteFile(file, []byte(`
[host.one]
address = "127.0.0.41"
[host.one.uppercase]
tcp = 12100
udp = 12100
`), 0o644)
	code, out, errs := run(t, "--trace", "lab", "--check", file)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{`(?m)^one +127\.0\.0\.41 +uppercase/tcp +127\.0\.0\.41:12100$`, `(?m)^one +uppercase/udp 127.0.0.41:12100 +OK `, `(?m)^checks: 2 passed, 0 failed$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}
	// The lab's transcript names time and host.
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3} one uppercase/tcp .* C: appnet lab check of one$`).MatchString(errs) {
		t.Errorf("lab trace:\n%s", errs)
	}
}

func TestLabPrintDefault(t *testing.T) {
	code, out, _ := run(t, "lab", "--print-default")
	if code != ExitOK || !strings.Contains(out, "[host.upper1]") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, out, _ = run(t, "lab", "--kinds")
	if code != ExitOK || !strings.Contains(out, "uppercase") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
