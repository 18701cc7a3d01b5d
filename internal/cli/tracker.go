package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"appnet/p2p/tracker"
)

func init() { addCommand((*app).trackerCommand) }

func (a *app) trackerCommand() *cobra.Command {
	return group("tracker", "a BitTorrent tracker (HTTP and UDP) and a client to query one",
		a.trackerServeCommand(), a.trackerAnnounceCommand(), a.trackerScrapeCommand())
}

func (a *app) trackerServeCommand() *cobra.Command {
	var (
		httpAddr, udpAddr, whitelist, maxMemory string
		srv                                     tracker.Server
	)
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR [--udp ADDR] [--interval 30m] [--whitelist FILE]",
		Short: "run a BitTorrent tracker over HTTP (BEP 3, 23, 48) and UDP (BEP 15) until Ctrl-C",
		Long: `Serve runs a tracker: peers announce themselves to it (GET /announce over
HTTP, or the UDP tracker protocol) and get a random set of the other peers of
the same torrent (info hash); GET /scrape and UDP scrape report how many seeders
and leechers a torrent has and how many downloads completed.

Peers that stop announcing are forgotten after --peer-ttl (default: twice the
interval plus a minute). With --whitelist, only the info hashes listed in FILE
(one 40-digit hex hash per line) are served. A malformed request is answered
with a bencoded "failure reason" naming the parameter at fault.

The tracker faces hostile peers: one address (an IPv4 address, an IPv6 /64)
may have --max-peers-per-addr peers in a torrent and make --announce-rate
announces a second after a burst of --announce-burst, and hold
--max-conns-per-addr HTTP connections; all swarms together stay under
--max-memory, the least recently seen peers forgotten first. A peer that
announced with a key is moved or stopped only with that key, one without from
its own address only. Peer IDs are never given out unless --show-peer-ids.
Running many peers from one address (a test on 127.0.0.1)? Give -1 to the
per-address limits.`,
		Example: `  appnet tracker serve --listen 127.0.0.1:6969 --udp 127.0.0.1:6969 --interval 1m
  appnet tracker announce http://127.0.0.1:6969/announce 0123456789abcdef0123456789abcdef01234567   # in another terminal`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if httpAddr == "" && udpAddr == "" {
				return usagef("give --listen ADDR (HTTP), --udp ADDR, or both")
			}
			if whitelist != "" {
				wl, err := tracker.LoadWhitelist(whitelist)
				if err != nil {
					return err
				}
				srv.Whitelist = wl
			}
			if maxMemory == "none" {
				srv.MaxBytes = -1
			} else if n, err := parseSize(maxMemory); err != nil || n <= 0 {
				return usagef("--max-memory %q: want a size such as 256MiB, or none", maxMemory)
			} else {
				srv.MaxBytes = n
			}
			srv.Host, srv.Tracer, srv.Logger = "tracker", a.tracer, a.logger
			ctx := cmd.Context()
			var lc net.ListenConfig
			var servers []func() error
			var closers []func()
			closeAll := func() {
				for _, c := range closers {
					c()
				}
			}
			if httpAddr != "" {
				ln, err := lc.Listen(ctx, "tcp", httpAddr)
				if err != nil {
					return err
				}
				closers = append(closers, func() { ln.Close() })
				fmt.Fprintf(a.stdout, "tracker: serving HTTP on http://%s/announce (scrape: /scrape)\n", ln.Addr())
				servers = append(servers, func() error { return srv.Serve(ln) })
			}
			if udpAddr != "" {
				pc, err := lc.ListenPacket(ctx, "udp", udpAddr)
				if err != nil {
					closeAll()
					return err
				}
				closers = append(closers, func() { pc.Close() })
				fmt.Fprintf(a.stdout, "tracker: serving UDP on udp://%s\n", pc.LocalAddr())
				servers = append(servers, func() error { return srv.ServeUDP(pc) })
			}
			wl := "every torrent"
			if srv.Whitelist != nil {
				wl = fmt.Sprintf("%d whitelisted torrents", len(srv.Whitelist))
			}
			fmt.Fprintf(a.stdout, "tracker: interval %v, %s\n", orDuration(srv.Interval, tracker.DefaultInterval), wl)
			for i, serve := range servers {
				servers[i] = func() error {
					if err := serve(); !errors.Is(err, tracker.ErrServerClosed) {
						return err
					}
					return nil
				}
			}
			return serveUntilDone(ctx, a, servers, []func(context.Context) error{srv.Shutdown})
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "listen", "", "TCP address for HTTP announces and scrapes, e.g. 127.0.0.1:6969")
	f.StringVar(&udpAddr, "udp", "", "UDP address for the UDP tracker protocol, e.g. 127.0.0.1:6969")
	f.StringVar(&whitelist, "whitelist", "", "serve only the info hashes in FILE (40 hex digits a line)")
	f.DurationVar(&srv.Interval, "interval", tracker.DefaultInterval, "announce interval given to peers")
	f.DurationVar(&srv.PeerTTL, "peer-ttl", 0, "forget a peer silent this long (default 2×interval + 1m)")
	f.IntVar(&srv.MaxNumwant, "max-numwant", tracker.DefaultMaxNumwant, "most peers given in one answer")
	f.IntVar(&srv.MaxTorrents, "max-torrents", tracker.DefaultMaxTorrents, "most torrents tracked at once")
	f.IntVar(&srv.MaxPeers, "max-peers", tracker.DefaultMaxPeers, "most peers tracked per torrent")
	f.StringVar(&maxMemory, "max-memory", "256MiB", "memory of all swarms together; beyond it the least recently seen peers are forgotten (none: no bound)")
	f.IntVar(&srv.MaxPeersPerAddr, "max-peers-per-addr", tracker.DefaultMaxPeersPerAddr, "most peers of a torrent from one address (-1: no limit)")
	f.Float64Var(&srv.AnnounceRate, "announce-rate", tracker.DefaultAnnounceRate, "announces a second from one address (-1: no limit)")
	f.IntVar(&srv.AnnounceBurst, "announce-burst", tracker.DefaultAnnounceBurst, "announces from one address at once")
	f.IntVar(&srv.MaxConns, "max-conns", tracker.DefaultMaxConns, "most HTTP connections at once (-1: no cap)")
	f.IntVar(&srv.MaxConnsPerAddr, "max-conns-per-addr", tracker.DefaultMaxConnsPerAddr, "most HTTP connections from one address (-1: no cap)")
	f.BoolVar(&srv.ShowPeerIDs, "show-peer-ids", false, "give peer IDs in dictionary-model answers (compact=0) unless no_peer_id=1")
	return cmd
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (a *app) trackerClient(timeout time.Duration) *tracker.Client {
	return &tracker.Client{Host: "client", Tracer: a.tracer, Timeout: timeout, UDPBase: timeout / 4, UDPRetries: 2}
}

func (a *app) trackerAnnounceCommand() *cobra.Command {
	var (
		event, peerID, key string
		timeout            time.Duration
		req                tracker.Request
	)
	cmd := &cobra.Command{
		Use:   "announce URL INFOHASH",
		Short: "announce a peer to a tracker and print the peers it returns",
		Long: `Announce sends one announce for INFOHASH (40 hex digits) to the tracker at URL
(http://…/announce or udp://host:port) and prints the tracker's answer: the
interval, the numbers of seeders and leechers, and the peers. With --event
stopped the peer leaves the swarm again. A tracker's refusal is printed as its
failure reason, and the command exits 1.

The announce carries a key (random unless --key): the tracker lets only an
announce with the same key move or stop the peer, so to stop a peer announced
earlier give its full --peer-id and its --key again.`,
		Example: `  appnet tracker announce http://127.0.0.1:6969/announce 0123456789abcdef0123456789abcdef01234567
  appnet --trace tracker announce --left 0 --event completed udp://127.0.0.1:6969 0123456789abcdef0123456789abcdef01234567`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := tracker.ParseHash(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			req.InfoHash = ih
			switch event {
			case "", "none", "empty":
			case "started":
				req.Event = tracker.Started
			case "completed":
				req.Event = tracker.Completed
			case "stopped":
				req.Event = tracker.Stopped
			default:
				return usagef("--event %q: want started, completed, stopped or none", event)
			}
			if len(peerID) > tracker.HashSize {
				return usagef("--peer-id %q: at most %d bytes", peerID, tracker.HashSize)
			}
			if key != "" {
				k, err := strconv.ParseUint(key, 16, 32)
				if err != nil || k == 0 {
					return usagef("--key %q: want 1 to 8 hex digits, not all zero", key)
				}
				req.Key = uint32(k)
			}
			copy(req.PeerID[:], peerID)
			if len(peerID) < tracker.HashSize {
				const digits = "0123456789"
				var r [tracker.HashSize]byte
				rand.Read(r[:])
				for i := len(peerID); i < tracker.HashSize; i++ {
					req.PeerID[i] = digits[int(r[i])%10]
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			resp, err := a.trackerClient(timeout).Announce(ctx, args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "interval %v", resp.Interval)
			if resp.MinInterval > 0 {
				fmt.Fprintf(a.stdout, " (min %v)", resp.MinInterval)
			}
			fmt.Fprintf(a.stdout, ", %d seeders, %d leechers, %d peers\n", resp.Complete, resp.Incomplete, len(resp.Peers))
			if resp.Warning != "" {
				fmt.Fprintf(a.stdout, "warning: %s\n", resp.Warning)
			}
			for _, p := range resp.Peers {
				if p.ID == (tracker.Hash{}) {
					fmt.Fprintf(a.stdout, "  %s\n", p.Addr)
				} else {
					fmt.Fprintf(a.stdout, "  %-24s %s\n", p.Addr, printableID(p.ID))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint16Var(&req.Port, "port", 6881, "the port this peer says it listens on")
	f.Int64Var(&req.Left, "left", 1, "bytes left to download (0: a seeder)")
	f.Int64Var(&req.Uploaded, "uploaded", 0, "bytes uploaded so far")
	f.Int64Var(&req.Downloaded, "downloaded", 0, "bytes downloaded so far")
	f.StringVar(&event, "event", "started", "started, completed, stopped or none")
	f.IntVar(&req.NumWant, "numwant", 0, "peers wanted (0: the tracker's default)")
	f.StringVar(&peerID, "peer-id", "-AN0001-", "peer ID, or its prefix (filled with random digits to 20 bytes)")
	f.BoolVar(&req.NoCompact, "no-compact", false, "ask an HTTP tracker for the dictionary model (compact=0)")
	f.StringVar(&key, "key", "", "the peer's key, 8 hex digits (default: random)")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}

// printableID shows a peer ID as text when it is printable, in hex otherwise.
func printableID(id tracker.Hash) string {
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			return id.String()
		}
	}
	return string(id[:])
}

func (a *app) trackerScrapeCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scrape URL INFOHASH...",
		Short: "ask a tracker how many seeders and leechers torrents have",
		Long: `Scrape asks the tracker at URL (its announce URL: http://…/announce, whose
scrape URL is …/scrape, or udp://host:port) for the counts of each INFOHASH
(40 hex digits): seeders (complete), leechers (incomplete), and completed
downloads.`,
		Example: `  appnet tracker scrape http://127.0.0.1:6969/announce 0123456789abcdef0123456789abcdef01234567
  appnet tracker scrape udp://127.0.0.1:6969 0123456789abcdef0123456789abcdef01234567`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var hashes []tracker.Hash
			for _, s := range args[1:] {
				h, err := tracker.ParseHash(s)
				if err != nil {
					return usagef("%v", err)
				}
				hashes = append(hashes, h)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			stats, err := a.trackerClient(timeout).Scrape(ctx, args[0], hashes...)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				st, ok := stats[h]
				if !ok {
					fmt.Fprintf(a.stdout, "%s  not known to the tracker\n", h)
					continue
				}
				fmt.Fprintf(a.stdout, "%s  seeders %d, leechers %d, completed %d\n", h, st.Complete, st.Incomplete, st.Downloaded)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}
