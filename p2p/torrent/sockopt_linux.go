package torrent

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// notSentLowat bounds the bytes a peer connection holds in the kernel that
// were not yet sent. Without it, a writer fills a send buffer of megabytes
// on a slow link: blocks committed to one peer wait there for seconds while
// the choker and other peers' requests wait behind them. With it, the
// writer blocks instead, and what goes out next is still our choice. It
// is one block: a cancel or a choke waits behind little, on a slow uplink
// where the kernel otherwise holds a second of pieces; on loopback it
// costs nothing measurable (scripts/bench-torrent, 512 MiB: 213 MB/s
// with it, 207 MB/s with 128 KiB).
const notSentLowat = 16 << 10

// tuneConn sets notSentLowat on c's socket, if it has one (a *net.TCPConn,
// or a connection wrapping one, such as connlimit's).
func tuneConn(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) { //nolint:errcheck // best effort: the connection works without it
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat) //nolint:errcheck
	})
}
