package tracker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// benchSwarms are the torrents the benchmarks announce to: 1000 peers
// spread over 10 swarms, each peer with its own port (opentracker tells
// peers apart by address and port).
var benchSwarms = func() []Hash {
	var hs []Hash
	for i := range 10 {
		hs = append(hs, hash(fmt.Sprintf("bench-swarm-%08d", i)))
	}
	return hs
}()

// announceLoad announces n times (spread over goroutines as RunParallel
// does) and returns announces per second.
func announceLoad(b *testing.B, c *Client, url string) {
	b.Helper()
	var seq atomic.Int64
	var failed atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(seq.Add(1))
			p := i % 1000
			req := Request{InfoHash: benchSwarms[p%10], PeerID: peerID(p), Port: uint16(20000 + p), Left: int64(p % 3), NumWant: 50}
			if _, err := c.Announce(context.Background(), url, req); err != nil {
				if failed.Add(1) == 1 {
					b.Errorf("announce: %v", err)
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
}

// benchServer is a Server for the benchmarks' load, which comes from one
// address: its per-address limits are on, so that their bookkeeping is
// measured, but too high to refuse anything.
func benchServer() *Server {
	return &Server{MaxPeersPerAddr: 1 << 20, AnnounceRate: 1e12, AnnounceBurst: 1 << 30}
}

func benchClient() *Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &Client{HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}, UDPBase: time.Second}
}

// BenchmarkAnnounce measures announces per second of our client against
// our server, in one process, over HTTP (keep-alive) and UDP.
func BenchmarkAnnounce(b *testing.B) {
	for _, proto := range []string{"http", "udp"} {
		b.Run(proto, func(b *testing.B) {
			r := start(b, benchServer())
			url := r.httpURL
			if proto == "udp" {
				url = r.udpURL
			}
			c := benchClient()
			b.ResetTimer()
			announceLoad(b, c, url)
			b.StopTimer()
			c.HTTP.CloseIdleConnections()
		})
	}
}

// startOpentracker runs Debian's opentracker on 127.0.0.1 with a whitelist
// of benchSwarms (it is built to require one) until the benchmark ends.
// It refuses to run as root, so as root it is told to drop to nobody.
func startOpentracker(b *testing.B) (httpURL, udpURL string) {
	bin := testnet.NeedTool(b, "opentracker")
	dir, err := os.MkdirTemp("", "appnet-opentracker-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // opentracker chroots here and reads the whitelist as nobody
	var wl []byte
	for _, h := range benchSwarms {
		wl = append(wl, h.String()+"\n"...)
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), wl, 0o644); err != nil {
		b.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-P", strconv.Itoa(port), "-d", dir, "-w", "whitelist"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	httpURL = fmt.Sprintf("http://127.0.0.1:%d/announce", port)
	udpURL = fmt.Sprintf("udp://127.0.0.1:%d", port)
	var c Client
	for try := 0; ; try++ {
		_, err := c.Announce(context.Background(), httpURL, Request{InfoHash: benchSwarms[0], PeerID: peerID(1), Port: 1, Left: 1})
		if err == nil {
			break
		}
		if try == 50 {
			b.Fatalf("opentracker does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return httpURL, udpURL
}

// helperEnv makes the test binary run trackerProcess instead of the tests,
// so that a benchmark can run our tracker in a process of its own, as
// opentracker runs in its own.
const helperEnv = "APPNET_TRACKER_HELPER"

// trackerProcess serves our tracker on 127.0.0.1 (HTTP and UDP), prints
// "http://… udp://…" on stdout, and stops when stdin closes.
func trackerProcess() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s := benchServer()
	if n, err := strconv.Atoi(os.Getenv(helperEnv + "_READERS")); err == nil {
		s.UDPReaders = n
	}
	go s.Serve(ln)
	go s.ServeUDP(pc)
	fmt.Printf("http://%s/announce udp://%s\n", ln.Addr(), pc.LocalAddr())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
	return 0
}

// startTrackerProcess runs trackerProcess in a child process until the
// benchmark ends.
func startTrackerProcess(b *testing.B) (httpURL, udpURL string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("tracker process: %v", err)
	}
	if _, err := fmt.Sscan(line, &httpURL, &udpURL); err != nil {
		b.Fatalf("tracker process said %q: %v", line, err)
	}
	return httpURL, udpURL
}

// BenchmarkVsOpentracker runs the same announce load against our tracker
// and opentracker in the same run, each server in a process of its own, and reports each one's announces per
// second and our ratio (appnet/opentracker; above 1 means we are faster).
// The load is generated by a lean client so that it measures the servers
// rather than our Client: over UDP, each of 4 workers keeps one socket and
// one connection ID and sends one announce at a time; over HTTP, each
// request is a new connection with "Connection: close", since opentracker
// closes every connection after its answer. The two servers take turns,
// three rounds each, so that noise from other work on the machine falls on
// both.
func BenchmarkVsOpentracker(b *testing.B) {
	otHTTP, otUDP := startOpentracker(b)
	ourHTTP, ourUDP := startTrackerProcess(b)
	for _, proto := range []string{"http", "udp"} {
		b.Run(proto, func(b *testing.B) {
			ours, theirs := ourHTTP, otHTTP
			load := httpLoad
			if proto == "udp" {
				ours, theirs = ourUDP, otUDP
				load = udpLoad
			}
			const rounds, workers = 3, 4
			var tOurs, tTheirs time.Duration
			n := max(b.N/rounds, workers)
			for range rounds {
				tOurs += load(b, ours, n, workers)
				tTheirs += load(b, theirs, n, workers)
			}
			total := float64(n * rounds)
			a, o := total/tOurs.Seconds(), total/tTheirs.Seconds()
			b.ReportMetric(a, "appnet-ann/s")
			b.ReportMetric(o, "opentracker-ann/s")
			b.ReportMetric(a/o, "ratio")
		})
	}
}

func benchRequest(i int) Request {
	p := i % 1000
	return Request{InfoHash: benchSwarms[p%10], PeerID: peerID(p), Port: uint16(20000 + p), Left: int64(p % 3), NumWant: 50}
}

// udpLoad sends n announces from `workers` sockets, one at a time each,
// and returns the time taken.
func udpLoad(b *testing.B, url string, n, workers int) time.Duration {
	host, err := udpTracker(url)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", host)
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			buf := make([]byte, 4096)
			call := func(pkt []byte) []byte {
				for try := 0; try < 5; try++ {
					conn.Write(pkt)
					conn.SetReadDeadline(time.Now().Add(time.Second))
					k, err := conn.Read(buf)
					if err == nil && k >= 8 {
						return buf[:k]
					}
				}
				b.Errorf("%s: no answer", url)
				return nil
			}
			reply := call(connectPkt(1))
			if len(reply) < 16 {
				return
			}
			id := binary.BigEndian.Uint64(reply[8:])
			for {
				i := int(seq.Add(1))
				if i > n {
					return
				}
				q := benchRequest(i)
				reply := call(announcePkt(id, uint32(i), q.InfoHash, q.PeerID, uint64(q.Left), None, q.Port))
				if reply == nil {
					return
				}
				if binary.BigEndian.Uint32(reply) != actionAnnounce {
					b.Errorf("%s: reply %q", url, reply)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// httpLoad sends n announces, each on a new connection, from `workers`
// goroutines, and returns the time taken.
func httpLoad(b *testing.B, url string, n, workers int) time.Duration {
	hostPath := strings.TrimPrefix(url, "http://")
	host, path, _ := strings.Cut(hostPath, "/")
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8192)
			for {
				i := int(seq.Add(1))
				if i > n {
					return
				}
				conn, err := net.Dial("tcp", host)
				if err != nil {
					b.Error(err)
					return
				}
				fmt.Fprintf(conn, "GET /%s?%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, AnnounceQuery(benchRequest(i)), host)
				var got []byte
				for {
					k, err := conn.Read(buf)
					got = append(got, buf[:k]...)
					if err != nil {
						break
					}
				}
				conn.Close()
				if !bytes.Contains(got, []byte("8:interval")) {
					b.Errorf("%s: answer %q", url, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkHandlePacket is the server's own work for one UDP announce,
// without the sockets.
func BenchmarkHandlePacket(b *testing.B) {
	s := benchServer()
	s.init()
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	id := s.connID(from.Addr(), s.bucket())
	pkts := make([][]byte, 1000)
	for i := range pkts {
		q := benchRequest(i)
		pkts[i] = announcePkt(id, uint32(i), q.InfoHash, q.PeerID, uint64(q.Left), None, q.Port)
	}
	reply := make([]byte, 0, 4096)
	peers := make([]Peer, 0, DefaultMaxNumwant) // as readLoop keeps them
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		reply = s.handlePacketBuf(pkts[i%len(pkts)], from, reply, nil, peers)
	}
}

// BenchmarkStoreAnnounce is the store's work for one announce, without
// parsing or sockets: 1000 peers in 10 swarms announcing again in turn,
// from one address, with the per-address bookkeeping on.
func BenchmarkStoreAnnounce(b *testing.B) {
	s := benchServer()
	s.init()
	src := netip.MustParseAddr("127.0.0.1")
	peers := make([]Peer, 0, DefaultMaxNumwant)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.announceBuf(benchRequest(i), src, 4, peers); err != nil {
			b.Fatal(err)
		}
	}
}
