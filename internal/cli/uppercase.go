package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"appnet/sockets"
)

func init() { addCommand((*app).uppercaseCommand) }

func (a *app) uppercaseCommand() *cobra.Command {
	return group("uppercase", "the course's first socket programs: a TCP and a UDP server that answer in upper case",
		a.uppercaseServeCommand(), a.uppercaseSendCommand())
}

func (a *app) uppercaseServeCommand() *cobra.Command {
	var (
		tcpAddr, udpAddr string
		tcp              sockets.TCPServer
		udp              sockets.UDPServer
	)
	cmd := &cobra.Command{
		Use:   "serve [--tcp ADDR] [--udp ADDR]",
		Short: "serve the uppercase protocol over TCP, UDP or both, until Ctrl-C",
		Long: `Serve answers each line a TCP client sends, and each datagram a UDP client
sends, with the same text in upper case. A TCP line longer than --max-line is
answered with "ERROR line too long (max N bytes)" and the connection is closed;
a datagram longer than --udp-buffer with "ERROR datagram too long (max N bytes)".`,
		Example: `  appnet uppercase serve --tcp 127.0.0.1:12000 --udp 127.0.0.1:12000
  appnet uppercase send 127.0.0.1:12000 hello          # in another terminal: HELLO`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tcpAddr == "" && udpAddr == "" {
				return usagef("give --tcp ADDR, --udp ADDR or both")
			}
			ctx := cmd.Context()
			var lc net.ListenConfig
			var servers []func() error
			var shutdowns []func(context.Context) error
			if tcpAddr != "" {
				ln, err := lc.Listen(ctx, "tcp", tcpAddr)
				if err != nil {
					return err
				}
				tcp.Host, tcp.Tracer, tcp.Logger = "server", a.tracer, a.logger
				fmt.Fprintf(a.stdout, "uppercase: serving TCP on %s\n", ln.Addr())
				servers = append(servers, func() error { return tcp.Serve(ln) })
				shutdowns = append(shutdowns, tcp.Shutdown)
			}
			if udpAddr != "" {
				pc, err := lc.ListenPacket(ctx, "udp", udpAddr)
				if err != nil {
					for _, s := range shutdowns {
						s(ctx) //nolint:errcheck
					}
					return err
				}
				udp.Host, udp.Tracer, udp.Logger = "server", a.tracer, a.logger
				fmt.Fprintf(a.stdout, "uppercase: serving UDP on %s\n", pc.LocalAddr())
				servers = append(servers, func() error { return udp.Serve(pc) })
				shutdowns = append(shutdowns, udp.Shutdown)
			}
			return serveUntilDone(ctx, a, servers, shutdowns)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tcpAddr, "tcp", "", "TCP address to listen on, e.g. 127.0.0.1:12000")
	f.StringVar(&udpAddr, "udp", "", "UDP address to listen on, e.g. 127.0.0.1:12000")
	f.DurationVar(&tcp.IdleTimeout, "idle-timeout", sockets.DefaultIdleTimeout, "close a TCP connection after this long without a complete line")
	f.IntVar(&tcp.MaxLine, "max-line", sockets.DefaultMaxLine, "longest TCP line answered, in bytes")
	f.IntVar(&tcp.MaxConns, "max-conns", sockets.DefaultMaxConns, "TCP connections served at once")
	f.IntVar(&tcp.MaxPerAddr, "max-per-addr", sockets.DefaultMaxPerAddr, "TCP connections from one address (IPv6: one /64) at once; -1: no cap")
	f.DurationVar(&tcp.FirstLine, "first-line-timeout", sockets.DefaultFirstLine, "close a new TCP connection whose first line is not complete by then")
	f.IntVar(&udp.BufferSize, "udp-buffer", sockets.DefaultBufferSize, "largest datagram answered, in bytes (at most 65507)")
	return cmd
}

// serveUntilDone runs servers until ctx ends (Ctrl-C) or one fails, then
// shuts them all down.
func serveUntilDone(ctx context.Context, a *app, servers []func() error, shutdowns []func(context.Context) error) error {
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, serve := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(); err != nil && !errors.Is(err, sockets.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		a.logger.Info("stopping")
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range shutdowns {
		s(sctx) //nolint:errcheck // the servers are going away either way
	}
	wg.Wait()
	return err
}

func (a *app) uppercaseSendCommand() *cobra.Command {
	var (
		useUDP bool
		cl     sockets.Client
	)
	cmd := &cobra.Command{
		Use:   "send [--udp] ADDR TEXT",
		Short: "send TEXT to an uppercase server and print its answer",
		Long: `Send connects to the server at ADDR (host:port), sends TEXT as one line over TCP
(or as one datagram with --udp) and prints the answer. Over UDP it tries again
when no answer comes within --timeout, up to --tries times.`,
		Example: `  appnet uppercase send 127.0.0.1:12000 hello            # prints HELLO
  appnet --trace uppercase send --udp 127.0.0.1:12000 hello   # and shows C: hello / S: HELLO`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl.Host, cl.Tracer = "client", a.tracer
			send := cl.TCP
			if useUDP {
				send = cl.UDP
			}
			reply, err := send(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, reply)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&useUDP, "udp", false, "send one UDP datagram instead of a TCP line")
	f.DurationVar(&cl.Timeout, "timeout", 0, "how long to wait for an answer (default 5s over TCP, 1s per try over UDP)")
	f.IntVar(&cl.Tries, "tries", 3, "UDP attempts before giving up")
	return cmd
}
