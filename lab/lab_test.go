package lab

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/trace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDefaultParses(t *testing.T) {
	f := Default()
	if len(f.Hosts) < 2 {
		t.Fatalf("default lab has %d hosts", len(f.Hosts))
	}
	for _, h := range f.Hosts {
		if len(h.Services) == 0 {
			t.Errorf("host %s runs nothing", h.Name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"syntax", "[host.a]\naddress = \n", 2, "expected value"},
		{"no hosts", "# nothing\n", 0, "no hosts"},
		{"no address", "[host.a]\n[host.a.uppercase]\ntcp = 1\n", 1, `host "a" has no address`},
		{"bad address", "[host.a]\naddress = \"not-an-ip\"\n", 2, "not an IP address"},
		{"not loopback", "\n[host.a]\naddress = \"10.0.0.1\"\n", 3, "not in 127.0.0.0/8"},
		{"bad host name", "[host.A_b]\naddress = \"127.0.0.2\"\n", 1, "host name"},
		{"unknown kind", "[host.a]\naddress = \"127.0.0.2\"\n\n[host.a.gopher]\nport = 70\n", 4, `unknown service "gopher"`},
		{"unknown setting", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\ntcp = 1\ncolour = \"red\"\n", 5, `unknown setting "host.a.uppercase.colour"`},
		{"bad port", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\ntcp = 1\nudp = 70000\n", 5, "udp: port 70000"},
		{"wrong type", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\ntcp = \"x\"\n", 4, "tcp"},
		{"bad duration", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\ntcp = 1\nidle_timeout = \"soon\"\n", 5, "idle_timeout"},
		{"no port", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\n", 3, "set a tcp or a udp port"},
		{"same address", "[host.a]\naddress = \"127.0.0.2\"\n[host.b]\naddress = \"127.0.0.2\"\n", 4, `host "b" has the address 127.0.0.2 of host "a" (line 1)`},
		{"mail without domain", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.mail]\nusers = [\"x:y\"]\n", 3, "set domain"},
		{"mail user without password", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.mail]\ndomain = \"a.test\"\nusers = [\"alice\"]\n", 5, `users: "alice" is not name:password`},
		{"mail check from a stranger", "[host.a]\naddress = \"127.0.0.2\"\n[host.a.mail]\ndomain = \"a.test\"\nusers = [\"alice:x\"]\ncheck_from = \"eve\"\ncheck_to = \"bob@b.test\"\n", 6, "check_from"},
		{"duplicate host", "[host.a]\naddress = \"127.0.0.2\"\n[host.a]\naddress = \"127.0.0.3\"\n", 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("my.toml", []byte(tc.src))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FileError", err)
			}
			if fe.File != "my.toml" || fe.Line != tc.line || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q", err, fe.Line, tc.line, tc.msg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultSource())
	f.Add([]byte("[host.a]\naddress = \"127.0.0.2\"\n[host.a.uppercase]\ntcp = 1\n"))
	f.Add([]byte("[host]\na = 1\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("fuzz.toml", src)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FileError: %v", err)
			}
			return
		}
		for _, h := range file.Hosts {
			if !loopback.Contains(h.Address) || !hostName.MatchString(h.Name) {
				t.Fatalf("accepted host %q at %v", h.Name, h.Address)
			}
		}
	})
}

func TestPorts(t *testing.T) {
	p := Ports{Offset: PrivilegedOffset}
	for std, want := range map[int]int{53: 10053, 80: 10080, 25: 10025, 1023: 11023, 1024: 1024, 12000: 12000, 0: 0} {
		if got := p.Map(std); got != want {
			t.Errorf("Map(%d) = %d, want %d", std, got, want)
		}
	}
	if got := (Ports{}).Map(53); got != 53 {
		t.Errorf("standard ports: Map(53) = %d", got)
	}
}

// The default lab starts, every probe passes, the trace shows the checks'
// exchanges, and Shutdown leaves no goroutine behind (TestMain checks).
func TestDefaultLabCheck(t *testing.T) {
	ctx := context.Background()
	tr := trace.New()
	sub := tr.Subscribe(10000, false)
	defer sub.Close()
	l, err := Start(ctx, Default(), Options{Ports: AutoPorts(), Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	l.WriteSummary(&summary)
	for _, want := range []string{"upper1", "127.0.0.21", "uppercase/tcp", "127.0.0.21:12000", "appnet uppercase send --trace 127.0.0.21:12000", "--udp 127.0.0.22:12000"} {
		if !strings.Contains(summary.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, summary.String())
		}
	}
	results := l.Check(ctx)
	var table bytes.Buffer
	if failed := WriteChecks(&table, results); failed != 0 {
		t.Errorf("%d checks failed:\n%s", failed, table.String())
	}
	// Every host of the default lab is probed: at least one probe each.
	probed := map[string]bool{}
	for _, r := range results {
		probed[r.Host] = true
	}
	for _, h := range Default().Hosts {
		if !probed[h.Name] {
			t.Errorf("host %s was not probed:\n%s", h.Name, table.String())
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(sub.C()) > 0 {
		e := <-sub.C()
		seen = append(seen, e.Host+" "+e.Speaker()+": "+e.Summary)
	}
	joined := strings.Join(seen, "\n")
	for _, want := range []string{
		"upper1 C: appnet lab check of upper1",
		"upper1 S: APPNET LAB CHECK OF UPPER1",
		"lab-check S: APPNET LAB CHECK OF UPPER2",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("trace lacks %q:\n%s", want, joined)
		}
	}
}

// A check fails when a service does not answer, and the table says FAIL.
func TestCheckReportsFailure(t *testing.T) {
	ctx := context.Background()
	f, err := Parse("t.toml", []byte("[host.a]\naddress = \"127.0.0.31\"\n[host.a.uppercase]\ntcp = 0\nudp = 12001\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Start(ctx, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(ctx)
	// Stop the server behind the lab's back: the probe must notice.
	u := l.Services()[0].Service.(*uppercase)
	u.udp.Shutdown(ctx)
	u.wg.Wait()
	var table bytes.Buffer
	if failed := WriteChecks(&table, l.Check(ctx)); failed != 1 || !strings.Contains(table.String(), "FAIL") {
		t.Errorf("failed = %d:\n%s", failed, table.String())
	}
}

// A port already taken makes Start fail with the host and service named,
// and stops what it had started.
func TestStartFailureNamesService(t *testing.T) {
	ctx := context.Background()
	src := "[host.a]\naddress = \"127.0.0.32\"\n[host.a.uppercase]\ntcp = 12002\n[host.b]\naddress = \"127.0.0.33\"\n[host.b.uppercase]\ntcp = 12002\n"
	f, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	first, err := Start(ctx, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(ctx)
	_, err = Start(ctx, f, Options{})
	if err == nil || !strings.Contains(err.Error(), "t.toml:3: host a: starting uppercase") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second start: %v", err)
	}
}
