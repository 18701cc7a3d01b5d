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
	"syscall"

	"golang.org/x/sys/unix"
)

// network is where an experiment's hosts live: host i listens and dials
// through it. The userspace network is loopback, with rates enforced by
// token buckets in the programs; the netns network gives each host a
// network namespace of its own, linked to a switch by a veth pair whose
// two directions are shaped by tc (htb, see shape), so the kernel enforces the rates
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

// shape returns the tc commands (for tc -batch) that limit a device to
// bytesPerSec, for a host that talks to others. Packets of 256 bytes and
// more (pieces, file data) share an htb class at that rate, queued per
// other host, one htb class each, sharing the link equally: the fair
// queueing that the programs' token buckets give in userspace, built from
// htb because this kernel has neither sfq nor fq_codel. Without them,
// whichever TCP flow holds the queue takes the link, so one peer gets the
// server's whole upload while the rest wait. The queues are short (48 KiB,
// four segments): data queued in the kernel cannot be cancelled, and a
// cancel or a request waits behind it in its TCP stream.
//
// Smaller packets (acks, requests, haves, handshakes) go first, in a class
// of their own beside the file's: a fifth of the rate more, not taken from
// it. The course's u is the rate of the file's bytes, and in userspace the
// buckets count only those, so a protocol's control traffic costs nothing
// there; charged to the link, it took 7% of each peer's upload at N = 32
// (a have to each other peer for each piece, an ack for every two
// segments received), and netns came out 11-17% slower than userspace at
// N = 24 and 32 for that reason alone (5-8% after it). At most a segment's
// last bytes of file data can ride that class, when a write ends in one
// shorter than 256 bytes.
//
// bytesPerSec is the rate of the file's bytes, as in the course's model;
// the link's rate adds the TCP/IP and Ethernet headers that a full-sized
// segment carries (66 bytes on 1448), so that a transfer gets the rate
// the bound assumes, as it does in userspace. matchDst says whether the
// other hosts are told apart by destination (a host's uplink) or by source
// (the switch's port towards the host, its downlink).
func shape(dev string, bytesPerSec int64, others []netip.Addr, matchDst bool) []string {
	wire := bytesPerSec * 1514 / 1448
	rate := func(r int64) string { return fmt.Sprintf("%dbit", max(r, 1000)*8) }
	// A millisecond of burst: enough for the timer's granularity, and a
	// transfer's start gains no more than that over the bound.
	burst := fmt.Sprint(max(wire/1000, 16<<10))
	class := func(id, parent string, r, ceil int64, prio int) string {
		return fmt.Sprintf("class add dev %s parent %s classid %s htb rate %s ceil %s burst %s cburst %s prio %d", dev, parent, id, rate(r), rate(ceil), burst, burst, prio)
	}
	queue := func(id string, limit int64) string {
		return fmt.Sprintf("qdisc add dev %s parent %s bfifo limit %d", dev, id, limit)
	}
	cmds := []string{
		fmt.Sprintf("qdisc add dev %s root handle 1: htb default 20", dev),
		class("1:1", "1:", wire, wire, 1),
		class("1:10", "1:", wire/5, wire/5, 0), queue("1:10", 64<<10),
		class("1:20", "1:1", wire/int64(len(others)+1), wire, 1), queue("1:20", 48<<10), // anything else
		// IPv4 total length below 256: the control class.
		fmt.Sprintf("filter add dev %s parent 1: protocol ip prio 1 u32 match u16 0x0000 0xff00 at 2 flowid 1:10", dev),
	}
	dir := "src"
	if matchDst {
		dir = "dst"
	}
	for j, a := range others {
		id := fmt.Sprintf("1:%x", 0x100+j)
		cmds = append(cmds, class(id, "1:1", wire/int64(len(others)+1), wire, 1), queue(id, 48<<10),
			fmt.Sprintf("filter add dev %s parent 1: protocol ip prio 2 u32 match ip %s %s/32 flowid %s", dev, dir, a, id))
	}
	return cmds
}

// tcBatch runs tc commands in a namespace, all in one tc process.
func tcBatch(ns string, cmds []string) error {
	c := exec.Command("ip", "netns", "exec", ns, "tc", "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("tc -batch in %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
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
	// With br_netfilter loaded, as on a machine that runs containers,
	// every frame the switch forwards would also pass through iptables: a
	// tenth of the CPU at N = 32, for nothing, since these namespaces have
	// no rules. (Since Linux 5.3 the setting is per namespace.)
	if err := sysctlNS(n.sw, map[string]string{
		"net/bridge/bridge-nf-call-iptables":  "0",
		"net/bridge/bridge-nf-call-ip6tables": "0",
		"net/bridge/bridge-nf-call-arptables": "0",
	}); err != nil {
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
			{"ip", "link", "add", hostEnd, "address", h.mac(), "type", "veth", "peer", "name", swEnd},
			{"ip", "link", "set", hostEnd, "netns", h.ns},
			{"ip", "link", "set", swEnd, "netns", n.sw},
			{"ip", "-n", h.ns, "link", "set", hostEnd, "name", "eth0"},
			{"ip", "-n", h.ns, "addr", "add", h.ip.String() + "/16", "dev", "eth0"},
			{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
			{"ip", "-n", h.ns, "link", "set", "lo", "up"},
			{"ip", "-n", n.sw, "link", "set", swEnd, "master", "br0"},
			{"ip", "-n", n.sw, "link", "set", swEnd, "up"},
		}
		// Segments of at most 8 packets (11.6 KB): veth otherwise hands
		// tc 64 KiB segments, which a short queue drops whole, stalling
		// the connection; one packet per segment, as on a real link,
		// costs more CPU than two cores have at N = 32.
		steps = append(steps,
			[]string{"ip", "-n", h.ns, "link", "set", "eth0", "gso_max_segs", "8"},
			[]string{"ip", "-n", n.sw, "link", "set", swEnd, "gso_max_segs", "8"})
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
	for i, h := range n.hosts {
		others := make([]netip.Addr, 0, len(n.hosts)-1)
		var neigh []string
		for j, o := range n.hosts {
			if j != i {
				others = append(others, o.ip)
				neigh = append(neigh, fmt.Sprintf("neigh replace %s lladdr %s dev eth0 nud permanent", o.ip, o.mac()))
			}
		}
		// Every host knows every other's link address from the start. With
		// ARP, a swarm's start broadcasts a request from each host for each
		// other, N² frames through the switch, more than the shaped queues
		// hold: lost ones delay a connection by a second, or lose it.
		c := exec.Command("ip", "-n", h.ns, "-batch", "-")
		c.Stdin = strings.NewReader(strings.Join(neigh, "\n") + "\n")
		if out, err := c.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip -batch in %s: %v: %s", h.ns, err, strings.TrimSpace(string(out)))
		}
		if up[i] > 0 {
			if err := tcBatch(h.ns, shape("eth0", up[i], others, true)); err != nil {
				return nil, err
			}
		}
		if down[i] > 0 {
			if err := tcBatch(n.sw, shape(fmt.Sprintf("%sb%d", n.prefix, i), down[i], others, false)); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// sysctlNS sets sysctls (paths below /proc/sys) in namespace ns; one
// whose file does not exist, as when its module is not loaded, is skipped.
func sysctlNS(ns string, set map[string]string) error {
	f, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	defer f.Close()
	return inNS(f, func(func() error) error {
		for k, v := range set {
			err := os.WriteFile("/proc/sys/"+k, []byte(v+"\n"), 0)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("experiment: sysctl %s in %s: %w", k, ns, err)
			}
		}
		return nil
	})
}

// mac is the host's link address, made from its IP address (a locally
// administered unicast address).
func (h nsHost) mac() string {
	a := h.ip.As4()
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}

// inNS runs f on an OS thread switched to the namespace of fd: sockets
// made there belong to that namespace for good. f may call leave to
// switch back before it returns, once its socket exists: what it does
// with the socket then needs no namespace, and no OS thread of its own.
func inNS(fd *os.File, f func(leave func() error) error) error {
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
	left := false
	var leaveErr error
	leave := func() error {
		if !left {
			left = true
			if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
				// The thread stays in the other namespace: keep it locked,
				// so the runtime retires it when this goroutine ends.
				leaveErr = fmt.Errorf("experiment: setns back: %w", err)
			} else {
				runtime.UnlockOSThread()
			}
		}
		return leaveErr
	}
	ferr := f(leave)
	return errors.Join(ferr, leave())
}

func (n *netns) listen(i int) (net.Listener, error) {
	var ln net.Listener
	err := inNS(n.hosts[i].fd, func(func() error) error {
		var err error
		lc := net.ListenConfig{Control: ccControl}
		ln, err = lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(n.hosts[i].ip, 0).String())
		return err
	})
	return ln, err
}

func (n *netns) dial(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(n.hosts[i].fd, func(leave func() error) error {
			// The dial leaves the namespace as soon as its socket is made.
			// Holding the OS thread until the connection was up made the
			// dials of a swarm's start (about a thousand at N = 32) wait
			// for new threads, one after another: 500 dials at once took
			// 108 ms, now 47 ms (19 ms on loopback).
			made := false
			d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
				if made {
					return errors.New("experiment: a second socket for one dial would be outside the namespace")
				}
				made = true
				if err := ccControl(network, address, rc); err != nil {
					return err
				}
				return leave()
			}}
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

// ccControl makes a socket use CUBIC, Linux's default congestion control,
// whatever the machine's default is (a host may choose BBR, which overruns
// short shaped queues and loses a tenth of its packets there). Sockets
// accepted by a listener inherit it. A kernel without CUBIC keeps its
// default.
func ccControl(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic") //nolint:errcheck // best effort, see above
	})
}
