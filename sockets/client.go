package sockets

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"appnet/trace"
)

// Client sends sentences to an uppercase server. The zero value works.
type Client struct {
	Host    string        // name reported in traces
	Tracer  *trace.Tracer // nil: no tracing
	Timeout time.Duration // per attempt; default 5 s for TCP, 1 s for UDP
	Tries   int           // UDP attempts before giving up; default 3
}

// ServerError is an error line sent by the server instead of an answer. An
// answer is always in upper case, so a line starting with "ERROR " that
// contains a lower-case ASCII letter can only be an error.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return "sockets: server said: " + e.Msg }

// ErrTimeout is returned when no answer came in time.
var ErrTimeout = errors.New("sockets: no answer in time")

func isServerError(reply string) bool {
	return strings.HasPrefix(reply, "ERROR ") && strings.ContainsFunc(reply, func(r rune) bool { return 'a' <= r && r <= 'z' })
}

// TCP connects to addr, sends text as one line and returns the server's
// answer without its line ending.
func (cl *Client) TCP(ctx context.Context, addr, text string) (string, error) {
	if strings.ContainsAny(text, "\n") {
		return "", errors.New("sockets: text must be a single line")
	}
	timeout := orDefault(cl.Timeout, 5*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("sockets: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck
	defer stop()
	tc := cl.Tracer.Conv(cl.Host, "uppercase/tcp", trace.Client, c.LocalAddr(), c.RemoteAddr())
	tc.Send(text)
	if _, err := c.Write([]byte(text + "\n")); err != nil {
		return "", cl.wrap(ctx, err)
	}
	// Answers are as long as the question, give or take a few bytes per
	// character that grows when upper-cased, or an error line.
	r := bufio.NewReader(c)
	line, err := readLine(r, nil, 4*len(text)+256)
	switch {
	case errors.Is(err, errLineTooLong):
		return "", errors.New("sockets: the answer is much longer than the question")
	case err != nil && len(line) == 0:
		return "", cl.wrap(ctx, err)
	}
	tc.RecvBytes(line)
	reply := strings.TrimRight(string(line), "\r\n")
	if isServerError(reply) {
		return "", &ServerError{Msg: reply}
	}
	return reply, nil
}

func (cl *Client) wrap(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrTimeout
	}
	return fmt.Errorf("sockets: %w", err)
}

// UDP sends text to addr in one datagram and returns the answer. UDP may
// lose either datagram, so it tries up to Tries times, waiting Timeout for
// each answer.
func (cl *Client) UDP(ctx context.Context, addr, text string) (string, error) {
	if len(text) > MaxUDPPayload {
		return "", fmt.Errorf("sockets: text of %d bytes does not fit in one UDP datagram (max %d)", len(text), MaxUDPPayload)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", fmt.Errorf("sockets: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck
	defer stop()
	tc := cl.Tracer.Conv(cl.Host, "uppercase/udp", trace.Client, c.LocalAddr(), c.RemoteAddr())
	buf := make([]byte, MaxUDPPayload+1)
	timeout := orDefault(cl.Timeout, time.Second)
	tries := orDefault(cl.Tries, 3)
	for try := 1; try <= tries; try++ {
		tc.Send(text)
		if _, err := c.Write([]byte(text)); err != nil {
			return "", cl.wrap(ctx, err)
		}
		c.SetReadDeadline(time.Now().Add(timeout)) //nolint:errcheck
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return "", ErrTimeout
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tc.Notef("no answer in %v (try %d of %d)", timeout, try, tries)
				continue
			}
			if isConnRefused(err) {
				return "", fmt.Errorf("sockets: nothing listens at udp %s: %w", addr, err)
			}
			return "", fmt.Errorf("sockets: %w", err)
		}
		tc.RecvBytes(buf[:n])
		reply := string(buf[:n])
		if isServerError(reply) {
			return "", &ServerError{Msg: reply}
		}
		return reply, nil
	}
	return "", ErrTimeout
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
