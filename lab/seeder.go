package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"appnet/p2p/metainfo"
	"appnet/p2p/torrent"
)

// SeederConfig is the [host.NAME.seeder] table: a BitTorrent peer that
// seeds a sample file it makes itself, announced to a tracker.
type SeederConfig struct {
	Port       int    `toml:"port"`        // peer-wire TCP port
	Tracker    string `toml:"tracker"`     // announce URL
	Name       string `toml:"name"`        // the sample file's name
	SampleSize int64  `toml:"sample_size"` // bytes
	PieceSize  int64  `toml:"piece_size"`  // bytes, a power of two
	UpRate     int64  `toml:"up_rate"`     // bytes/s; 0: unlimited
	// MaxConnsPerAddr caps the connections from one address; the lab's
	// default is 64, as every leecher on the lab's machine may dial from
	// 127.0.0.1 (negative: no cap).
	MaxConnsPerAddr int `toml:"max_conns_per_addr"`
}

func init() {
	Register("seeder", "a BitTorrent peer seeding a sample file it makes (p2p/torrent)",
		func() *SeederConfig {
			return &SeederConfig{Port: 6881, Name: "sample.bin", SampleSize: 4 << 20, PieceSize: 256 << 10, MaxConnsPerAddr: 64}
		},
		validateSeeder, startSeeder)
}

func validateSeeder(c *SeederConfig) error {
	if err := CheckPort("port", c.Port); err != nil {
		return err
	}
	if c.Port == 0 {
		return FieldError("port", "a seeder needs a port")
	}
	if c.Tracker == "" {
		return FieldError("tracker", "a seeder needs a tracker announce URL")
	}
	if c.Name == "" || c.Name != filepath.Base(c.Name) || c.Name == "." || c.Name == ".." {
		return FieldError("name", "%q is not a plain file name", c.Name)
	}
	if c.SampleSize < 1 || c.SampleSize > 1<<30 {
		return FieldError("sample_size", "%d is not between 1 byte and 1 GiB", c.SampleSize)
	}
	if c.PieceSize < 16<<10 || c.PieceSize&(c.PieceSize-1) != 0 {
		return FieldError("piece_size", "%d is not a power of two of at least 16 KiB", c.PieceSize)
	}
	if c.UpRate < 0 {
		return FieldError("up_rate", "must not be negative")
	}
	return nil
}

type seeder struct {
	env      *Env
	t        *torrent.Torrent
	mi       *metainfo.MetaInfo
	file     string // the .torrent
	data     string // the sample file
	endpoint Endpoint
	done     chan error
}

// sampleData is the seeder's file: pseudo-random bytes from the host name,
// the same on every run.
func sampleData(host string, size int64) []byte {
	var seed [32]byte
	copy(seed[:], "appnet lab sample "+host)
	r := rand.New(rand.NewChaCha8(seed))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func startSeeder(ctx context.Context, env *Env, c *SeederConfig) (Service, error) {
	dir := filepath.Join(env.Dir, "seed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, c.Name)
	if err := os.WriteFile(data, sampleData(env.Host, c.SampleSize), 0o644); err != nil {
		return nil, err
	}
	mi, err := metainfo.Create(ctx, data, metainfo.CreateOptions{PieceLength: c.PieceSize, Announce: c.Tracker, CreatedBy: "appnet lab"})
	if err != nil {
		return nil, err
	}
	file := filepath.Join(env.Dir, c.Name+".torrent")
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := mi.Write(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	t, err := torrent.New(mi, torrent.Config{
		Dir: dir, Host: env.Host, Tracer: env.Tracer, Logger: env.Logger,
		UpRate: c.UpRate, MaxConnsPerAddr: c.MaxConnsPerAddr, SeedRatio: torrent.SeedForever, Announcer: torrent.TrackerAnnouncer(env.Tracer),
	})
	if err != nil {
		return nil, err
	}
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		t.Shutdown(ctx) //nolint:errcheck
		return nil, err
	}
	s := &seeder{env: env, t: t, mi: mi, file: file, data: data, done: make(chan error, 1),
		endpoint: Endpoint{Proto: "bittorrent/tcp", Addr: netip.MustParseAddrPort(ln.Addr().String())}}
	t.Start(context.WithoutCancel(ctx))
	go func() { s.done <- t.Serve(ln) }()
	return s, nil
}

func (s *seeder) Endpoints() []Endpoint { return []Endpoint{s.endpoint} }

func (s *seeder) Try() []string {
	return []string{
		fmt.Sprintf("appnet torrent info %s", s.file),
		fmt.Sprintf("appnet torrent get --trace %s -o /tmp/appnet-get --seed-ratio 0", s.file),
		fmt.Sprintf("aria2c --enable-dht=false --bt-enable-lpd=false --enable-peer-exchange=false --seed-time=0 -d /tmp/aria2-get %s", s.file),
	}
}

// Check downloads the sample through the tracker with a fresh appnet
// leecher and compares it byte for byte.
func (s *seeder) Check(ctx context.Context) []Probe {
	p := Probe{What: fmt.Sprintf("bittorrent/tcp %s: download %s via tracker", s.endpoint.Addr, s.mi.Info.Name)}
	start := time.Now()
	dir, err := os.MkdirTemp("", "appnet-lab-leech-")
	if err != nil {
		p.Err = err
		return []Probe{p}
	}
	defer os.RemoveAll(dir)
	leech, err := torrent.New(s.mi, torrent.Config{Dir: dir, Host: "lab-check", Tracer: s.env.Tracer, Logger: s.env.Logger, SeedRatio: torrent.SeedNone, Announcer: torrent.TrackerAnnouncer(s.env.Tracer)})
	if err != nil {
		p.Err = err
		return []Probe{p}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		leech.Shutdown(ctx) //nolint:errcheck
		p.Err = err
		return []Probe{p}
	}
	leech.Start(ctx)
	served := make(chan error, 1)
	go func() { served <- leech.Serve(ln) }()
	werr := leech.Wait(ctx)
	st := leech.Status()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	leech.Shutdown(sctx) //nolint:errcheck
	<-served
	if werr != nil {
		p.Err = fmt.Errorf("not complete after %v: %d of %d pieces, %d peers, tracker %s", time.Since(start).Round(time.Millisecond), st.Have, st.Pieces, st.Peers, st.Tracker)
		return []Probe{p}
	}
	got, err1 := os.ReadFile(filepath.Join(dir, s.mi.Info.Name))
	want, err2 := os.ReadFile(s.data)
	if err := errors.Join(err1, err2); err != nil {
		p.Err = err
		return []Probe{p}
	}
	if !bytes.Equal(got, want) {
		p.Err = errors.New("the downloaded file differs from the seeder's")
		return []Probe{p}
	}
	p.Detail = fmt.Sprintf("%d bytes in %d pieces, identical, in %v", len(got), st.Pieces, time.Since(start).Round(time.Millisecond))
	return []Probe{p}
}

func (s *seeder) Shutdown(ctx context.Context) error {
	err := s.t.Shutdown(ctx)
	<-s.done
	return err
}
