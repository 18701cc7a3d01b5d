package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"appnet/p2p/metainfo"
	"appnet/p2p/torrent"
)

func init() { addCommand((*app).torrentCommand) }

func (a *app) torrentCommand() *cobra.Command {
	return group("torrent", "BitTorrent: make and read .torrent files, download and seed",
		a.torrentCreateCommand(), a.torrentInfoCommand(), a.torrentGetCommand(), a.torrentSeedCommand())
}

func (a *app) torrentCreateCommand() *cobra.Command {
	var (
		out, pieceSize, comment string
		trackers                []string
		private                 bool
	)
	cmd := &cobra.Command{
		Use:   "create PATH -o FILE.torrent --tracker URL",
		Short: "make a .torrent of a file or folder",
		Long: `Create hashes PATH (a file, or a folder and everything in it) in pieces, on all
cores, and writes the metainfo to FILE. Each --tracker is one tier of the
announce list (BEP 12); the first is also the announce URL.`,
		Example: `  appnet torrent create ./photos -o photos.torrent --tracker http://127.0.0.60:6969/announce`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("-o FILE.torrent is required")
			}
			size, err := parseSize(pieceSize)
			if err != nil {
				return usagef("--piece-size: %v", err)
			}
			opts := metainfo.CreateOptions{PieceLength: size, Comment: comment, CreatedBy: "appnet", Private: private}
			if len(trackers) > 0 {
				opts.Announce = trackers[0]
				if len(trackers) > 1 {
					for _, tr := range trackers {
						opts.AnnounceList = append(opts.AnnounceList, []string{tr})
					}
				}
			}
			prog := newProgress(a.stderr, "hashing")
			opts.Progress = func(done, total int) {
				prog.update(fmt.Sprintf("%d/%d pieces", done, total), float64(done)/float64(max(total, 1)))
			}
			mi, err := metainfo.Create(cmd.Context(), args[0], opts)
			prog.done()
			if err != nil {
				return err
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := mi.Write(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			h := mi.InfoHash()
			fmt.Fprintf(a.stdout, "wrote %s: %d pieces of %s, info hash %s\n", out, mi.Info.NumPieces(), formatBytes(mi.Info.PieceLength), hex.EncodeToString(h[:]))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "the .torrent file to write")
	f.StringArrayVar(&trackers, "tracker", nil, "tracker announce URL (repeat for more tiers)")
	f.StringVar(&pieceSize, "piece-size", "256KiB", "piece length: a power of two, e.g. 64KiB, 1MiB")
	f.StringVar(&comment, "comment", "", "free text stored in the torrent")
	f.BoolVar(&private, "private", false, "mark the torrent private (BEP 27: trackers only)")
	return cmd
}

func (a *app) torrentInfoCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "info FILE.torrent",
		Short:   "print what a .torrent holds: name, size, pieces, trackers, files, magnet link",
		Long:    "Info reads and checks a .torrent file; a damaged one is refused with the field at fault.",
		Example: `  appnet torrent info photos.torrent`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			mi, err := metainfo.LoadFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			h := mi.InfoHash()
			w := a.stdout
			fmt.Fprintf(w, "name:       %s\n", mi.Info.Name)
			fmt.Fprintf(w, "info hash:  %s\n", hex.EncodeToString(h[:]))
			fmt.Fprintf(w, "size:       %s (%d bytes)\n", formatBytes(mi.Info.TotalLength()), mi.Info.TotalLength())
			fmt.Fprintf(w, "pieces:     %d of %s\n", mi.Info.NumPieces(), formatBytes(mi.Info.PieceLength))
			if mi.Info.Private {
				fmt.Fprintln(w, "private:    yes")
			}
			if mi.Announce != "" {
				fmt.Fprintf(w, "announce:   %s\n", mi.Announce)
			}
			for i, tier := range mi.AnnounceList {
				fmt.Fprintf(w, "tier %d:     %s\n", i+1, strings.Join(tier, " "))
			}
			if mi.Comment != "" {
				fmt.Fprintf(w, "comment:    %s\n", mi.Comment)
			}
			if mi.CreatedBy != "" {
				fmt.Fprintf(w, "created by: %s\n", mi.CreatedBy)
			}
			if !mi.CreationDate.IsZero() {
				fmt.Fprintf(w, "created:    %s\n", mi.CreationDate.UTC().Format(time.RFC3339))
			}
			if mi.Info.IsDir() {
				fmt.Fprintf(w, "files:      %d\n", len(mi.Info.Files))
				for _, f := range mi.Info.Files {
					fmt.Fprintf(w, "  %10s  %s\n", formatBytes(f.Length), filepath.Join(f.Path...))
				}
			}
			fmt.Fprintf(w, "magnet:     %s\n", mi.Magnet())
			return nil
		},
	}
}

// torrentFlags are the flags get and seed share.
type torrentFlags struct {
	listen            string
	peers             []string
	upRate, downRate  string
	seedRatio         float64
	maxConns          int
	maxConnsPerAddr   int
	chokeInterval     time.Duration
	optimisticEvery   time.Duration
	noTracker, verify bool
	dht               string
}

func (tf *torrentFlags) add(cmd *cobra.Command, defaultRatio float64) {
	f := cmd.Flags()
	f.StringVar(&tf.listen, "listen", "127.0.0.1:0", "address to accept peers on")
	f.StringArrayVar(&tf.peers, "peer", nil, "a peer to connect to, host:port (repeatable; besides the trackers')")
	f.StringVar(&tf.upRate, "up-rate", "0", "upload limit in bytes/s, e.g. 1MiB (0: none)")
	f.StringVar(&tf.downRate, "down-rate", "0", "download limit in bytes/s, e.g. 1MiB (0: none)")
	f.Float64Var(&tf.seedRatio, "seed-ratio", defaultRatio, "after completing, seed until uploaded/size reaches this (0: leave at once; -1: until Ctrl-C)")
	f.IntVar(&tf.maxConns, "max-conns", 50, "connections at most")
	f.IntVar(&tf.maxConnsPerAddr, "max-conns-per-addr", torrent.DefaultMaxConnsPerAddr, "incoming connections at most from one address (IPv4 address or IPv6 /64); negative: no cap")
	f.DurationVar(&tf.chokeInterval, "choke-interval", 10*time.Second, "tit-for-tat rechoke period")
	f.DurationVar(&tf.optimisticEvery, "optimistic-interval", 30*time.Second, "optimistic unchoke period")
	f.BoolVar(&tf.noTracker, "no-tracker", false, "do not announce to the torrent's trackers")
	f.BoolVar(&tf.verify, "verify", false, "re-check every piece on disk even if resume data exists")
	f.StringVar(&tf.dht, "dht", "", "also find peers through the Chord ring node at ADDR (trackerless; see appnet chord)")
}

func (a *app) torrentGetCommand() *cobra.Command {
	var (
		tf  torrentFlags
		dir string
	)
	cmd := &cobra.Command{
		Use:   "get FILE.torrent -o DIR",
		Short: "download a torrent into DIR, then seed it as --seed-ratio says",
		Long: `Get joins the torrent's swarm through its trackers (and --peer addresses),
downloads the missing pieces rarest first, verifies each, and uploads to others
as it goes (tit-for-tat). A restart after a crash fetches only the pieces that
were not verified before it; a file changed on disk since is checked again
first. A peer that sends bad data is banned once it is proven to (smart ban);
one that sends blocks it was not asked for is dropped. Progress shows as a bar on a terminal and as
status lines otherwise.`,
		Example: `  appnet torrent get photos.torrent -o ./downloads --seed-ratio 0
  appnet torrent get photos.torrent -o ./downloads --no-tracker --dht 127.0.0.1:4000   # trackerless, through appnet chord node`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usagef("-o DIR is required")
			}
			return a.runTorrent(cmd.Context(), args[0], dir, &tf)
		},
	}
	cmd.Flags().StringVarP(&dir, "output", "o", "", "folder to download into")
	tf.add(cmd, 1.0)
	return cmd
}

func (a *app) torrentSeedCommand() *cobra.Command {
	var tf torrentFlags
	cmd := &cobra.Command{
		Use:   "seed FILE.torrent PATH",
		Short: "seed PATH (the torrent's file or folder) until Ctrl-C",
		Long: `Seed checks PATH against the torrent's piece hashes (on all cores) and serves
it to the swarm. PATH is the file (single-file torrent) or the folder (multi-file
torrent) the torrent was made of.`,
		Example: `  appnet torrent seed photos.torrent ./photos --listen 127.0.0.61:6881`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			mi, err := metainfo.LoadFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			path := filepath.Clean(args[1])
			if err := checkSeedPath(mi, path); err != nil {
				return err
			}
			return a.runTorrent(cmd.Context(), args[0], filepath.Dir(path), &tf)
		},
	}
	tf.add(cmd, -1)
	return cmd
}

// checkSeedPath refuses to seed from a path that is not the torrent's
// data, so that seeding never creates or resizes a file of the user's.
func checkSeedPath(mi *metainfo.MetaInfo, path string) error {
	if filepath.Base(path) != mi.Info.Name {
		return fmt.Errorf("%s: the torrent's data is named %q; give the path of that file or folder", path, mi.Info.Name)
	}
	for _, fe := range metainfo.NewLayout(&mi.Info).Files {
		p := filepath.Join(append([]string{filepath.Dir(path)}, fe.Path...)...)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Size() != fe.Length {
			return fmt.Errorf("%s: %d bytes, but the torrent says %d", p, st.Size(), fe.Length)
		}
	}
	return nil
}

// runTorrent downloads or seeds until done or Ctrl-C.
func (a *app) runTorrent(ctx context.Context, file, dir string, tf *torrentFlags) error {
	mi, err := metainfo.LoadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	up, err := parseSize(tf.upRate)
	if err != nil {
		return usagef("--up-rate: %v", err)
	}
	down, err := parseSize(tf.downRate)
	if err != nil {
		return usagef("--down-rate: %v", err)
	}
	ratio := tf.seedRatio
	cfg := torrent.Config{
		Dir: dir, Host: "peer", Tracer: a.tracer, Logger: a.logger,
		MaxConns: tf.maxConns, MaxConnsPerAddr: tf.maxConnsPerAddr, UpRate: up, DownRate: down, SeedRatio: &ratio, Verify: tf.verify,
		Choke:           torrent.ChokeConfig{Interval: tf.chokeInterval, OptimisticEvery: tf.optimisticEvery},
		DisableTrackers: tf.noTracker,
	}
	switch {
	case tf.dht != "" && tf.noTracker:
		cfg.Announcer = torrent.DHTAnnouncer(tf.dht, 2*time.Minute)
	case tf.dht != "":
		cfg.Announcer = torrent.Announcers(torrent.TrackerAnnouncer(a.tracer), torrent.DHTAnnouncer(tf.dht, 2*time.Minute))
	case !tf.noTracker:
		cfg.Announcer = torrent.TrackerAnnouncer(a.tracer)
	}
	t, err := torrent.New(mi, cfg)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", tf.listen)
	if err != nil {
		t.Shutdown(context.Background()) //nolint:errcheck
		return err
	}
	t.Start(ctx)
	serveErr := make(chan error, 1)
	go func() { serveErr <- t.Serve(ln) }()
	for _, p := range tf.peers {
		t.AddPeer(p)
	}
	fmt.Fprintf(a.stderr, "%s: %s in %d pieces; listening on %s\n", mi.Info.Name, formatBytes(mi.Info.TotalLength()), mi.Info.NumPieces(), ln.Addr())

	prog := newProgress(a.stderr, mi.Info.Name)
	waitErr := make(chan error, 1)
	go func() { waitErr <- t.Wait(ctx) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var result error
loop:
	for {
		select {
		case <-tick.C:
			st := t.Status()
			prog.update(statusLine(st), float64(st.Have)/float64(max(st.Pieces, 1)))
		case err := <-waitErr:
			if err != nil && ctx.Err() == nil {
				result = err
			}
			break loop
		case err := <-serveErr:
			result = err
			break loop
		}
	}
	st := t.Status()
	prog.update(statusLine(st), float64(st.Have)/float64(max(st.Pieces, 1)))
	prog.done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := t.Shutdown(sctx); err != nil && result == nil {
		result = err
	}
	if result == nil && !st.Complete {
		result = errors.New("stopped before the download completed (run again to resume)")
	}
	if result == nil {
		fmt.Fprintf(a.stdout, "%s: complete, %s in %s; uploaded %s\n", mi.Info.Name, formatBytes(st.Size), filepath.Join(dir, mi.Info.Name), formatBytes(st.Uploaded))
	}
	return result
}

func statusLine(st torrent.Status) string {
	eta := "-"
	if st.ETA > 0 {
		eta = st.ETA.Round(time.Second).String()
	}
	state := "downloading"
	if st.Complete {
		state = "seeding"
	}
	return fmt.Sprintf("%s %d/%d pieces, down %s/s up %s/s, %d peers (%d seeds), ETA %s, tracker: %s",
		state, st.Have, st.Pieces, formatBytes(int64(st.DownRate)), formatBytes(int64(st.UpRate)), st.Peers, st.Seeds, eta, st.Tracker)
}

// progress shows one line of status: redrawn in place with a bar on a
// terminal, printed every few seconds otherwise.
type progress struct {
	w        io.Writer
	label    string
	tty      bool
	last     time.Time
	lastLine string
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(line string, frac float64) {
	p.lastLine = line
	if p.tty {
		const width = 24
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %3.0f%% %s", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, line)
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s: %s\n", p.label, line)
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// parseSize reads a byte count such as 256KiB, 1MiB, 10MB or 4096.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size such as 256KiB", s)
	}
	return int64(v * float64(mult)), nil
}

// formatBytes prints a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
