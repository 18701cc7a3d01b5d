package experiment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Aria2 is the mode that runs the P2P distribution with aria2c, an
// independent BitTorrent client, as the seeder and every leecher, through
// appnet's tracker: the same swarm, another implementation, in the same
// run. In userspace mode aria2c enforces the rates itself
// (--max-overall-upload-limit, --max-overall-download-limit); in netns
// mode tc does, as for appnet.
const Aria2 = "aria2c"

// aria2Args keeps aria2c to the experiment's swarm: no DHT, local peer
// discovery or peer exchange, no preallocation, bound to the host's
// address, seeding without end until stopped.
func aria2Args(ip string, port int, up, down int64, dir, torrentFile string, extra ...string) []string {
	args := []string{
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--file-allocation=none", "--interface=" + ip, "--listen-port=" + strconv.Itoa(port),
		"--console-log-level=warn", "--summary-interval=0", "--seed-ratio=0.0", "--check-integrity=false",
		"--bt-max-peers=0", "--follow-torrent=false", "-d", dir,
		// Ask the tracker again every second rather than at the interval
		// it gives (a minute): a leecher that announced before the
		// seeder would otherwise wait that long for a peer, where the
		// appnet seeder dials the leechers it learns of.
		"--bt-tracker-interval=1",
	}
	if up > 0 {
		args = append(args, "--max-overall-upload-limit="+strconv.FormatInt(up, 10))
	}
	if down > 0 {
		args = append(args, "--max-overall-download-limit="+strconv.FormatInt(down, 10))
	}
	return append(append(args, extra...), torrentFile)
}

// runAria2 distributes the file with aria2c processes: a seeder and n
// leechers started together, all staying until the last completes. A
// leecher is complete when aria2c runs its download-complete hook.
func runAria2(ctx context.Context, p Params, nw network, n int, file, dir string, sum [32]byte) (Result, error) {
	bin, err := exec.LookPath("aria2c")
	if err != nil {
		return Result{}, errors.New("experiment: the aria2c mode needs aria2c (Debian package aria2)")
	}
	mi, stopTracker, err := startSwarm(ctx, p, nw, file)
	if err != nil {
		return Result{}, err
	}
	defer stopTracker()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	tf := filepath.Join(dir, "x.torrent")
	f, err := os.Create(tf)
	if err != nil {
		return Result{}, err
	}
	if err := mi.Write(f); err != nil {
		f.Close()
		return Result{}, err
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*p.Bound(P2P, n)+30*time.Second)
	defer cancel()
	up, down := func(r int64) int64 { return r }, func(r int64) int64 { return r }
	if nw.shaped() {
		up = func(int64) int64 { return 0 }
		down = up
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			if c.Process != nil {
				c.Process.Signal(syscall.SIGKILL) //nolint:errcheck // ours, by PID
				c.Wait()                          //nolint:errcheck
			}
		}
	}()
	touch, err := exec.LookPath("touch")
	if err != nil {
		return Result{}, err
	}
	start := func(host int, args []string) error {
		c := nw.command(ctx, host, bin, args...)
		if host > 0 {
			c.Dir = markerDir(dir, host-1)
			if err := os.MkdirAll(c.Dir, 0o755); err != nil {
				return err
			}
		}
		if lf, err := os.Create(filepath.Join(dir, fmt.Sprintf("aria2c-%d.log", host))); err == nil {
			defer lf.Close()
			c.Stdout, c.Stderr = lf, lf
		}
		if err := c.Start(); err != nil {
			return err
		}
		cmds = append(cmds, c)
		return nil
	}
	// Each aria2c gets a port the system just handed out on its host and
	// released, so it does not collide with other programs' ports.
	port := func(host int) (int, error) {
		ln, err := nw.listen(host)
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	sp, err := port(0)
	if err != nil {
		return Result{}, err
	}
	// The seeder trusts its file (it is the source), as appnet's seeder
	// would after its own check.
	if err := start(0, aria2Args(nw.ip(0), sp, up(p.ServerUp), 0, filepath.Dir(file), tf, "--bt-seed-unverified=true")); err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	for i := range n {
		ld := filepath.Join(dir, strconv.Itoa(i))
		lp, err := port(i + 1)
		if err != nil {
			return Result{}, err
		}
		if err := start(i+1, aria2Args(nw.ip(i+1), lp, up(p.PeerUp), down(p.PeerDown), ld, tf, "--on-bt-download-complete="+touch)); err != nil {
			return Result{}, err
		}
	}
	times := make([]time.Duration, n)
	left := n
	for left > 0 {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("%d of the aria2c leechers did not complete; the seeder said: %s; a leecher said: %s", left, tail(filepath.Join(dir, "aria2c-0.log")), tail(filepath.Join(dir, "aria2c-1.log")))
		}
		for i := range n {
			if times[i] != 0 {
				continue
			}
			// aria2c runs its --on-bt-download-complete hook (touch, in
			// the leecher's marker folder) once every piece is verified,
			// before it goes on seeding.
			if ents, err := os.ReadDir(markerDir(dir, i)); err == nil && len(ents) > 0 {
				times[i] = time.Since(t0)
				left--
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range n {
		got, err := fileSum(filepath.Join(dir, strconv.Itoa(i), mi.Info.Name))
		if err != nil {
			return Result{}, err
		}
		if got != sum {
			return Result{}, fmt.Errorf("aria2c leecher %d's copy differs from the file", i)
		}
	}
	return finish(times), nil
}

// tail returns the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// markerDir is where leecher i's download-complete hook leaves its mark.
func markerDir(dir string, i int) string { return filepath.Join(dir, "done-"+strconv.Itoa(i)) }
