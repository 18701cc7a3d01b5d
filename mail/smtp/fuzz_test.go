package smtp

import (
	"io"
	"net"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary bytes to a live session; the server must
// stay up and answer the next client.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"HELO crepes.fr\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nAUTH PLAIN\r\n*\r\nSTARTTLS\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999999999999\r\n",
		"EHLO x\r\nMAIL FROM:<@r1,@r2:a@b> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<ü@hamburger.edu>\r\n",
		"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\n.\n.\r.\r\n\x00\r\n..\r\n.\r\n",
		"\xff\xfe\r\n\r\n\n\n",
		"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n",
	} {
		f.Add([]byte(seed))
	}
	spool := &memSpool{}
	s := newServer(Submission, spool)
	s.AllowInsecureAuth = true
	s.Recipients = users{}
	s.MaxMessageBytes = 4096
	s.GreetingTimeout, s.CommandTimeout = 2*time.Second, 2*time.Second
	s.AuthDelay, s.AuthDelayMax = time.Millisecond, time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	addr := ln.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("server down: %v", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()

		// The next client is served.
		n := dial(t, addr)
		n.expect(220)
		n.cmd("NOOP", 250)
		n.cmd("QUIT", 221)
	})
}
