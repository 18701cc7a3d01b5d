package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"appnet/experiment"
)

func init() { addCommand((*app).experimentCommand) }

func (a *app) experimentCommand() *cobra.Command {
	return group("experiment", "reproduce the course's quantitative results with real transfers",
		a.experimentDistributionCommand())
}

func (a *app) experimentDistributionCommand() *cobra.Command {
	var (
		peers, fileSize, serverUp, peerUp, peerDown, shaper, out, strategy string
		runs                                                               int
		quick, withAria2                                                   bool
		p                                                                  experiment.Params
	)
	cmd := &cobra.Command{
		Use:   "distribution [--peers 1,2,4,8,16,24,32] [--file-size 8MiB] [--runs K] [-o DIR]",
		Short: "client-server vs P2P distribution time, measured, against the course's bounds",
		Long: `Distribution sends one file to N peers for each N, twice: from an HTTP server
whose upload is capped at --server-up to N clients capped at --peer-down, and
with appnet's tracker, a seeder capped at --server-up and N appnet leechers
capped at --peer-up and --peer-down, all started together. It measures when
each peer completes, checks every copy's hash, and compares the time until
the last one completes with the course's bounds

  D_cs  = max{N·F/u_s, F/d_min}
  D_p2p = max{F/u_s, F/d_min, N·F/(u_s + N·u)}

printing a table in units of F/u. --strategy optimal also runs the course's
constructive schedule that attains the P2P bound (the server cuts the file in
parts that the peers relay to each other at full rate), to show how close
BitTorrent comes to the best possible; --aria2c also runs the same swarm with
aria2c, another BitTorrent client, as seeder and leechers. With -o DIR it writes distribution.csv (every
run) and the course's figure as distribution.png and distribution.svg. The
defaults (F = 8 MiB, u = 2 MiB/s so F/u = 4 s, u_s = 10u, d = u_s) take a few
minutes; --quick runs N = 1, 4, 8 with F/u = 2 s in well under a minute.
--shaper userspace (the default) enforces the rates with token buckets inside
the programs, on loopback; --shaper netns (root) gives each host a network
namespace of its own on a virtual switch, with both directions of its link
shaped by tc (htb, a fair share per other host, small packets first, the
rates raised by the TCP/IP headers so the file's bytes get u), and runs the
programs unlimited, with CUBIC congestion control.`,
		Example: `  appnet experiment distribution --quick
  appnet experiment distribution -o docs      # the full sweep and docs/distribution.png`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if quick {
				if !cmd.Flags().Changed("peers") {
					peers = "1,4,8"
				}
				if !cmd.Flags().Changed("file-size") {
					fileSize = "4MiB"
				}
			}
			var err error
			if p.Peers, err = parseInts(peers); err != nil {
				return usagef("--peers: %v", err)
			}
			for name, v := range map[string]struct {
				s   string
				dst *int64
			}{"file-size": {fileSize, &p.FileSize}, "server-up": {serverUp, &p.ServerUp}, "peer-up": {peerUp, &p.PeerUp}, "peer-down": {peerDown, &p.PeerDown}} {
				if *v.dst, err = parseSize(v.s); err != nil || *v.dst <= 0 {
					return usagef("--%s: %q is not a positive size", name, v.s)
				}
			}
			if shaper != "userspace" && shaper != "netns" {
				return usagef("--shaper %q: want userspace or netns", shaper)
			}
			p.Shaper = shaper
			p.Modes = []string{experiment.ClientServer, experiment.P2P}
			switch strategy {
			case "bittorrent":
			case "optimal":
				p.Modes = append(p.Modes, experiment.Optimal)
			default:
				return usagef("--strategy %q: want bittorrent or optimal", strategy)
			}
			if withAria2 {
				p.Modes = append(p.Modes, experiment.Aria2)
			}
			p.Runs = runs
			p.Logger = a.logger
			p.Progress = func(r experiment.Result) {
				fmt.Fprintf(a.stderr, "N=%-3d %-13s run %d: %6.2fs  bound %6.2fs  ratio %.3f\n", r.N, r.Mode, r.Run, r.Measured.Seconds(), r.Bound.Seconds(), r.Ratio())
			}
			// A closed pipe (appnet experiment distribution | head) would
			// kill the process at its next line of output, leaving its
			// namespaces and files behind. Taking SIGPIPE makes such a write
			// fail instead, and the run finishes, writes -o's files and
			// cleans up. (The signal also comes for sockets whose peer has
			// gone, which the programs handle as errors: it cannot stop the
			// run.)
			sigpipe := make(chan os.Signal, 1)
			signal.Notify(sigpipe, syscall.SIGPIPE)
			defer signal.Stop(sigpipe)
			results, err := experiment.Distribution(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			experiment.WriteSummary(a.stdout, p, results)
			if out == "" {
				return nil
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(out, "distribution.csv"))
			if err != nil {
				return err
			}
			if err := experiment.WriteCSV(f, p, results); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := experiment.Plot(p, results, filepath.Join(out, "distribution.png"), filepath.Join(out, "distribution.svg")); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nwrote %s, %s and %s\n", filepath.Join(out, "distribution.csv"), filepath.Join(out, "distribution.png"), filepath.Join(out, "distribution.svg"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&peers, "peers", "1,2,4,8,16,24,32", "values of N, comma-separated")
	f.StringVar(&fileSize, "file-size", "8MiB", "F, the file's size")
	f.StringVar(&serverUp, "server-up", "20MiB", "u_s, the server's (seeder's) upload rate per second")
	f.StringVar(&peerUp, "peer-up", "2MiB", "u, each peer's upload rate per second")
	f.StringVar(&peerDown, "peer-down", "20MiB", "d, each peer's download rate per second")
	f.StringVar(&shaper, "shaper", "userspace", "how rates are enforced: userspace (token buckets) or netns (namespaces and tc; root)")
	f.IntVar(&runs, "runs", 1, "runs of each point (the plot shows min-max bars)")
	f.BoolVar(&withAria2, "aria2c", false, "also run the P2P distribution with aria2c (seeder and leechers) through the same tracker")
	f.StringVar(&strategy, "strategy", "bittorrent", "P2P as appnet's BitTorrent, or also the course's optimal schedule (optimal)")
	f.StringVarP(&out, "output", "o", "", "folder for distribution.csv, .png and .svg")
	f.BoolVar(&quick, "quick", false, "N = 1, 4, 8 and a 4 MiB file: under a minute")
	f.DurationVar(&p.ChokeInterval, "choke-interval", 0, "the peers' rechoke period (default F/u / 8: the course's 10 s scaled down)")
	f.DurationVar(&p.OptimisticEvery, "optimistic-interval", 0, "the optimistic unchoke period (default 3 rechoke periods)")
	return cmd
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive whole number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
