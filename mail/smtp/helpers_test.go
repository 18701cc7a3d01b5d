package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// memSpool keeps accepted messages in memory; err, when set, is what
// Enqueue fails with.
type memSpool struct {
	mu   sync.Mutex
	n    int
	msgs []spooled
	err  error
}

type spooled struct {
	id, from string
	rcpts    []string
	data     []byte
}

func (m *memSpool) NewID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return fmt.Sprintf("Q%05d", m.n)
}

func (m *memSpool) Enqueue(_ context.Context, id, from string, rcpts []string, msg []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.msgs = append(m.msgs, spooled{id, from, append([]string(nil), rcpts...), append([]byte(nil), msg...)})
	return nil
}

func (m *memSpool) all() []spooled {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]spooled(nil), m.msgs...)
}

// users: hamburger.edu is local; its users are bob and anyone named
// userN.
type users struct{}

func (users) IsLocalDomain(d string) bool { return d == "hamburger.edu" }
func (users) UserExists(_ context.Context, addr string) (bool, error) {
	local, _, _ := strings.Cut(strings.ToLower(addr), "@")
	return local == "bob" || strings.HasPrefix(local, "user"), nil
}

type passwords map[string]string

func (p passwords) Authenticate(_ context.Context, user, pass string) error {
	if want, ok := p[user]; ok && want == pass {
		return nil
	}
	return ErrBadCredentials
}

func newServer(role Role, spool Spool) *Server {
	return &Server{Role: role, Hostname: "hamburger.edu", Spool: spool, Recipients: users{},
		Auth: passwords{"alice": "secret"}}
}

func serve(t *testing.T, s *Server) string {
	t.Helper()
	return testnet.Serve(t, s, testnet.ListenTCP(t), ErrServerClosed)
}

// client is a raw SMTP client for transcript tests.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func dialFrom(t *testing.T, src, addr string) *client {
	t.Helper()
	c, err := testnet.DialFrom(src, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one reply; it returns the code and the last line's text.
func (c *client) reply() (int, string) {
	c.t.Helper()
	for i := 0; i < 1000; i++ {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, "connection closed: " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			c.t.Fatalf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			c.t.Fatalf("malformed reply %q", line)
		}
		if len(line) == 3 || line[3] == ' ' {
			return code, strings.TrimSpace(line[3:])
		}
	}
	c.t.Fatal("endless reply")
	return 0, ""
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends a line and checks the reply's code.
func (c *client) cmd(line string, want int) string {
	c.t.Helper()
	c.write(line + "\r\n")
	code, text := c.reply()
	if code != want {
		c.t.Fatalf("%q: got %d %s, want %d", line, code, text, want)
	}
	return text
}

func (c *client) expect(want int) string {
	c.t.Helper()
	code, text := c.reply()
	if code != want {
		c.t.Fatalf("got %d %s, want %d", code, text, want)
	}
	return text
}

// closed reports whether the server closed the connection.
func (c *client) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil
}

var errNoSpace = fmt.Errorf("queue: insufficient storage: %w", &netErrWrap{syscall.ENOSPC})

type netErrWrap struct{ err error }

func (e *netErrWrap) Error() string { return "write /q/log: " + e.err.Error() }
func (e *netErrWrap) Unwrap() error { return e.err }

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// selfSigned returns the server's TLS settings: a certificate for the
// course's hamburger.edu from a CA made for the test.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	cfg, _ := testnet.TLS(t, "hamburger.edu", "localhost")
	return cfg
}
