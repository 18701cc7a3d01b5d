package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"appnet/web/cdn"
	"appnet/web/client"
	"appnet/web/origin"
	"appnet/web/proxy"
)

func init() {
	addCommand((*app).webCommand)
	addCommand((*app).cdnCommand)
}

func (a *app) webCommand() *cobra.Command {
	return group("web", "the Web: an HTTP/1.1 origin server, a caching proxy and a page fetcher",
		a.webServeCommand(), a.webProxyCommand(), a.webGetCommand(), a.webPasswdCommand())
}

func (a *app) cdnCommand() *cobra.Command {
	return group("cdn", "a CDN: edge servers (reverse caching proxies) and DNS request routing",
		a.cdnEdgeCommand(), a.cdnDNSCommand())
}

// httpServer adapts a net/http-based server to serveUntilDone.
func httpServe(serve func(net.Listener) error, ln net.Listener) func() error {
	return func() error {
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// gcFlags are the garbage collector's settings for a long-running server.
// A server's live heap is small (a few MiB besides its caches) while it
// allocates per request, so with Go's default GOGC=100 it collects about
// every 4 MiB allocated, a hundred times a second under load; a higher
// percentage trades memory for fewer collections. The memory limit caps
// what that costs when the live heap is large (a full in-memory cache).
type gcFlags struct {
	percent int
	limit   string
}

// DefaultGCPercent is the servers' GOGC: the heap may grow to 5 times what
// is live (a minimum goal of 20 MiB instead of 4) before a collection.
const DefaultGCPercent = 400

func (g *gcFlags) add(cmd *cobra.Command, limitHelp string) {
	f := cmd.Flags()
	f.IntVar(&g.percent, "gc-percent", DefaultGCPercent, "garbage collector target percentage (GOGC) while serving; negative: off (then give --memory-limit)")
	f.StringVar(&g.limit, "memory-limit", "", "soft limit of the Go heap (GOMEMLIMIT), e.g. 512MiB; default "+limitHelp)
}

// apply sets the collector for the command's lifetime; restore undoes it
// (commands may run inside a test process). auto is the memory limit when
// --memory-limit is not given.
func (g *gcFlags) apply(auto int64) (restore func(), err error) {
	limit := auto
	if g.limit != "" {
		if limit, err = proxy.ParseSize(g.limit); err != nil || limit == 0 {
			return nil, usagef("--memory-limit %q is not a size like 512MiB", g.limit)
		}
	}
	if g.percent < 0 && g.limit == "" {
		return nil, usagef("--gc-percent off (negative) needs --memory-limit")
	}
	oldPercent := debug.SetGCPercent(g.percent)
	oldLimit := debug.SetMemoryLimit(limit)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}, nil
}

func (a *app) webServeCommand() *cobra.Command {
	var (
		listen, authFile, accessLog string
		cfg                         origin.Config
		gc                          gcFlags
	)
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR DIR [--auth FILE] [--realm R] [--access-log FILE]",
		Short: "serve the files of DIR over HTTP/1.1 until Ctrl-C",
		Long: `Serve is an origin server for the static files of DIR: Content-Type,
Last-Modified and ETag on every file, conditional GET (If-Modified-Since,
If-None-Match -> 304), byte ranges (206), persistent connections with idle,
header and write timeouts. A directory is served by its index.html; listings
are off unless --listing. No request reaches outside DIR, through ".." or
through a symbolic link.

--auth names a file of "PATH USER BCRYPT-HASH" lines (make hashes with
'appnet web passwd'): those paths need Basic authorization (401 otherwise).
/cart is the course's cookie demo: it gives each client an ID with
Set-Cookie and keeps a cart per ID (POST item=NAME adds, DELETE empties),
in --cart-file so that a restart keeps it.

Files are served from a cache of their metadata (and of the bytes of files
up to 64 KiB; larger ones go out with sendfile): what is known of a file is
trusted for --file-cache, then one stat checks whether it changed, as
nginx's open_file_cache does. The access log is buffered: a line is written
within a second.

GETs and HEADs of cached files (no range, no authorization, and no
condition but one If-None-Match tag or an If-Modified-Since) are answered
by a fast lane that reads HTTP/1.1 requests off the connection itself; at
the first request it does not take, the connection goes to Go's net/http
server, which answers it and the rest.
--no-fast-lane sends everything through net/http.

--gc-percent (GOGC, 400 by default) and --memory-limit set Go's garbage
collector while serving: the server's live heap is small, so the default
GOGC of 100 would collect a hundred times a second under load.`,
		Example: `  appnet web serve --listen 127.0.0.1:8080 ./site --access-log -
  curl -i http://127.0.0.1:8080/                           # in another terminal
  curl -c jar -b jar -d item=book http://127.0.0.1:8080/cart`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if listen == "" {
				return usagef("give --listen ADDR")
			}
			cfg.Root = argv[0]
			if authFile != "" {
				f, err := os.Open(authFile)
				if err != nil {
					return err
				}
				cfg.Auth, err = origin.ParseAuth(f, authFile)
				f.Close()
				if err != nil {
					return err
				}
			}
			switch accessLog {
			case "":
			case "-":
				cfg.AccessLog = a.stdout
			default:
				f, err := os.OpenFile(accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.AccessLog = f
			}
			if cfg.FileCacheValid == 0 {
				cfg.FileCacheValid = -1 // off
			} else if cfg.FileCacheValid < 0 {
				return usagef("--file-cache %v is negative", cfg.FileCacheValid)
			}
			restore, err := gc.apply(originMemoryLimit)
			if err != nil {
				return err
			}
			defer restore()
			cfg.Host, cfg.Tracer, cfg.Logger = "server", a.tracer, a.logger
			s, err := origin.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil {
				s.Shutdown(ctx) //nolint:errcheck
				return err
			}
			fmt.Fprintf(a.stdout, "web: serving %s on http://%s/\n", cfg.Root, ln.Addr())
			return serveUntilDone(ctx, a, []func() error{httpServe(s.Serve, ln)}, []func(context.Context) error{s.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:8080")
	f.StringVar(&authFile, "auth", "", "auth file: PATH USER BCRYPT-HASH per line")
	f.StringVar(&cfg.Realm, "realm", origin.DefaultRealm, "realm named in WWW-Authenticate")
	f.StringVar(&accessLog, "access-log", "", "append the Combined Log Format here (- for stdout)")
	f.StringVar(&cfg.CartFile, "cart-file", "", "file that keeps /cart's carts across restarts (default: memory only)")
	f.BoolVar(&cfg.Listing, "listing", false, "list directories that have no index.html")
	f.DurationVar(&cfg.MaxAge, "max-age", 0, "send Cache-Control: max-age with files (0: none)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", origin.DefaultIdleTimeout, "close a persistent connection idle this long")
	f.DurationVar(&cfg.ReadHeaderTimeout, "header-timeout", origin.DefaultReadHeaderTimeout, "time allowed to send a request's header")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", origin.DefaultWriteTimeout, "time allowed to send a response (from the end of its request), so that a client that does not read cannot hold a connection")
	f.BoolVar(&cfg.NoFastLane, "no-fast-lane", false, "serve every request through net/http, none in the fast lane")
	f.DurationVar(&cfg.FileCacheValid, "file-cache", origin.DefaultFileCacheValid, "trust what is known of a file (and a small file's bytes) this long before checking it changed; 0: no cache")
	gc.add(cmd, "512MiB")
	return cmd
}

func (a *app) webPasswdCommand() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "passwd USER PATH",
		Short: "read a password on stdin and print an auth file line for USER on PATH",
		Long: `Passwd reads one line, the password, from standard input and prints
"PATH USER BCRYPT-HASH", a line for 'appnet web serve --auth FILE'.`,
		Example: `  appnet web passwd alice /private < password.txt >> auth.txt`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 1024)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			pass := strings.TrimRight(line, "\r\n")
			if pass == "" {
				return usagef("give the password on standard input")
			}
			if cost != 0 && (cost < 4 || cost > 31) {
				return usagef("--cost %d is not between 4 and 31", cost)
			}
			h, err := origin.HashPassword(pass, cost)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s %s\n", argv[1], argv[0], h)
			return nil
		},
	}
	cmd.Flags().IntVar(&cost, "cost", 0, "bcrypt cost, 4 to 31 (default 10)")
	return cmd
}

// originMemoryLimit is web serve's default --memory-limit: its file cache
// holds at most 64 MiB of small files.
const originMemoryLimit = 512 << 20

// openCache opens a proxy's cache (--cache-dir, --cache-size) and applies
// its --memory-limit, by default twice what the cache keeps in memory (all
// of it without a directory, else proxy.DefaultMemSize of bodies) and 256
// MiB for the rest. restore undoes the limit.
func openCache(dir, size string, gc *gcFlags) (st *proxy.Store, restore func(), err error) {
	n, err := proxy.ParseSize(size)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	st, err = proxy.NewStore(dir, n, 0)
	if err != nil {
		return nil, nil, err
	}
	mem := n
	if mem <= 0 {
		mem = proxy.DefaultCacheSize
	}
	if dir != "" {
		mem = min(mem, proxy.DefaultMemSize)
	}
	if restore, err = gc.apply(2*mem + 256<<20); err != nil {
		st.Close() //nolint:errcheck // the limit's error is the one to report
		return nil, nil, err
	}
	return st, restore, nil
}

func (a *app) webProxyCommand() *cobra.Command {
	var (
		listen, dir, size, name string
		gc                      gcFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR [--cache-dir DIR] [--cache-size SIZE]",
		Short: "run a caching forward proxy (RFC 9111) until Ctrl-C",
		Long: `Proxy is the course's Web cache: clients send it absolute-form requests
(GET http://host/path), and it answers from its cache when it may and asks
the origin otherwise. It honours Cache-Control (max-age, s-maxage, no-store,
no-cache, private), Expires, heuristic freshness from Last-Modified, and
Vary; it validates stale responses with If-None-Match / If-Modified-Since;
it collapses concurrent misses into one origin fetch. Each response carries
X-Cache: HIT, MISS or REVALIDATED, and Age and Via. CONNECT is tunnelled to
port 443 only. With --cache-dir the cache survives a restart.

--gc-percent (GOGC, 400 by default) and --memory-limit (by default twice
what the cache holds in memory, plus 256MiB) set Go's garbage collector.`,
		Example: `  appnet web proxy --listen 127.0.0.1:3128 --cache-dir /tmp/webcache --cache-size 256MiB
  curl -x http://127.0.0.1:3128 -i http://127.0.0.30/     # twice: X-Cache MISS, then HIT`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return usagef("give --listen ADDR")
			}
			st, restore, err := openCache(dir, size, &gc)
			if err != nil {
				return err
			}
			defer restore()
			p := proxy.New(proxy.Config{Store: st, Name: name, Host: "proxy", Tracer: a.tracer, Logger: a.logger})
			ctx := cmd.Context()
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "web: caching proxy on %s\n", ln.Addr())
			return serveUntilDone(ctx, a, []func() error{httpServe(p.Serve, ln)}, []func(context.Context) error{p.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:3128")
	f.StringVar(&dir, "cache-dir", "", "keep the cache in this directory (default: memory only)")
	f.StringVar(&size, "cache-size", "256MiB", "most bytes cached")
	f.StringVar(&name, "name", proxy.DefaultName, "the proxy's name in Via")
	gc.add(cmd, "twice the bytes the cache holds in memory, plus 256MiB")
	return cmd
}

func (a *app) webGetCommand() *cobra.Command {
	var (
		proxyURL                      string
		persistent, nonPers, pipeline bool
		f                             client.Fetcher
	)
	cmd := &cobra.Command{
		Use:   "get URL [--proxy URL] [--persistent|--non-persistent] [--pipeline] [--rtt DURATION]",
		Short: "fetch a page and the objects it references, and time each",
		Long: `Get fetches the page at URL, then every object it references (img src,
script src, link href), and prints the time of each and the total. With
--non-persistent each object has its own TCP connection; with --persistent
(the default) one connection per server carries the requests one after
another; with --pipeline all requests go out at once on it.

--rtt adds emulated round-trip delay: opening a connection waits one RTT,
and the first read after a request waits until one RTT after it was sent.
So the course's figures appear: about 2 RTT per object non-persistent, 1
RTT per object persistent, 1 RTT for all objects pipelined.`,
		Example: `  appnet web get --non-persistent --rtt 50ms http://127.0.0.30/
  appnet web get --pipeline --rtt 50ms http://127.0.0.30/`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			n := 0
			for _, b := range []bool{persistent, nonPers, pipeline} {
				if b {
					n++
				}
			}
			if n > 1 {
				return usagef("give one of --persistent, --non-persistent, --pipeline")
			}
			switch {
			case nonPers:
				f.Mode = client.NonPersistent
			case pipeline:
				f.Mode = client.Pipelined
			default:
				f.Mode = client.Persistent
			}
			if proxyURL != "" {
				u, err := url.Parse(proxyURL)
				if err != nil || u.Host == "" {
					return usagef("--proxy %q is not a URL like http://127.0.0.31:3128", proxyURL)
				}
				f.Proxy = u
			}
			f.Host, f.Tracer = "client", a.tracer
			res, err := f.Get(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "START\tTIME\tSTATUS\tBYTES\tURL")
			for _, o := range append([]client.Object{res.Page}, res.Objects...) {
				status := fmt.Sprint(o.Status)
				if o.Err != nil {
					status = "error: " + o.Err.Error()
				}
				fmt.Fprintf(tw, "%v\t%v\t%s\t%d\t%s\n", o.Start.Round(time.Millisecond), o.Elapsed.Round(time.Millisecond), status, o.Bytes, o.URL)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "total %v for %d objects, %s, %d connections\n", res.Total.Round(time.Millisecond), len(res.Objects)+1, f.Mode, res.Conns)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&proxyURL, "proxy", "", "send requests through this proxy, e.g. http://127.0.0.31:3128")
	fl.BoolVar(&persistent, "persistent", false, "one connection per server, one request at a time (the default)")
	fl.BoolVar(&nonPers, "non-persistent", false, "a new connection for every object")
	fl.BoolVar(&pipeline, "pipeline", false, "one connection per server, all requests sent back to back")
	fl.DurationVar(&f.RTT, "rtt", 0, "emulated round-trip time added to every connection")
	fl.DurationVar(&f.Timeout, "timeout", 60*time.Second, "give up on the page after this long")
	return cmd
}

func (a *app) cdnEdgeCommand() *cobra.Command {
	var (
		listen, originURL, dir, size, name string
		noLane                             bool
		gc                                 gcFlags
	)
	cmd := &cobra.Command{
		Use:   "edge --listen ADDR --origin URL [--cache-dir DIR]",
		Short: "run a CDN edge: a reverse caching proxy for one origin",
		Long: `Edge answers requests for the origin's content from its cache (the same
RFC 9111 cache as 'appnet web proxy'), fetching from --origin on a miss.
X-Cache says HIT, MISS or REVALIDATED. --gc-percent and --memory-limit set
Go's garbage collector, as for 'appnet web proxy'.

Fresh hits for plain GETs and HEADs (no Cache-Control, Pragma,
Authorization, condition or range in the request) are answered by a fast
lane that reads HTTP/1.1 requests off the connection itself; at the
first request it does not take, the connection goes to Go's net/http
server. --no-fast-lane sends everything through net/http.`,
		Example: `  appnet cdn edge --listen 127.0.0.41:8080 --origin http://127.0.0.40/
  curl -i http://127.0.0.41:8080/index.html     # twice: MISS, then HIT`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || originURL == "" {
				return usagef("give --listen ADDR and --origin URL")
			}
			u, err := url.Parse(originURL)
			if err != nil || u.Scheme != "http" || u.Host == "" {
				return usagef("--origin %q is not an http:// URL", originURL)
			}
			st, restore, err := openCache(dir, size, &gc)
			if err != nil {
				return err
			}
			defer restore()
			p := cdn.NewEdge(u, proxy.Config{Store: st, Name: name, Host: "edge", NoFastLane: noLane, Tracer: a.tracer, Logger: a.logger})
			ctx := cmd.Context()
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "cdn: edge for %s on %s\n", u, ln.Addr())
			return serveUntilDone(ctx, a, []func() error{httpServe(p.Serve, ln)}, []func(context.Context) error{p.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on")
	f.StringVar(&originURL, "origin", "", "the origin server, e.g. http://127.0.0.40/")
	f.StringVar(&dir, "cache-dir", "", "keep the cache in this directory (default: memory only)")
	f.StringVar(&size, "cache-size", "256MiB", "most bytes cached")
	f.StringVar(&name, "name", "edge", "the edge's name in Via")
	f.BoolVar(&noLane, "no-fast-lane", false, "serve every request through net/http, none in the fast lane")
	gc.add(cmd, "twice the bytes the cache holds in memory, plus 256MiB")
	return cmd
}

func (a *app) cdnDNSCommand() *cobra.Command {
	var (
		listen, mapFile string
		d               cdn.DNS
	)
	cmd := &cobra.Command{
		Use:   "dns --listen ADDR --zone NAME --map FILE",
		Short: "run the CDN's authoritative DNS server, which answers with the nearest edge",
		Long: `DNS answers A/AAAA questions for NAME and every name below it with the
edges the map file gives for the client: its source address, or the EDNS
Client Subnet (RFC 7871) a resolver sends for it. Map lines are
"PREFIX EDGE [EDGE...]" or "default EDGE..."; the longest prefix wins.
Answers are authoritative, with a short TTL.`,
		Example: `  appnet cdn dns --listen 127.0.0.43:5353 --zone kingcdn.test --map cdn.map
  dig @127.0.0.43 -p 5353 -b 127.0.0.31 video.kingcdn.test +short`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || d.Zone == "" || mapFile == "" {
				return usagef("give --listen ADDR, --zone NAME and --map FILE")
			}
			mf, err := os.Open(mapFile)
			if err != nil {
				return err
			}
			d.Map, err = cdn.ParseMap(mf, mapFile)
			mf.Close()
			if err != nil {
				return err
			}
			d.Host, d.Tracer, d.Logger = "cdn-dns", a.tracer, a.logger
			ctx := cmd.Context()
			var lc net.ListenConfig
			pc, err := lc.ListenPacket(ctx, "udp", listen)
			if err != nil {
				return err
			}
			ln, err := lc.Listen(ctx, "tcp", pc.LocalAddr().String())
			if err != nil {
				pc.Close()
				return err
			}
			fmt.Fprintf(a.stdout, "cdn: DNS for %s on %s (udp and tcp)\n", d.Zone, pc.LocalAddr())
			quiet := func(f func() error) func() error {
				return func() error {
					if err := f(); err != nil && !errors.Is(err, cdn.ErrServerClosed) {
						return err
					}
					return nil
				}
			}
			return serveUntilDone(ctx, a, []func() error{quiet(func() error { return d.ServePacket(pc) }), quiet(func() error { return d.Serve(ln) })},
				[]func(context.Context) error{d.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address for UDP and TCP, e.g. 127.0.0.43:53")
	f.StringVar(&d.Zone, "zone", "", "the CDN's zone, e.g. kingcdn.test")
	f.StringVar(&mapFile, "map", "", "map file: PREFIX EDGE [EDGE...] per line, and a default")
	f.DurationVar(&d.TTL, "ttl", cdn.DefaultTTL, "TTL of the answers")
	return cmd
}
