package testnet

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// HTTPExchange sends the raw HTTP/1.1 request req to addr on a new
// connection and returns the response in a form two servers' answers can
// be compared in: the status, the header fields sorted (but those named
// in skip) and the body.
func HTTPExchange(t testing.TB, addr, req string, skip ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	var lines []string
	for k, vv := range resp.Header {
		if !slices.Contains(skip, k) {
			lines = append(lines, k+": "+strings.Join(vv, ", "))
		}
	}
	slices.Sort(lines)
	return resp.Status + "\n" + strings.Join(lines, "\n") + "\n\n" + string(body)
}
