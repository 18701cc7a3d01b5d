package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"appnet/sockets"
)

// UppercaseConfig is the [host.NAME.uppercase] table: the course's TCP and
// UDP uppercase servers.
type UppercaseConfig struct {
	TCP         int           `toml:"tcp"`          // TCP port; 0: no TCP server
	UDP         int           `toml:"udp"`          // UDP port; 0: no UDP server
	IdleTimeout time.Duration `toml:"idle_timeout"` // e.g. "2m"
	MaxLine     int           `toml:"max_line"`     // bytes
	UDPBuffer   int           `toml:"udp_buffer"`   // bytes
}

func init() {
	Register("uppercase", "the course's TCP and UDP uppercase servers (sockets)",
		func() *UppercaseConfig {
			return &UppercaseConfig{IdleTimeout: sockets.DefaultIdleTimeout, MaxLine: sockets.DefaultMaxLine, UDPBuffer: sockets.DefaultBufferSize}
		},
		validateUppercase, startUppercase)
}

func validateUppercase(c *UppercaseConfig) error {
	if err := CheckPort("tcp", c.TCP); err != nil {
		return err
	}
	if err := CheckPort("udp", c.UDP); err != nil {
		return err
	}
	if c.TCP == 0 && c.UDP == 0 {
		return errors.New("set a tcp or a udp port (or both)")
	}
	if c.IdleTimeout <= 0 {
		return FieldError("idle_timeout", "must be positive")
	}
	if c.MaxLine < 1 || c.MaxLine > 64<<20 {
		return FieldError("max_line", "%d is not between 1 and 64 MiB", c.MaxLine)
	}
	if c.UDPBuffer < 1 || c.UDPBuffer > sockets.MaxUDPPayload {
		return FieldError("udp_buffer", "%d is not between 1 and %d", c.UDPBuffer, sockets.MaxUDPPayload)
	}
	return nil
}

type uppercase struct {
	env       *Env
	tcp       *sockets.TCPServer
	udp       *sockets.UDPServer
	endpoints []Endpoint
	wg        sync.WaitGroup
}

func startUppercase(ctx context.Context, env *Env, c *UppercaseConfig) (Service, error) {
	u := &uppercase{env: env}
	if c.TCP != 0 {
		ln, err := env.Listen(ctx, c.TCP)
		if err != nil {
			return nil, err
		}
		u.tcp = &sockets.TCPServer{Host: env.Host, Tracer: env.Tracer, Logger: env.Logger, IdleTimeout: c.IdleTimeout, MaxLine: c.MaxLine}
		u.endpoints = append(u.endpoints, Endpoint{Proto: "uppercase/tcp", Addr: netip.MustParseAddrPort(ln.Addr().String())})
		u.serve(func() error { return u.tcp.Serve(ln) })
	}
	if c.UDP != 0 {
		pc, err := env.ListenPacket(ctx, c.UDP)
		if err != nil {
			u.Shutdown(ctx) //nolint:errcheck
			return nil, err
		}
		u.udp = &sockets.UDPServer{Host: env.Host, Tracer: env.Tracer, Logger: env.Logger, BufferSize: c.UDPBuffer}
		u.endpoints = append(u.endpoints, Endpoint{Proto: "uppercase/udp", Addr: netip.MustParseAddrPort(pc.LocalAddr().String())})
		u.serve(func() error { return u.udp.Serve(pc) })
	}
	return u, nil
}

func (u *uppercase) serve(f func() error) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := f(); err != nil && !errors.Is(err, sockets.ErrServerClosed) {
			u.env.Logger.Error("uppercase server stopped", "err", err)
		}
	}()
}

func (u *uppercase) Endpoints() []Endpoint { return u.endpoints }

func (u *uppercase) Try() []string {
	var out []string
	for _, ep := range u.endpoints {
		flag := ""
		if strings.HasSuffix(ep.Proto, "/udp") {
			flag = "--udp "
		}
		out = append(out, fmt.Sprintf("appnet uppercase send --trace %s%s 'hello from %s'", flag, ep.Addr, u.env.Host))
	}
	return out
}

func (u *uppercase) Check(ctx context.Context) []Probe {
	cl := sockets.Client{Host: "lab-check", Tracer: u.env.Tracer, Timeout: 2 * time.Second}
	text := "appnet lab check of " + u.env.Host
	var probes []Probe
	for _, ep := range u.endpoints {
		send := cl.TCP
		if strings.HasSuffix(ep.Proto, "/udp") {
			send = cl.UDP
		}
		start := time.Now()
		got, err := send(ctx, ep.Addr.String(), text)
		p := Probe{What: ep.Proto + " " + ep.Addr.String()}
		switch want := strings.ToUpper(text); {
		case err != nil:
			p.Err = err
		case got != want:
			p.Err = fmt.Errorf("sent %q, got %q", text, got)
		default:
			p.Detail = fmt.Sprintf("%q -> %q in %v", text, got, time.Since(start).Round(10*time.Microsecond))
		}
		probes = append(probes, p)
	}
	return probes
}

func (u *uppercase) Shutdown(ctx context.Context) error {
	var errs []error
	if u.tcp != nil {
		errs = append(errs, u.tcp.Shutdown(ctx))
	}
	if u.udp != nil {
		errs = append(errs, u.udp.Shutdown(ctx))
	}
	u.wg.Wait()
	return errors.Join(errs...)
}
