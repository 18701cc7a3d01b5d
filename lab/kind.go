package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"

	"appnet/internal/labca"
	"appnet/trace"
)

// Kind is a kind of service a lab host can run: the name of its table in
// the lab file, its settings, and how to start it. Each subsystem registers
// its kinds (see uppercase.go) so that the lab grows with the project.
type Kind struct {
	Name string
	Doc  string // one line, for `appnet lab --kinds`

	newConfig func() any
	validate  func(any) error
	start     func(ctx context.Context, env *Env, cfg any) (Service, error)
}

// Service is a running lab service.
type Service interface {
	// Endpoints lists where the service listens.
	Endpoints() []Endpoint
	// Try lists shell commands a newcomer can run against the service.
	Try() []string
	// Check probes the service once, as a client would, and says what it
	// saw. Each probe is one line of `appnet lab --check`.
	Check(ctx context.Context) []Probe
	// Shutdown stops the service and waits for its goroutines.
	Shutdown(ctx context.Context) error
}

// Endpoint is one address a service listens on.
type Endpoint struct {
	Proto string // e.g. "uppercase/tcp"
	Addr  netip.AddrPort
}

// Probe is the outcome of one check.
type Probe struct {
	What   string // e.g. "uppercase/tcp 127.0.0.21:12000"
	Detail string // what was seen, e.g. `"lab check" -> "LAB CHECK" in 0.3ms`
	Err    error  // nil: OK
}

// Env is what a service is given to run on its host.
type Env struct {
	Host   string
	Addr   netip.Addr
	Tracer *trace.Tracer
	Logger *slog.Logger
	Dir    string // a directory of the host's own, for state that must survive
	Ports  Ports
	CA     *labca.CA // the lab's certificate authority: TLS services get their certificates from it
}

// TLSConfig returns the server TLS settings for a service of this host:
// a certificate of the lab's CA for names and the host's address.
func (e *Env) TLSConfig(names ...string) (*tls.Config, error) {
	if e.CA == nil {
		return nil, fmt.Errorf("lab: host %s: the lab has no certificate authority", e.Host)
	}
	cert, err := e.CA.Issue(names, []netip.Addr{e.Addr})
	if err != nil {
		return nil, fmt.Errorf("lab: host %s: %w", e.Host, err)
	}
	return labca.ServerConfig(cert), nil
}

// Listen opens a TCP listener on the host's address at the standard port
// std (mapped by the lab's port policy).
func (e *Env) Listen(ctx context.Context, std int) (net.Listener, error) {
	var lc net.ListenConfig
	addr := netip.AddrPortFrom(e.Addr, uint16(e.Ports.Map(std)))
	ln, err := lc.Listen(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("lab: host %s: %w", e.Host, err)
	}
	return ln, nil
}

// ListenPacket opens a UDP socket on the host's address at the standard
// port std (mapped by the lab's port policy).
func (e *Env) ListenPacket(ctx context.Context, std int) (net.PacketConn, error) {
	var lc net.ListenConfig
	addr := netip.AddrPortFrom(e.Addr, uint16(e.Ports.Map(std)))
	pc, err := lc.ListenPacket(ctx, "udp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("lab: host %s: %w", e.Host, err)
	}
	return pc, nil
}

// fieldError names the setting at fault, so Parse can point at its line.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// FieldError returns a validation error about the setting field of a
// service's table.
func FieldError(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// CheckPort validates a port setting: 0 (off) to 65535.
func CheckPort(field string, port int) error {
	if port < 0 || port > 65535 {
		return FieldError(field, "port %d is not between 0 (off) and 65535", port)
	}
	return nil
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]*Kind{}
)

// Register adds a kind of service. C is its settings struct (TOML keys in
// snake_case tags); defaults returns one with the defaults filled in;
// validate reports a bad setting (use FieldError to name it); start runs
// the service. It panics if the name is taken: registration happens in
// init functions.
func Register[C any](name, doc string, defaults func() *C, validate func(*C) error, start func(context.Context, *Env, *C) (Service, error)) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[name]; dup {
		panic("lab: kind registered twice: " + name)
	}
	kinds[name] = &Kind{
		Name:      name,
		Doc:       doc,
		newConfig: func() any { return defaults() },
		validate:  func(c any) error { return validate(c.(*C)) },
		start: func(ctx context.Context, env *Env, c any) (Service, error) {
			return start(ctx, env, c.(*C))
		},
	}
}

func lookupKind(name string) *Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return kinds[name]
}

// Kinds returns every registered kind, by name.
func Kinds() []*Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KindNames returns the names of every registered kind, sorted.
func KindNames() []string {
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name)
	}
	return names
}

// Ports maps the standard port of a service to the port the lab binds.
type Ports struct {
	// Offset is added to every port below 1024 (the privileged ones) when
	// the lab may not bind them. 0 means the standard ports are used.
	Offset int
}

// Map returns the port to bind for standard port std.
func (p Ports) Map(std int) int {
	if std > 0 && std < 1024 {
		return std + p.Offset
	}
	return std
}

// PrivilegedOffset is the documented offset for ports below 1024 when the
// lab runs without the privilege to bind them: DNS's 53 becomes 10053,
// HTTP's 80 becomes 10080, SMTP's 25 becomes 10025.
const PrivilegedOffset = 10000

// AutoPorts returns the port policy for this process: standard ports when
// it may bind privileged ones (root, CAP_NET_BIND_SERVICE, or a lowered
// net.ipv4.ip_unprivileged_port_start), PrivilegedOffset otherwise.
func AutoPorts() Ports {
	if canBindPrivileged() {
		return Ports{}
	}
	return Ports{Offset: PrivilegedOffset}
}
