package experiment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// network is where an experiment's hosts live: host i listens and dials
// through it. The userspace network is loopback, with rates enforced by
// token buckets in the programs; the netns network gives each host a
// network namespace of its own, linked to a switch by a veth pair whose
// two directions are shaped by tc (tbf), so the kernel enforces the rates
// and the programs run unlimited.
type network interface {
	// listen opens a TCP listener on host i.
	listen(i int) (net.Listener, error)
	// dial opens a TCP connection from host i.
	dial(i int) func(ctx context.Context, network, addr string) (net.Conn, error)
	// shaped reports whether the network enforces the rates itself.
	shaped() bool
	// command prepares a program to run on host i, and ip is host i's
	// address (for programs that bind one).
	command(ctx context.Context, i int, name string, args ...string) *exec.Cmd
	ip(i int) string
	close() error
}

// loopback is the userspace network: every host is 127.0.0.1.
type loopback struct{}

func (loopback) listen(int) (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
func (loopback) dial(int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext
}
func (loopback) shaped() bool { return false }
func (loopback) command(ctx context.Context, _ int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
func (loopback) ip(int) string { return "127.0.0.1" }
func (loopback) close() error  { return nil }

// netns is a switch namespace with a bridge, and one namespace per host
// with an address in 10.233.0.0/16: the project's own test hosts, which no
// traffic leaves.
type netns struct {
	prefix string // names of namespaces and links start with it
	sw     string // the switch's namespace
	hosts  []nsHost
}

type nsHost struct {
	ns string
	ip netip.Addr
	fd *os.File // the namespace, held open for setns
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// shape returns the tc commands that limit a device to bytesPerSec. An
// htb class holds the total rate; inside it, packets under 512 bytes
// (requests, haves, acks, handshakes) go first and the rest (pieces, file
// data) after, each class with a byte-limited queue of 100 ms (128 KiB at least: TCP
// on a veth sends 64 KiB segments, and a queue that drops them stalls it).
// Without that, a peer's requests wait behind the pieces it uploads, as on
// a real saturated uplink, and BitTorrent slows down for a reason the
// course's model does not have. (veth hands tc large GSO segments, so the
// headers add well under 1% to the payload.)
func shape(ns, dev string, bytesPerSec int64) [][]string {
	tc := func(args ...string) []string { return append([]string{"ip", "netns", "exec", ns, "tc"}, args...) }
	rate := fmt.Sprintf("%dbit", bytesPerSec*8)
	small := fmt.Sprintf("%dbit", max(bytesPerSec/10, 1000)*8)
	queue := fmt.Sprint(max(bytesPerSec/10, 128<<10))
	burst := fmt.Sprint(max(bytesPerSec/250, 16<<10))
	return [][]string{
		tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "20"),
		tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate, "burst", burst, "cburst", burst),
		tc("class", "add", "dev", dev, "parent", "1:1", "classid", "1:10", "htb", "rate", small, "ceil", rate, "burst", burst, "cburst", burst, "prio", "0"),
		tc("class", "add", "dev", dev, "parent", "1:1", "classid", "1:20", "htb", "rate", rate, "ceil", rate, "burst", burst, "cburst", burst, "prio", "1"),
		tc("qdisc", "add", "dev", dev, "parent", "1:10", "bfifo", "limit", queue),
		tc("qdisc", "add", "dev", dev, "parent", "1:20", "bfifo", "limit", queue),
		// IPv4 total length below 512.
		tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "u16", "0x0000", "0xfe00", "at", "2", "flowid", "1:10"),
	}
}

// newNetns creates the switch and one host per rate pair (up[i], down[i]);
// a rate of 0 leaves that direction unshaped. It needs root (CAP_NET_ADMIN)
// and the ip and tc commands.
func newNetns(up, down []int64) (_ *netns, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("experiment: --shaper netns needs root (network namespaces and tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("experiment: --shaper netns needs %s (Debian package iproute2)", tool)
		}
	}
	n := &netns{prefix: fmt.Sprintf("apx%d", os.Getpid()%100000)}
	defer func() {
		if err != nil {
			n.close() //nolint:errcheck // the first error is the one to report
		}
	}()
	n.sw = n.prefix + "sw"
	if err := run("ip", "netns", "add", n.sw); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", n.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", n.sw, "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	for i := range up {
		h := nsHost{ns: fmt.Sprintf("%sh%d", n.prefix, i), ip: netip.AddrFrom4([4]byte{10, 233, byte((i + 1) / 250), byte((i+1)%250 + 1)})}
		hostEnd, swEnd := fmt.Sprintf("%sa%d", n.prefix, i), fmt.Sprintf("%sb%d", n.prefix, i)
		if err := run("ip", "netns", "add", h.ns); err != nil {
			return nil, err
		}
		n.hosts = append(n.hosts, h) // from here on, close deletes it
		steps := [][]string{
			{"ip", "link", "add", hostEnd, "type", "veth", "peer", "name", swEnd},
			{"ip", "link", "set", hostEnd, "netns", h.ns},
			{"ip", "link", "set", swEnd, "netns", n.sw},
			{"ip", "-n", h.ns, "link", "set", hostEnd, "name", "eth0"},
			{"ip", "-n", h.ns, "addr", "add", h.ip.String() + "/16", "dev", "eth0"},
			{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
			{"ip", "-n", h.ns, "link", "set", "lo", "up"},
			{"ip", "-n", n.sw, "link", "set", swEnd, "master", "br0"},
			{"ip", "-n", n.sw, "link", "set", swEnd, "up"},
		}
		if up[i] > 0 {
			steps = append(steps, shape(h.ns, "eth0", up[i])...)
		}
		if down[i] > 0 {
			steps = append(steps, shape(n.sw, swEnd, down[i])...)
		}
		for _, s := range steps {
			if err := run(s...); err != nil {
				return nil, err
			}
		}
		f, err := os.Open("/var/run/netns/" + h.ns)
		if err != nil {
			return nil, fmt.Errorf("experiment: %w", err)
		}
		n.hosts[i].fd = f
	}
	return n, nil
}

// inNS runs f on an OS thread switched to the namespace of fd: sockets
// made there belong to that namespace for good.
func inNS(fd *os.File, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("experiment: setns: %w", err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in the other namespace: keep it locked, so the
		// runtime retires it when this goroutine ends.
		return errors.Join(ferr, fmt.Errorf("experiment: setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (n *netns) listen(i int) (net.Listener, error) {
	var ln net.Listener
	err := inNS(n.hosts[i].fd, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(n.hosts[i].ip, 0).String())
		return err
	})
	return ln, err
}

func (n *netns) dial(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(n.hosts[i].fd, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func (n *netns) shaped() bool { return true }

func (n *netns) command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.hosts[i].ns, name}, args...)...)
}

func (n *netns) ip(i int) string { return n.hosts[i].ip.String() }

// close deletes every namespace it made; the veth pairs and the bridge go
// with them.
func (n *netns) close() error {
	var errs []error
	for _, h := range n.hosts {
		if h.fd != nil {
			h.fd.Close()
		}
	}
	for i, h := range n.hosts {
		errs = append(errs, run("ip", "netns", "del", h.ns))
		// A veth end left in this namespace by a setup that failed half way.
		run("ip", "link", "del", fmt.Sprintf("%sa%d", n.prefix, i)) //nolint:errcheck // usually gone already
	}
	if n.sw != "" {
		errs = append(errs, run("ip", "netns", "del", n.sw))
	}
	n.hosts = nil
	return errors.Join(errs...)
}
