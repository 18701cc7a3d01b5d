package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"appnet/dns/authserver"
	"appnet/dns/dig"
	"appnet/dns/registrar"
	"appnet/dns/resolver"
	"appnet/dns/zone"
)

func init() {
	addCommand((*app).dnsCommand)
	addCommand((*app).digCommand)
}

func (a *app) dnsCommand() *cobra.Command {
	return group("dns", "DNS: authoritative name servers, zone files and a caching local resolver",
		a.dnsServeCommand(), a.dnsResolverCommand(), a.dnsCheckCommand(), a.dnsRegisterCommand())
}

// loadZones loads every zone file and checks that no apex is loaded twice.
func loadZones(files []string) (*zone.Set, error) {
	var zs []*zone.Zone
	for _, f := range files {
		z, err := zone.Load(f, "")
		if err != nil {
			return nil, err
		}
		zs = append(zs, z)
	}
	return zone.NewSet(zs...)
}

// listenBoth opens UDP and TCP on one address. The UDP socket allows
// SO_REUSEPORT, so that the server can give each of its readers a socket
// of its own; the TCP listener does not, so a second server on the same
// address still fails with "address already in use".
func listenBoth(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	pc, err := authserver.ListenPacket(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	ln, err := lc.Listen(ctx, "tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, ln, nil
}

func (a *app) dnsServeCommand() *cobra.Command {
	var (
		listen      string
		udpSize     int
		noRotate    bool
		noPersist   bool
		keys        []string
		transferTo  []string
		secondaries []string
	)
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR [--secondary ZONE@PRIMARY]... [ZONEFILE...]",
		Short: "serve zone files as an authoritative name server over UDP and TCP, until Ctrl-C",
		Long: `Serve loads each ZONEFILE (RFC 1035 master file; the apex is the owner of its
SOA record) and answers questions about those zones with the AA flag, over UDP
and TCP at ADDR: CNAME chains inside a zone, referrals with glue for delegated
names, NXDOMAIN and NODATA with the SOA for negative caching, addresses of NS,
MX and SRV targets in the additional section, TC when an answer does not fit
the client's UDP buffer (512 bytes, or its EDNS0 size up to --udp-size), and
REFUSED for names outside the zones. Several A records of one name are
rotated between answers. A zone file with an error is refused with its file,
line and reason. SIGHUP reloads every zone file; a file that fails to load
leaves the zones as they were.

With --tsig-key, dynamic UPDATEs (RFC 2136) signed with that key change the
zones; each accepted UPDATE is written to its zone file (atomically, with the
new serial, synced) before it is answered, so it survives a crash and a
reload (the file is rewritten in canonical form: comments are not kept).
--no-persist keeps UPDATEs in memory only.

--allow-transfer names a secondary (ADDR:PORT) of every zone file: it may
transfer the zones with AXFR over TCP (others are refused), and it is sent
NOTIFY when a zone's serial changes (RFC 1996). --secondary ZONE@PRIMARY makes
this server a secondary for ZONE: it transfers the zone from PRIMARY
(host:port) at start, on the primary's NOTIFY, and on the SOA refresh timer,
whenever the primary's serial is newer.`,
		Example: `  appnet dns serve --listen 127.0.0.1:10053 umass.test.zone
  appnet dig @127.0.0.1:10053 www.umass.test        # in another terminal
  appnet dns serve --listen 127.0.0.11:10053 --secondary umass.test@127.0.0.1:10053`,
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, files []string) error {
			if listen == "" {
				return usagef("give --listen ADDR, e.g. 127.0.0.1:10053")
			}
			if len(files) == 0 && len(secondaries) == 0 {
				return usagef("give a ZONEFILE or --secondary ZONE@PRIMARY")
			}
			primaries := map[string]string{}
			for _, sec := range secondaries {
				z, p, ok := strings.Cut(sec, "@")
				if !ok || z == "" {
					return usagef("--secondary %q: want ZONE@PRIMARY, e.g. umass.test@127.0.0.6:53", sec)
				}
				if _, _, err := net.SplitHostPort(p); err != nil {
					p = net.JoinHostPort(p, "53")
				}
				if _, err := netip.ParseAddrPort(p); err != nil {
					return usagef("--secondary %q: the primary must be an IP address and port", sec)
				}
				primaries[dns.CanonicalName(z)] = p
			}
			var transfers []netip.AddrPort
			for _, t := range transferTo {
				ap, err := netip.ParseAddrPort(t)
				if err != nil {
					addr, aerr := netip.ParseAddr(t)
					if aerr != nil {
						return usagef("--allow-transfer %q: want ADDR:PORT", t)
					}
					ap = netip.AddrPortFrom(addr, 53)
				}
				transfers = append(transfers, ap)
			}
			set, err := loadZones(files)
			if err != nil {
				return err
			}
			keyMap := map[string]string{}
			for _, k := range keys {
				key, err := registrar.ParseKey(k)
				if err != nil {
					return usagef("--tsig-key: %v", err)
				}
				keyMap[key.Name] = key.Secret
			}
			ctx := cmd.Context()
			pc, ln, err := listenBoth(ctx, listen)
			if err != nil {
				return err
			}
			s := authserver.New(set)
			s.Host, s.Tracer, s.Logger, s.UDPSize, s.Rotate = "server", a.tracer, a.logger, udpSize, !noRotate
			s.Persist = !noPersist
			if len(keyMap) > 0 {
				s.Keys = keyMap
			}
			if len(primaries) > 0 {
				s.Primaries = primaries
			}
			if len(transfers) > 0 {
				s.AllowTransfer = map[string][]netip.AddrPort{}
				for _, z := range set.Zones() {
					s.AllowTransfer[z.Origin] = transfers
				}
			}
			for _, z := range set.Zones() {
				fmt.Fprintf(a.stdout, "dns: zone %s from %s: %d records\n", z.Origin, z.File, z.Len())
			}
			for z, p := range primaries {
				fmt.Fprintf(a.stdout, "dns: zone %s: secondary of %s\n", z, p)
			}
			fmt.Fprintf(a.stdout, "dns: serving on %s (UDP and TCP)\n", pc.LocalAddr())
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reloadDone := make(chan struct{})
			rctx, cancel := context.WithCancel(ctx)
			defer func() { cancel(); <-reloadDone }()
			go func() {
				defer close(reloadDone)
				for {
					select {
					case <-rctx.Done():
						return
					case <-hup:
						next, err := reloadZones(files, s.Zones(), primaries)
						if err != nil {
							a.logger.Error("dns: reload failed; serving the zones as they were", "err", err)
							continue
						}
						s.SetZones(next)
						a.logger.Info("dns: zones reloaded", "zones", len(next.Zones()))
					}
				}
			}()
			return serveUntilDone(ctx, a,
				[]func() error{func() error { return s.ServePacket(pc) }, func() error { return s.Serve(ln) }},
				[]func(context.Context) error{s.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address for UDP and TCP, e.g. 127.0.0.1:10053")
	f.IntVar(&udpSize, "udp-size", authserver.DefaultUDPSize, "largest UDP answer for an EDNS0 client, in bytes")
	f.BoolVar(&noRotate, "no-rotate", false, "keep address records in zone-file order instead of rotating them")
	f.StringArrayVar(&keys, "tsig-key", nil, "allow UPDATEs signed with this key, [ALG:]NAME:BASE64SECRET (repeatable)")
	f.BoolVar(&noPersist, "no-persist", false, "keep accepted UPDATEs in memory only (default: rewrite the zone file before answering)")
	f.StringArrayVar(&transferTo, "allow-transfer", nil, "a secondary, ADDR:PORT, that may AXFR the zones and is sent NOTIFY (repeatable)")
	f.StringArrayVar(&secondaries, "secondary", nil, "be a secondary for ZONE, transferred from PRIMARY host:port: ZONE@PRIMARY (repeatable)")
	return cmd
}

// reloadZones loads the zone files again and keeps the zones of cur that
// this server is a secondary for (they come from their primaries).
func reloadZones(files []string, cur *zone.Set, primaries map[string]string) (*zone.Set, error) {
	next, err := loadZones(files)
	if err != nil || len(primaries) == 0 || cur == nil {
		return next, err
	}
	zs := next.Zones()
	for _, z := range cur.Zones() {
		if _, ok := primaries[z.Origin]; ok {
			zs = append(zs, z)
		}
	}
	return zone.NewSet(zs...)
}

func (a *app) dnsRegisterCommand() *cobra.Command {
	var (
		server, key string
		ttl         uint32
		timeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "register --tld-server ADDR --key [ALG:]NAME:SECRET DOMAIN NSNAME ADDRESS",
		Short: "register a domain: insert its NS and glue A records into the TLD by dynamic update",
		Long: `Register does what a registrar does in the course's "Network Utopia" example:
it sends the TLD server a dynamic UPDATE (RFC 2136), signed with the TSIG key
(RFC 8945), that inserts

  DOMAIN  NS  NSNAME        (replacing any NS records of DOMAIN)
  NSNAME  A   ADDRESS       (the glue, when NSNAME lies inside DOMAIN)

into the TLD's zone (DOMAIN without its first label). The TLD server must
know the key (appnet dns serve --tsig-key).`,
		Example: `  appnet dns register --tld-server 127.0.0.3:53 --key hmac-sha256:registrar.:c2VjcmV0IGtleSBvZiB0aGUgcmVnaXN0cmFy networkutopia.test dns1.networkutopia.test 212.212.212.1`,
		Args:    args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if server == "" || key == "" {
				return usagef("give --tld-server ADDR and --key [ALG:]NAME:SECRET")
			}
			k, err := registrar.ParseKey(key)
			if err != nil {
				return usagef("%v", err)
			}
			addr, err := netip.ParseAddr(argv[2])
			if err != nil {
				return usagef("%q is not an IP address", argv[2])
			}
			if _, _, err := net.SplitHostPort(server); err != nil {
				server = net.JoinHostPort(server, "53")
			}
			c := &registrar.Client{Key: k, Timeout: timeout, Host: "registrar", Tracer: a.tracer}
			if err := c.Register(cmd.Context(), server, argv[0], argv[1], addr, ttl); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "registered %s: NS %s, A %s, in %s at %s\n", dns.Fqdn(argv[0]), dns.Fqdn(argv[1]), addr, registrar.Parent(argv[0]), server)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "tld-server", "", "the TLD's primary server, host:port")
	f.StringVar(&key, "key", "", "TSIG key, [ALG:]NAME:BASE64SECRET (ALG defaults to hmac-sha256)")
	f.Uint32Var(&ttl, "ttl", 172800, "TTL of the inserted records, in seconds")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "wait this long for the server's answer")
	return cmd
}

func (a *app) dnsCheckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check ZONEFILE...",
		Short: "check zone files and say what each holds",
		Long: `Check loads each ZONEFILE as serve would and prints its apex and number of
records, or the file, line and reason of the first error.`,
		Example: `  appnet dns check umass.test.zone`,
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, files []string) error {
			var errs []error
			for _, f := range files {
				z, err := zone.Load(f, "")
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(a.stdout, "%s: zone %s, %d records, serial %d: OK\n", f, z.Origin, z.Len(), z.SOA.Serial)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().SortFlags = false
	return cmd
}

func (a *app) dnsResolverCommand() *cobra.Command {
	var (
		listen, hints string
		port          int
		cacheSize     int
		r             resolver.Resolver
		queryTimeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "resolver --listen ADDR --root-hints FILE [--server-port 53]",
		Short: "run a caching local name server that resolves iteratively from the root, until Ctrl-C",
		Long: `Resolver answers the questions of clients that set RD by asking the root
servers of the root hints FILE (the named.root format), then the TLD servers
they refer to, then the authoritative servers, following CNAMEs and resolving
the names of name servers that came without glue. It caches answers and
negative answers for their TTLs (an LRU of --cache-size RRsets), accepts only
records inside the bailiwick of the server that sent them, and answers
SERVFAIL, with the reason in the log, when a question costs more than
--max-queries queries or --query-timeout. Every name server is asked on
--server-port, so a lab can run all its servers on one port at different
127.0.0.x addresses.`,
		Example: `  appnet dns resolver --listen 127.0.0.10:10053 --root-hints root.hints --server-port 10053
  appnet dig @127.0.0.10:10053 www.umass.test        # in another terminal`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || hints == "" {
				return usagef("give --listen ADDR and --root-hints FILE")
			}
			if port < 1 || port > 65535 {
				return usagef("--server-port %d is not a port", port)
			}
			roots, err := zone.LoadHints(hints)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pc, ln, err := listenBoth(ctx, listen)
			if err != nil {
				return err
			}
			r.Roots, r.Port, r.Cache = roots, port, resolver.NewCache(cacheSize, nil)
			r.Host, r.Tracer, r.Logger = "resolver", a.tracer, a.logger
			s := &resolver.Server{Resolver: &r, Host: "resolver", Tracer: a.tracer, Logger: a.logger, QueryTimeout: queryTimeout}
			fmt.Fprintf(a.stdout, "dns: resolving from %d root servers (port %d), serving on %s (UDP and TCP)\n", len(roots), port, pc.LocalAddr())
			return serveUntilDone(ctx, a,
				[]func() error{func() error { return s.ServePacket(pc) }, func() error { return s.Serve(ln) }},
				[]func(context.Context) error{s.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address for UDP and TCP, e.g. 127.0.0.10:10053")
	f.StringVar(&hints, "root-hints", "", "root hints file (NS and A/AAAA records for \".\")")
	f.IntVar(&port, "server-port", 53, "the port every name server is asked on")
	f.IntVar(&cacheSize, "cache-size", resolver.DefaultCacheSize, "RRsets and negative answers the cache holds")
	f.DurationVar(&r.Timeout, "timeout", resolver.DefaultTimeout, "wait for one upstream answer before trying another server")
	f.IntVar(&r.MaxQueries, "max-queries", resolver.DefaultMaxQueries, "upstream queries one question may cause")
	f.IntVar(&r.MaxDepth, "max-depth", resolver.DefaultMaxDepth, "nesting of name server lookups one question may cause")
	f.DurationVar(&queryTimeout, "query-timeout", resolver.DefaultQueryTimeout, "time one question may take before SERVFAIL")
	return cmd
}

// defaultServer is the first name server of /etc/resolv.conf, as dig
// uses.
func defaultServer() string {
	if cc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cc.Servers) > 0 {
		return net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	return "127.0.0.1:53"
}

func (a *app) digCommand() *cobra.Command {
	var (
		hints   string
		port    int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "dig [@SERVER[:PORT]] NAME [TYPE] [+trace] [+norec] [+tcp] [+ignore] [+noedns]",
		Short: "ask a name server a question and print the answer in dig's layout",
		Long: `Dig sends one question to SERVER (default: the first name server of
/etc/resolv.conf; PORT defaults to 53) and prints the answer as BIND's dig
does: header and flags, then the QUESTION, ANSWER, AUTHORITY and ADDITIONAL
sections, the query time and the server. TYPE defaults to A. A truncated UDP
answer is asked again over TCP, unless +ignore. +norec clears RD (ask a
server for what it knows itself), +tcp uses TCP from the start, +noedns sends
no EDNS0 record.

+trace resolves the name itself, iteratively, from the root servers of
--root-hints down to the authoritative server, asking each on --server-port
and printing every step: who was asked, and what it answered (a referral to
a TLD, to a domain's servers, or the records).`,
		Example: `  appnet dig @127.0.0.10 www.umass.test
  appnet dig @127.0.0.6:10053 umass.test MX +norec
  appnet dig +trace --root-hints root.hints --server-port 10053 www.umass.test`,
		Args: args(cobra.RangeArgs(1, 8)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			o := dig.Options{Server: defaultServer(), Timeout: timeout, Host: "client", Tracer: a.tracer}
			var name, typ string
			traceOn := false
			for _, arg := range argv {
				switch {
				case strings.HasPrefix(arg, "@"):
					s := arg[1:]
					if _, _, err := net.SplitHostPort(s); err != nil {
						s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
					}
					o.Server = s
				case arg == "+trace":
					traceOn = true
				case arg == "+norec" || arg == "+norecurse":
					o.NoRec = true
				case arg == "+tcp" || arg == "+vc":
					o.TCP = true
				case arg == "+ignore":
					o.Ignore = true
				case arg == "+noedns":
					o.NoEDNS = true
				case strings.HasPrefix(arg, "+"):
					return usagef("unknown option %s", arg)
				case name == "":
					name = arg
				case typ == "":
					typ = strings.ToUpper(arg)
				default:
					return usagef("unexpected argument %q", arg)
				}
			}
			if name == "" {
				return usagef("give a NAME")
			}
			qtype := dns.TypeA
			if typ != "" {
				t, ok := dns.StringToType[typ]
				if !ok {
					if n, err := strconv.Atoi(strings.TrimPrefix(typ, "TYPE")); err == nil && n > 0 && n < 65536 {
						t, ok = uint16(n), true
					}
				}
				if !ok {
					return usagef("unknown type %s", typ)
				}
				qtype = t
			}
			ctx := cmd.Context()
			if traceOn {
				if hints == "" {
					return usagef("+trace needs --root-hints FILE")
				}
				roots, err := zone.LoadHints(hints)
				if err != nil {
					return err
				}
				_, err = dig.Trace(ctx, a.stdout, dig.TraceOptions{Roots: roots, Port: port, Timeout: timeout, Host: "client", Tracer: a.tracer}, name, qtype)
				return err
			}
			res, err := dig.Query(ctx, o, name, qtype)
			if err != nil {
				return err
			}
			dig.Print(a.stdout, res, strings.Join(argv, " "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hints, "root-hints", "", "root hints file for +trace")
	f.IntVar(&port, "server-port", 53, "the port every name server is asked on, for +trace")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "wait this long for each answer")
	return cmd
}
