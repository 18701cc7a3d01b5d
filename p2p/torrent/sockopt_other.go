//go:build !linux

package torrent

import "net"

func tuneConn(net.Conn) {}
