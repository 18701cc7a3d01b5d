// Package sockets implements the course's first network programs: a server
// that reads a sentence from a client, converts it to upper case and sends it
// back, over TCP (TCPServer, SendTCP) and over UDP (UDPServer, SendUDP).
//
// The wire format is the course's, made precise:
//
//   - TCP: the client sends a line ending in "\n" (or "\r\n"); the server
//     answers with the same line in upper case and the same line ending. A
//     connection may carry many lines; the server closes it after IdleTimeout
//     without a complete line (FirstLine, seconds, for a new connection's
//     first line), and does not answer a line cut short by that. One address
//     (an IPv4 address, an IPv6 /64) holds at most MaxPerAddr of the
//     server's MaxConns connections; a connection over either cap is told
//     "ERROR too many connections from your address" or "ERROR server busy"
//     and closed, so one host cannot lock others out. A line longer than MaxLine bytes is answered
//     with "ERROR line too long (max N bytes)\n" and the connection is closed,
//     so no client can make the server buffer more than MaxLine bytes. Only
//     the client's last line may lack the "\n": it is answered, without one,
//     when the client half-closes its side.
//   - UDP: each datagram is one sentence, answered by one datagram to the
//     sender's address. A datagram longer than BufferSize bytes is not cut
//     short: the server answers "ERROR datagram too long (max N bytes)".
//
// Upper-casing follows Unicode (as the course's Python does) and leaves bytes
// that are not valid UTF-8 as they were, so nothing the client sent is lost
// or replaced. Both servers report every message to an optional
// *trace.Tracer.
package sockets
