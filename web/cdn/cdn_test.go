package cdn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/internal/testnet"
	"appnet/web/origin"
	"appnet/web/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testMap = `
# clients            edge
127.0.0.16/28        127.0.0.41   # .16-.31
127.0.0.32/28        127.0.0.42   # .32-.47
10.1.0.0/16          127.0.0.42
default              127.0.0.41
`

func startDNS(t *testing.T) (addr string) {
	t.Helper()
	m, err := ParseMap(strings.NewReader(testMap), "map")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{Zone: "kingcdn.test", Map: m}
	pc, ln := testnet.ListenBoth(t, nil)
	errc := make(chan error, 2)
	go func() { errc <- d.ServePacket(pc) }()
	go func() { errc <- d.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx) //nolint:errcheck
		for range 2 {
			if err := <-errc; !errors.Is(err, ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
		}
	})
	return pc.LocalAddr().String()
}

func TestMapLookup(t *testing.T) {
	m, err := ParseMap(strings.NewReader(testMap), "map")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		client, edge string
		scope        int
	}{{"127.0.0.31", "127.0.0.41", 28}, {"127.0.0.33", "127.0.0.42", 28}, {"192.0.2.1", "127.0.0.41", 0}} {
		e, s := m.Lookup(netip.MustParseAddr(c.client))
		if e[0].String() != c.edge || s != c.scope {
			t.Errorf("%s -> %v /%d", c.client, e, s)
		}
	}
	for _, bad := range []string{"127.0.0.1/33 1.2.3.4", "default x", "10.0.0.0/8", ""} {
		if _, err := ParseMap(strings.NewReader(bad), "bad"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDigFromTwoSources(t *testing.T) {
	dig := testnet.NeedTool(t, "dig")
	addr := startDNS(t)
	host, port, _ := net.SplitHostPort(addr)
	ask := func(extra ...string) string {
		args := append([]string{"@" + host, "-p", port, "+tries=1", "+time=3"}, extra...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	a := ask("-b", "127.0.0.31", "+short", "video.kingcdn.test")
	b := ask("-b", "127.0.0.33", "+short", "video.kingcdn.test")
	if strings.TrimSpace(a) != "127.0.0.41" || strings.TrimSpace(b) != "127.0.0.42" {
		t.Errorf("from .31: %q, from .33: %q", a, b)
	}
	full := ask("-b", "127.0.0.31", "video.kingcdn.test")
	if !strings.Contains(full, "flags: qr aa") || !strings.Contains(full, "\t20\tIN\tA\t127.0.0.41") {
		t.Errorf("answer not authoritative with TTL 20:\n%s", full)
	}
	// EDNS Client Subnet wins over the source address
	ecs := ask("-b", "127.0.0.31", "+subnet=10.1.2.0/24", "video.kingcdn.test")
	if !strings.Contains(ecs, "IN\tA\t127.0.0.42") || !strings.Contains(ecs, "CLIENT-SUBNET: 10.1.2.0/24/16") {
		t.Errorf("ECS answer:\n%s", ecs)
	}
	if out := ask("+tcp", "+short", "kingcdn.test", "SOA"); !strings.Contains(out, "ns.kingcdn.test.") {
		t.Errorf("SOA over TCP: %q", out)
	}
	if out := ask("www.umass.test"); !strings.Contains(out, "status: REFUSED") {
		t.Errorf("out of zone:\n%s", out)
	}
}

func FuzzDNSAnswer(f *testing.F) {
	m, _ := ParseMap(strings.NewReader(testMap), "map")
	d := &DNS{Zone: "kingcdn.test", Map: m}
	q := new(dns.Msg)
	q.SetQuestion("a.kingcdn.test.", dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)})
	q.Extra = append(q.Extra, o)
	b, _ := q.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req dns.Msg
		if err := req.Unpack(raw); err != nil {
			return
		}
		resp, _ := d.Answer(&req, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 31), Port: 5353})
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
	})
}

func TestEdgeFillsCache(t *testing.T) {
	curl := testnet.NeedTool(t, "curl")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "movie.txt"), []byte("a small movie\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := origin.New(origin.Config{Root: dir, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	oln := testnet.ListenTCP(t)
	go o.Serve(oln) //nolint:errcheck
	ou, _ := url.Parse("http://" + oln.Addr().String())
	edge := NewEdge(ou, proxy.Config{Name: "edge1"})
	eln := testnet.ListenTCP(t)
	go edge.Serve(eln) //nolint:errcheck
	defer func() {
		ctx := context.Background()
		edge.Shutdown(ctx) //nolint:errcheck
		o.Shutdown(ctx)    //nolint:errcheck
	}()
	var got []string
	for range 2 {
		out, err := exec.Command(curl, "-sS", "-D", "-", "-o", "/dev/null", "http://"+eln.Addr().String()+"/movie.txt").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.ToLower(l), "x-cache:") {
				got = append(got, strings.TrimSpace(l[len("x-cache:"):]))
			}
		}
	}
	if strings.Join(got, " ") != "MISS HIT" {
		t.Errorf("X-Cache through the edge: %v, want MISS HIT", got)
	}
	if n, _ := edge.Store().Len(); n != 1 {
		t.Errorf("edge cache holds %d", n)
	}
	resp, err := http.Get("http://" + eln.Addr().String() + "/movie.txt")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "a small movie\n" {
			t.Errorf("body %q", b)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}
