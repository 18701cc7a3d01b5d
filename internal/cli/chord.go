package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"appnet/p2p/chord"
	"appnet/p2p/chord/sim"
)

func init() { addCommand((*app).chordCommand) }

func (a *app) chordCommand() *cobra.Command {
	return group("chord", "the Chord DHT (Stoica et al., SIGCOMM 2001): run a node, put, get, walk the ring, simulate",
		a.chordNodeCommand(), a.chordPutCommand(), a.chordGetCommand(), a.chordRingCommand(), a.chordSimCommand())
}

func (a *app) chordNodeCommand() *cobra.Command {
	var (
		listen, join, id string
		cfg              chord.Config
	)
	cmd := &cobra.Command{
		Use:   "node --listen ADDR [--join ADDR] [--bits M] [--successors R] [--id N --trust-ids]",
		Short: "run a Chord node until Ctrl-C, then leave the ring gracefully",
		Long: `Node listens on ADDR and either founds a ring or joins one through any node at
--join. Its identifier is SHA-1(ADDR) reduced to --bits bits, which other nodes
check, or --id N (decimal or 0x-hex) to place it where a teaching example wants
it: that needs --trust-ids on every node of the ring, which then accepts any ID
(addresses are still called back). On Ctrl-C it hands its keys to its successor
and tells its neighbours. An unreachable --join address is an error (exit 1).`,
		Example: `  appnet chord node --listen 127.0.0.1:4000 --bits 6 --id 1 --trust-ids
  appnet chord node --listen 127.0.0.1:4001 --bits 6 --id 8 --trust-ids --join 127.0.0.1:4000`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return usagef("give --listen ADDR")
			}
			if id != "" {
				v, err := chord.Space{Bits: cfg.Bits}.Parse(id)
				if err != nil {
					return usagef("--id: %v", err)
				}
				if !cfg.TrustIDs {
					return usagef("--id needs --trust-ids (otherwise the id is SHA-1(ADDR))")
				}
				cfg.ID = &v
			}
			ctx := cmd.Context()
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil {
				return err
			}
			p, err := chord.NewPeer(ln, cfg, "node", a.tracer, a.logger)
			if err != nil {
				ln.Close()
				return err
			}
			p.Start()
			sp := p.Node.Space()
			if join != "" {
				if err := p.Join(ctx, join); err != nil {
					p.Shutdown(context.Background()) //nolint:errcheck
					return err
				}
			}
			fmt.Fprintf(a.stdout, "chord: node N%s listening on %s (m = %d, r = %d)", sp.Format(p.Node.Self().ID), ln.Addr(), sp.Bits, p.Node.Config().Successors)
			if join != "" {
				fmt.Fprintf(a.stdout, ", joined via %s", join)
			}
			fmt.Fprintln(a.stdout)
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return p.Leave(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:4000")
	f.StringVar(&join, "join", "", "address of any node of the ring to join")
	f.StringVar(&id, "id", "", "node identifier (teaching rings); default SHA-1(ADDR) mod 2^m")
	f.BoolVar(&cfg.TrustIDs, "trust-ids", false, "accept node IDs not derived from addresses (teaching rings; all nodes alike)")
	f.IntVar(&cfg.Bits, "bits", chord.DefaultBits, "m, the identifier bits (1-160)")
	f.IntVar(&cfg.Successors, "successors", chord.DefaultSuccessors, "r, the length of the successor list")
	f.DurationVar(&cfg.StabilizeInterval, "stabilize", chord.DefaultStabilize, "interval of stabilize")
	f.DurationVar(&cfg.FixFingersInterval, "fix-fingers", chord.DefaultFixFingers, "interval of fix_fingers (one finger per call)")
	f.DurationVar(&cfg.CheckPredecessorInterval, "check-predecessor", chord.DefaultCheckPredecessor, "interval of check_predecessor")
	f.DurationVar(&cfg.CallTimeout, "timeout", chord.DefaultCallTimeout, "timeout of one RPC")
	return cmd
}

func chordKey(name string, numeric bool) chord.Key {
	if numeric {
		return chord.Key{Number: name}
	}
	return chord.Key{Name: name}
}

func formatPath(sp chord.Space, res chord.Result) string {
	var parts []string
	for _, n := range res.Path {
		parts = append(parts, "N"+sp.Format(n.ID))
	}
	return fmt.Sprintf("%s => N%s@%s (%d hops)", strings.Join(parts, " -> "), sp.Format(res.Owner.ID), res.Owner.Addr, res.PathLength())
}

func (a *app) chordClient(recursive bool, timeout time.Duration) *chord.Client {
	c := &chord.Client{Host: "client", Tracer: a.tracer, Timeout: timeout}
	if recursive {
		c.Mode = chord.Recursive
	}
	return c
}

func (a *app) chordPutCommand() *cobra.Command {
	var (
		node, keyFile            string
		numeric, ref, add, recur bool
		ttl, timeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "put --node ADDR KEY VALUE",
		Short: "store VALUE under KEY in the ring, through the node at ADDR",
		Long: `Put finds the successor of hash(KEY) (or of the identifier KEY with --id) and
stores VALUE there; the owner copies it to its successors. --ref stores an
indirect reference (VALUE is an address, as in the course's "Liberty -> N5's
address"); --add adds to the set under KEY instead of replacing it; --ttl
makes the value expire. Values are signed (Ed25519) with the key in --key FILE
(made on first use), or a fresh key per run: only the same key can replace
a value, a replacing put holds KEY alone, and in a set (--add) each writer
holds its own values.`,
		Example: `  appnet chord put --node 127.0.0.1:4000 Liberty 'a copy of the Liberty file'
  appnet chord put --node 127.0.0.1:4000 --id --ref --add 14 127.0.0.1:4001`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if node == "" {
				return usagef("give --node ADDR")
			}
			c := a.chordClient(recur, timeout)
			defer c.Close()
			if keyFile != "" {
				signer, err := loadSigner(keyFile)
				if err != nil {
					return err
				}
				c.Signer = signer
			}
			v := chord.Value{Data: []byte(args[1]), Ref: ref, TTL: ttl.Milliseconds()}
			res, err := c.Put(cmd.Context(), node, chordKey(args[0], numeric), []chord.Value{v}, add)
			if err != nil {
				return err
			}
			_, sp, _ := c.Ping(cmd.Context(), node)
			fmt.Fprintf(a.stdout, "stored %q at N%s (%s)\npath: %s\n", args[0], sp.Format(res.Owner.ID), res.Owner.Addr, formatPath(sp, res))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "address of any node of the ring")
	f.BoolVar(&numeric, "id", false, "KEY is an identifier (decimal or 0x-hex), not a name to hash")
	f.BoolVar(&ref, "ref", false, "VALUE is an indirect reference (an address)")
	f.BoolVar(&add, "add", false, "add VALUE to the set under KEY instead of replacing it")
	f.StringVar(&keyFile, "key", "", "file holding the writer's Ed25519 key (hex seed; made when missing)")
	f.DurationVar(&ttl, "ttl", 0, "expire the value after this long (0: never)")
	f.BoolVar(&recur, "recursive", false, "recursive lookup (default iterative)")
	f.DurationVar(&timeout, "timeout", chord.DefaultCallTimeout, "timeout of one RPC")
	return cmd
}

func (a *app) chordGetCommand() *cobra.Command {
	var (
		node           string
		numeric, recur bool
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "get --node ADDR KEY",
		Short: "print the values under KEY and the lookup path that found them",
		Long: `Get looks up the successor of hash(KEY) (or of the identifier KEY with --id)
through the node at ADDR, prints each value (an indirect reference as -> ADDR)
and the path of the lookup. Nothing stored is an error (exit 1).`,
		Example: `  appnet chord get --node 127.0.0.1:4000 Liberty
  appnet --trace chord get --node 127.0.0.1:4000 --recursive --id 14`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if node == "" {
				return usagef("give --node ADDR")
			}
			c := a.chordClient(recur, timeout)
			defer c.Close()
			vs, res, err := c.Get(cmd.Context(), node, chordKey(args[0], numeric))
			_, sp, _ := c.Ping(cmd.Context(), node)
			if err != nil {
				if errors.Is(err, chord.ErrNotFound) && !res.Owner.IsZero() {
					fmt.Fprintf(a.stdout, "path: %s\n", formatPath(sp, res))
				}
				return err
			}
			for _, v := range vs {
				prefix := ""
				if v.Ref {
					prefix = "-> "
				}
				fmt.Fprintf(a.stdout, "%s%s\n", prefix, v.Data)
			}
			fmt.Fprintf(a.stdout, "path: %s\n", formatPath(sp, res))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "address of any node of the ring")
	f.BoolVar(&numeric, "id", false, "KEY is an identifier (decimal or 0x-hex), not a name to hash")
	f.BoolVar(&recur, "recursive", false, "recursive lookup (default iterative)")
	f.DurationVar(&timeout, "timeout", chord.DefaultCallTimeout, "timeout of one RPC")
	return cmd
}

func (a *app) chordRingCommand() *cobra.Command {
	var (
		node    string
		max     int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ring --node ADDR",
		Short: "walk the ring along successors and print each node's routing state",
		Long: `Ring starts at the node at ADDR and follows successor pointers until it comes
back, printing each node's ID, predecessor, successor list, finger table (runs
of equal fingers collapsed) and the number of keys it holds.`,
		Example: `  appnet chord ring --node 127.0.0.1:4000`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("give --node ADDR")
			}
			c := a.chordClient(false, timeout)
			defer c.Close()
			infos, err := c.Ring(cmd.Context(), node, max)
			for _, in := range infos {
				sp := in.Space
				name := func(r *chord.NodeRef) string {
					if r == nil || r.IsZero() {
						return "nil"
					}
					return "N" + sp.Format(r.ID)
				}
				var succs []string
				for i := range in.Succs {
					succs = append(succs, name(&in.Succs[i]))
				}
				fmt.Fprintf(a.stdout, "N%s %s  pred %s  succ [%s]  keys %d\n", sp.Format(in.Self.ID), in.Self.Addr, name(in.Pred), strings.Join(succs, " "), in.Keys)
				for i := 0; i < len(in.Fingers); {
					j := i
					for j+1 < len(in.Fingers) && in.Fingers[j+1] == in.Fingers[i] {
						j++
					}
					start := sp.FingerStart(in.Self.ID, i+1)
					if i == j {
						fmt.Fprintf(a.stdout, "    finger[%d] start %s -> %s\n", i+1, sp.Format(start), name(&in.Fingers[i]))
					} else {
						fmt.Fprintf(a.stdout, "    finger[%d..%d] start %s.. -> %s\n", i+1, j+1, sp.Format(start), name(&in.Fingers[i]))
					}
					i = j + 1
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&node, "node", "", "address of any node of the ring")
	f.IntVar(&max, "max", 1024, "stop after this many nodes")
	f.DurationVar(&timeout, "timeout", chord.DefaultCallTimeout, "timeout of one RPC")
	return cmd
}

func (a *app) chordSimCommand() *cobra.Command {
	var (
		nodes, keys, vnodes, r, lookups int
		fail, churn                     float64
		csv, recur                      bool
		seed                            uint64
		sweep                           string
		duration                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sim --nodes N [--keys K] [--fail P] [--churn RATE] [--vnodes V] [--csv]",
		Short: "simulate a ring of N nodes (the same node code, virtual clock) and print the paper's measures",
		Long: `Sim builds a converged ring of N nodes with 160-bit IDs in one process and
measures the lookup path length (mean, 1st and 99th percentile; the paper's
measure: the nodes a lookup traverses after the asking node up to the key's
predecessor, the final contact with the owner not counted), the keys per
node for K keys with and without V virtual nodes per node, and the fraction of
failed lookups right after a fraction P of the nodes fails at once and after
30 s of stabilization, or under churn (RATE joins and as many failures per
second, for --duration of virtual time, one lookup per second). --csv prints
one row per measure.

--sweep K1-K2 prints the path-length table of Stoica et al. §6.3 (Fig. 10a)
instead: for N = 2^K1 … 2^K2, the mean, 1st and 99th percentile of the path
length with the paper's routing (fingers only), its deviation from the
paper's ½·log2 N, and the mean when the successor list (r = 2·log2 N) is
consulted as well, as the node does by default (the same keys from the same
nodes). "failed" counts the lookups of both routings that erred or named a
wrong owner.`,
		Example: `  appnet chord sim --nodes 1024
  appnet chord sim --nodes 1000 --fail 0.5 --successors 20 --csv
  appnet chord sim --nodes 500 --churn 0.1 --duration 1h --vnodes 1
  appnet chord sim --sweep 4-14 --lookups 4000
  appnet chord sim --sweep 4-10 --recursive --csv`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := chord.Iterative
			if recur {
				mode = chord.Recursive
			}
			if sweep != "" {
				var k1, k2 int
				if _, err := fmt.Sscanf(sweep, "%d-%d", &k1, &k2); err != nil || k1 < 1 || k2 < k1 || k2 > 16 {
					return usagef("--sweep %q: want K1-K2 with 1 <= K1 <= K2 <= 16", sweep)
				}
				return a.chordSweep(cmd.Context(), k1, k2, lookups, mode, seed, csv)
			}
			if duration <= 0 {
				return usagef("--duration must be positive")
			}
			if nodes < 2 || nodes > 1<<16 {
				return usagef("--nodes %d is not between 2 and 65536", nodes)
			}
			if fail < 0 || fail >= 1 || churn < 0 || vnodes < 1 {
				return usagef("--fail is in [0,1), --churn >= 0, --vnodes >= 1")
			}
			if r == 0 {
				r = chord.SuccessorsFor(nodes)
			}
			if lookups < 1 {
				return usagef("--lookups must be positive")
			}
			ctx := cmd.Context()
			cfg := chord.Config{Bits: 160, Successors: r, Replicas: -1, StabilizeInterval: 30 * time.Second,
				FixFingersInterval: 3 * time.Second, CheckPredecessorInterval: 30 * time.Second,
				ReplicateInterval: time.Hour, ExpireInterval: time.Hour}
			ring, err := sim.NewRing(nodes, cfg, seed)
			if err != nil {
				return err
			}
			rows := [][]string{{"measure", "n", "mean", "p1", "p99", "failed"}}
			row := func(what string, st sim.Stats, failed string) {
				rows = append(rows, []string{what, fmt.Sprint(st.N), fmt.Sprintf("%.2f", st.Mean), fmt.Sprintf("%.0f", st.P1), fmt.Sprintf("%.0f", st.P99), failed})
			}
			st := ring.Lookups(ctx, lookups, mode)
			row("path_length", st.Hops, fmt.Sprintf("%d/%d", st.Failed, st.Lookups))
			row("keys_per_node", sim.KeyLoad(nodes, keys, 1, seed), "")
			if vnodes > 1 {
				row(fmt.Sprintf("keys_per_node_%dvnodes", vnodes), sim.KeyLoad(nodes, keys, vnodes, seed), "")
			}
			if fail > 0 || churn > 0 {
				ring.Start()
				ring.Clock.Run(time.Minute)
			}
			if fail > 0 {
				ring.Fail(fail)
				st := ring.Lookups(ctx, lookups, mode)
				row(fmt.Sprintf("after_fail_%.2f", fail), st.Hops, fmt.Sprintf("%d/%d", st.Failed, st.Lookups))
				ring.Clock.Run(30 * time.Second)
				st = ring.Lookups(ctx, lookups, mode)
				row(fmt.Sprintf("after_fail_%.2f_stabilized", fail), st.Hops, fmt.Sprintf("%d/%d", st.Failed, st.Lookups))
			}
			if churn > 0 {
				st := ring.Churn(ctx, churn, duration)
				row(fmt.Sprintf("churn_%g_per_s", churn), st.Hops, fmt.Sprintf("%d/%d", st.Failed, st.Lookups))
			}
			for _, nd := range ring.Nodes {
				nd.Stop()
			}
			sep := "  "
			if csv {
				sep = ","
			}
			for _, rw := range rows {
				if csv {
					fmt.Fprintln(a.stdout, strings.Join(rw, sep))
				} else {
					fmt.Fprintf(a.stdout, "%-28s %7s %8s %6s %6s %s\n", rw[0], rw[1], rw[2], rw[3], rw[4], rw[5])
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 1024, "nodes in the ring")
	f.IntVar(&keys, "keys", 100000, "keys placed for the load measure")
	f.IntVar(&vnodes, "vnodes", 20, "virtual nodes per node for the second load measure (1: skip)")
	f.IntVar(&r, "successors", 0, "r, the successor-list length (default 2·log2 N)")
	f.IntVar(&lookups, "lookups", 2000, "lookups per measure")
	f.Float64Var(&fail, "fail", 0, "fraction of nodes that fail at once")
	f.Float64Var(&churn, "churn", 0, "joins (and as many failures) per second of virtual time")
	f.BoolVar(&csv, "csv", false, "print CSV for plotting")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.StringVar(&sweep, "sweep", "", "print the path-length table for N = 2^K1 … 2^K2 (e.g. 4-14)")
	f.BoolVar(&recur, "recursive", false, "recursive lookups (default iterative)")
	f.DurationVar(&duration, "duration", 10*time.Minute, "virtual time of the churn run")
	return cmd
}

func (a *app) chordSweep(ctx context.Context, k1, k2, lookups int, mode chord.LookupMode, seed uint64, csv bool) error {
	if lookups < 1 {
		return usagef("--lookups must be positive")
	}
	if csv {
		fmt.Fprintln(a.stdout, "k,nodes,mode,lookups,failed,mean,p1,p99,half_log2n,deviation,succlist_mean,succlist_deviation")
	} else {
		fmt.Fprintf(a.stdout, "%-4s %7s %-9s %8s %6s %4s %4s %8s %8s   %s\n", "k", "nodes", "mode", "failed", "mean", "p1", "p99", "½·log2 N", "vs ½·log2", "with successor list")
	}
	for k := k1; k <= k2; k++ {
		row, err := sim.PathLengths(ctx, k, lookups, mode, seed+uint64(k))
		if err != nil {
			return err
		}
		dev := 100 * (row.Length.Mean/row.Half - 1)
		sdev := 100 * (row.SuccList.Mean/row.Half - 1)
		if csv {
			fmt.Fprintf(a.stdout, "%d,%d,%v,%d,%d,%.3f,%.0f,%.0f,%.1f,%.1f,%.3f,%.1f\n", k, row.Nodes, mode, row.Lookups, row.Failed, row.Length.Mean, row.Length.P1, row.Length.P99, row.Half, dev, row.SuccList.Mean, sdev)
		} else {
			fmt.Fprintf(a.stdout, "%-4d %7d %-9v %8s %6.2f %4.0f %4.0f %8.1f %8.1f%%   %.2f (%+.1f%%)\n", k, row.Nodes, mode, fmt.Sprintf("%d/%d", row.Failed, 2*row.Lookups), row.Length.Mean, row.Length.P1, row.Length.P99, row.Half, dev, row.SuccList.Mean, sdev)
		}
	}
	return nil
}

// loadSigner reads a hex Ed25519 seed from path, or makes one there (mode
// 0600) when the file does not exist.
func loadSigner(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		priv := chord.NewSigner()
		if err := os.WriteFile(path, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
			return nil, err
		}
		return priv, nil
	}
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("chord: %s: not a hex Ed25519 seed of %d bytes", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
