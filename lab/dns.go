package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/authserver"
	"appnet/dns/dig"
	"appnet/dns/registrar"
	"appnet/dns/resolver"
	"appnet/dns/zone"
)

// DNSConfig is the [host.NAME.dns] table: an authoritative name server
// for the zones given as master-file text.
type DNSConfig struct {
	Port    int      `toml:"port"`     // standard port; default 53
	Zones   []string `toml:"zones"`    // RFC 1035 master files, one string each
	UDPSize int      `toml:"udp_size"` // largest UDP answer to an EDNS0 client
	Rotate  bool     `toml:"rotate"`   // rotate address RRsets between answers
	// TSIGKeys may sign dynamic UPDATEs: "[ALG:]NAME:BASE64SECRET" each.
	TSIGKeys []string `toml:"tsig_keys"`
	// AllowTransfer lists the secondaries of every zone of the host
	// ("ADDR:PORT", the port mapped like the lab's own): they may AXFR
	// the zones and are sent NOTIFY when a serial changes.
	AllowTransfer []string `toml:"allow_transfer"`
	// Secondary makes the host a secondary: "ZONE@ADDR:PORT" each, the
	// zone transferred from that primary (its port mapped likewise).
	Secondary []string `toml:"secondary"`
	// Persist writes each accepted UPDATE to the zone's file in the host's
	// folder before answering (default true).
	Persist bool `toml:"persist"`
}

// DNSResolverConfig is the [host.NAME.dns-resolver] table: the local name
// server, resolving iteratively from the root hints.
type DNSResolverConfig struct {
	Port       int    `toml:"port"`        // standard port; default 53
	ServerPort int    `toml:"server_port"` // port of every name server; default 53 (mapped like the lab's own)
	RootHints  string `toml:"root_hints"`  // the root hints file's text
	CacheSize  int    `toml:"cache_size"`
	CheckName  string `toml:"check_name"` // the name lab --check resolves
}

func init() {
	Register("dns", "an authoritative DNS name server for zones written inline (dns/authserver)",
		func() *DNSConfig {
			return &DNSConfig{Port: 53, UDPSize: authserver.DefaultUDPSize, Rotate: true, Persist: true}
		},
		validateDNS, startDNS)
	Register("dns-resolver", "a caching local DNS resolver that walks from the root hints (dns/resolver)",
		func() *DNSResolverConfig {
			return &DNSResolverConfig{Port: 53, ServerPort: 53, CacheSize: resolver.DefaultCacheSize}
		},
		validateDNSResolver, startDNSResolver)
}

func parseZones(texts []string, host string) ([]*zone.Zone, error) {
	var zs []*zone.Zone
	for i, text := range texts {
		file := fmt.Sprintf("zones[%d]", i)
		if host != "" {
			file = host + " " + file
		}
		z, err := zone.Parse(strings.NewReader(text), "", file)
		if err != nil {
			return nil, err
		}
		zs = append(zs, z)
	}
	return zs, nil
}

func validateDNS(c *DNSConfig) error {
	if err := CheckPort("port", c.Port); err != nil || c.Port == 0 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if len(c.Zones) == 0 && len(c.Secondary) == 0 {
		return FieldError("zones", "give at least one zone (or a secondary zone)")
	}
	for _, sec := range c.Secondary {
		if _, _, err := parseSecondary(sec); err != nil {
			return FieldError("secondary", "%v", err)
		}
	}
	for _, t := range c.AllowTransfer {
		if _, err := netip.ParseAddrPort(t); err != nil {
			return FieldError("allow_transfer", "%q is not ADDR:PORT", t)
		}
	}
	zs, err := parseZones(c.Zones, "")
	if err != nil {
		return FieldError("zones", "%v", err)
	}
	if _, err := zone.NewSet(zs...); err != nil {
		return FieldError("zones", "%v", err)
	}
	for _, k := range c.TSIGKeys {
		if _, err := registrar.ParseKey(k); err != nil {
			return FieldError("tsig_keys", "%v", err)
		}
	}
	if c.UDPSize < 512 || c.UDPSize > 65535 {
		return FieldError("udp_size", "%d is not between 512 and 65535", c.UDPSize)
	}
	return nil
}

// parseSecondary reads "ZONE@ADDR:PORT".
func parseSecondary(s string) (string, netip.AddrPort, error) {
	z, p, ok := strings.Cut(s, "@")
	ap, err := netip.ParseAddrPort(p)
	if !ok || z == "" || err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("%q is not ZONE@ADDR:PORT", s)
	}
	return dns.CanonicalName(z), ap, nil
}

func validateDNSResolver(c *DNSResolverConfig) error {
	if c.Port < 1 || c.Port > 65535 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if c.ServerPort < 1 || c.ServerPort > 65535 {
		return FieldError("server_port", "%d is not a port", c.ServerPort)
	}
	if _, err := zone.ParseHints(strings.NewReader(c.RootHints), "root_hints"); err != nil {
		return FieldError("root_hints", "%v", err)
	}
	if c.CacheSize < 1 {
		return FieldError("cache_size", "must be positive")
	}
	return nil
}

// dnsRunner runs one DNS server on UDP and TCP at one address.
type dnsRunner struct {
	env       *Env
	endpoints []Endpoint
	wg        sync.WaitGroup
	shutdown  func(context.Context) error
}

func (d *dnsRunner) listen(ctx context.Context, port int, packet func(net.PacketConn) error, stream func(net.Listener) error, shutdown func(context.Context) error) error {
	pc, err := d.env.ListenPacket(ctx, port)
	if err != nil {
		return err
	}
	ln, err := d.env.Listen(ctx, port)
	if err != nil {
		pc.Close()
		return err
	}
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	d.endpoints = []Endpoint{{Proto: "dns/udp", Addr: addr}, {Proto: "dns/tcp", Addr: addr}}
	d.shutdown = shutdown
	for _, f := range []func() error{func() error { return packet(pc) }, func() error { return stream(ln) }} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := f(); err != nil && !errors.Is(err, authserver.ErrServerClosed) && !errors.Is(err, resolver.ErrServerClosed) {
				d.env.Logger.Error("dns server stopped", "err", err)
			}
		}()
	}
	return nil
}

func (d *dnsRunner) Endpoints() []Endpoint { return d.endpoints }

func (d *dnsRunner) Shutdown(ctx context.Context) error {
	var err error
	if d.shutdown != nil {
		err = d.shutdown(ctx)
	}
	d.wg.Wait()
	return err
}

func (d *dnsRunner) addr() string { return d.endpoints[0].Addr.String() }

type dnsAuth struct {
	dnsRunner
	zones     []*zone.Zone
	keys      []string
	server    *authserver.Server
	secondary []string // zones transferred from a primary
}

func startDNS(ctx context.Context, env *Env, c *DNSConfig) (Service, error) {
	// Each zone is written to the host's folder, so that errors and
	// operators can point at a file (and dnsperf or knot can read it).
	var files []string
	for i, text := range c.Zones {
		zs, err := parseZones([]string{text}, env.Host)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(zs[0].Origin, ".")
		if name == "" {
			name = "root"
		}
		path := filepath.Join(env.Dir, name+".zone")
		if err := os.WriteFile(path, []byte(c.Zones[i]), 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		files = append(files, path)
	}
	var zs []*zone.Zone
	for _, f := range files {
		z, err := zone.Load(f, "")
		if err != nil {
			return nil, err
		}
		zs = append(zs, z)
	}
	set, err := zone.NewSet(zs...)
	if err != nil {
		return nil, err
	}
	s := authserver.New(set)
	s.Host, s.Tracer, s.Logger, s.UDPSize, s.Rotate = env.Host, env.Tracer, env.Logger, c.UDPSize, c.Rotate
	for _, k := range c.TSIGKeys {
		key, _ := registrar.ParseKey(k)
		if s.Keys == nil {
			s.Keys = map[string]string{}
		}
		s.Keys[key.Name] = key.Secret
	}
	s.Persist = c.Persist
	for _, sec := range c.Secondary {
		z, ap, _ := parseSecondary(sec)
		if s.Primaries == nil {
			s.Primaries = map[string]string{}
		}
		s.Primaries[z] = netip.AddrPortFrom(ap.Addr(), uint16(env.Ports.Map(int(ap.Port())))).String()
	}
	if len(c.AllowTransfer) > 0 {
		s.AllowTransfer = map[string][]netip.AddrPort{}
		for _, t := range c.AllowTransfer {
			ap, _ := netip.ParseAddrPort(t)
			ap = netip.AddrPortFrom(ap.Addr(), uint16(env.Ports.Map(int(ap.Port()))))
			for _, z := range zs {
				s.AllowTransfer[z.Origin] = append(s.AllowTransfer[z.Origin], ap)
			}
		}
	}
	d := &dnsAuth{dnsRunner: dnsRunner{env: env}, zones: zs, keys: c.TSIGKeys, server: s}
	for z := range s.Primaries {
		d.secondary = append(d.secondary, z)
	}
	slices.Sort(d.secondary)
	if err := d.listen(ctx, c.Port, s.ServePacket, s.Serve, s.Shutdown); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *dnsAuth) Try() []string {
	a := d.endpoints[0].Addr
	var out []string
	for _, z := range d.zones {
		out = append(out, fmt.Sprintf("dig @%s -p %d %s SOA +norec   # or: appnet dig @%s %s SOA", a.Addr(), a.Port(), z.Origin, a, z.Origin))
	}
	for _, z := range d.secondary {
		out = append(out, fmt.Sprintf("dig @%s -p %d %s SOA +norec   # a secondary: transferred from %s", a.Addr(), a.Port(), z, d.server.Primaries[z]))
	}
	if len(d.zones) > 0 {
		if list := d.server.AllowTransfer[d.zones[0].Origin]; len(list) > 0 {
			out = append(out, fmt.Sprintf("dig -b %s @%s -p %d %s AXFR   # the zone transfer its secondary gets (from any other address: refused)", list[0].Addr(), a.Addr(), a.Port(), d.zones[0].Origin))
		}
	}
	if len(d.keys) > 0 && len(d.zones) > 0 {
		out = append(out, fmt.Sprintf("appnet dns register --tld-server %s --key %s mydomain.%s dns1.mydomain.%s 212.212.212.1", a, d.keys[0], strings.TrimSuffix(d.zones[0].Origin, "."), strings.TrimSuffix(d.zones[0].Origin, ".")))
	}
	return out
}

func (d *dnsAuth) Check(ctx context.Context) []Probe {
	var probes []Probe
	origins := make([]string, 0, len(d.zones)+len(d.secondary))
	for _, z := range d.zones {
		origins = append(origins, z.Origin)
	}
	origins = append(origins, d.secondary...)
	for i, origin := range origins {
		secondary := i >= len(d.zones)
		p := Probe{What: fmt.Sprintf("dns/udp %s SOA %s", d.addr(), origin)}
		if secondary {
			p.What += " (secondary)"
		}
		// A secondary may still be transferring its zone: ask a few times.
		for try := 0; ; try++ {
			r, err := dig.Query(ctx, dig.Options{Server: d.addr(), NoRec: true, Timeout: 2 * time.Second, Host: "lab-check", Tracer: d.env.Tracer}, origin, dns.TypeSOA)
			p.Err, p.Detail = nil, ""
			switch {
			case err != nil:
				p.Err = err
			case r.Msg.Rcode != dns.RcodeSuccess || !r.Msg.Authoritative || len(r.Msg.Answer) != 1:
				p.Err = fmt.Errorf("want an authoritative SOA, got %s aa=%v with %d answers", dns.RcodeToString[r.Msg.Rcode], r.Msg.Authoritative, len(r.Msg.Answer))
			default:
				p.Detail = fmt.Sprintf("aa, serial %d, in %v", r.Msg.Answer[0].(*dns.SOA).Serial, r.RTT.Round(10*time.Microsecond))
				if secondary {
					p.Detail += ", transferred from " + d.server.Primaries[origin]
				}
			}
			// (up to 8 s: a failed first transfer is retried after 5 s)
			if p.Err == nil || !secondary || try >= 80 || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		probes = append(probes, p)
	}
	return probes
}

type dnsResolver struct {
	dnsRunner
	roots      []zone.Server
	serverPort int
	checkName  string
	hintsFile  string
}

func startDNSResolver(ctx context.Context, env *Env, c *DNSResolverConfig) (Service, error) {
	hintsFile := filepath.Join(env.Dir, "root.hints")
	if err := os.WriteFile(hintsFile, []byte(c.RootHints), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	roots, err := zone.LoadHints(hintsFile)
	if err != nil {
		return nil, err
	}
	r := resolver.New(roots, c.CacheSize)
	r.Port = env.Ports.Map(c.ServerPort)
	r.Host, r.Tracer, r.Logger = env.Host, env.Tracer, env.Logger
	s := &resolver.Server{Resolver: r, Host: env.Host, Tracer: env.Tracer, Logger: env.Logger}
	d := &dnsResolver{dnsRunner: dnsRunner{env: env}, roots: roots, serverPort: r.Port, checkName: c.CheckName, hintsFile: hintsFile}
	if err := d.listen(ctx, c.Port, s.ServePacket, s.Serve, s.Shutdown); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *dnsResolver) Try() []string {
	a := d.endpoints[0].Addr
	name := d.checkName
	if name == "" {
		name = "www.umass.test"
	}
	return []string{
		fmt.Sprintf("dig @%s -p %d %s   # or: appnet dig @%s %s", a.Addr(), a.Port(), name, a, name),
		fmt.Sprintf("appnet dig +trace --root-hints %s --server-port %d %s", d.hintsFile, d.serverPort, name),
	}
}

func (d *dnsResolver) Check(ctx context.Context) []Probe {
	if d.checkName == "" {
		return []Probe{{What: "dns-resolver " + d.addr(), Detail: "no check_name set"}}
	}
	p := Probe{What: fmt.Sprintf("dns/udp %s A? %s (resolved)", d.addr(), d.checkName)}
	r, err := dig.Query(ctx, dig.Options{Server: d.addr(), Timeout: 5 * time.Second, Host: "lab-check", Tracer: d.env.Tracer}, d.checkName, dns.TypeA)
	switch {
	case err != nil:
		p.Err = err
	case r.Msg.Rcode != dns.RcodeSuccess || len(r.Msg.Answer) == 0 || !r.Msg.RecursionAvailable:
		p.Err = fmt.Errorf("got %s ra=%v with %d answers", dns.RcodeToString[r.Msg.Rcode], r.Msg.RecursionAvailable, len(r.Msg.Answer))
	default:
		p.Detail = fmt.Sprintf("%s in %v", strings.Join(strings.Fields(r.Msg.Answer[len(r.Msg.Answer)-1].String()), " "), r.RTT.Round(10*time.Microsecond))
	}
	t := Probe{What: fmt.Sprintf("dns +trace %s from the root hints", d.checkName)}
	var sink strings.Builder
	steps, err := dig.Trace(ctx, &sink, dig.TraceOptions{Roots: d.roots, Port: d.serverPort, Timeout: 2 * time.Second, Host: "lab-check", Tracer: d.env.Tracer}, d.checkName, dns.TypeA)
	if err != nil {
		t.Err = err
	} else {
		var walk []string
		for _, s := range steps {
			walk = append(walk, strings.TrimSuffix(s.ServerName, "."))
		}
		last := steps[len(steps)-1].Result.Msg
		if len(last.Answer) == 0 || !last.Authoritative {
			t.Err = fmt.Errorf("the walk %s ended without an authoritative answer", strings.Join(walk, " -> "))
		} else {
			t.Detail = strings.Join(walk, " -> ")
		}
	}
	return []Probe{p, t}
}
