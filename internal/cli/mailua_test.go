package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"appnet/internal/testnet"
	"appnet/mail/message"
)

func TestMailSendOutAndShow(t *testing.T) {
	dir := t.TempDir()
	att := filepath.Join(dir, "données.bin")
	if err := os.WriteFile(att, []byte{0, 1, 2, 0xff, 0xfe}, 0o644); err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(dir, "m.html")
	if err := os.WriteFile(html, []byte("<p>Grüße</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.eml")
	code, stdout, stderr := run(t, "mail", "send", "--from", "Zoë Çelik <zoe@crepes.test>", "--to", "bob@hamburger.test",
		"--cc", "Carol <carol@hamburger.test>", "--bcc", "eve@hamburger.test", "--subject", "日本語の件名", "--body", "Grüße, Bob\n",
		"--html", html, "--attach", att, "--out", out)
	if code != ExitOK || stdout != "" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	msg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("eve@")) {
		t.Error("the Bcc recipient is in the message")
	}
	root := message.Parse(msg)
	if root.Header.Text("Subject") != "日本語の件名" || root.MediaType != "multipart/mixed" || len(root.Parts) != 2 {
		t.Errorf("subject %q, %s with %d parts", root.Header.Text("Subject"), root.MediaType, len(root.Parts))
	}

	showShows(t, out,
		"From:     Zoë Çelik <zoe@crepes.test>\n",
		"Cc:       Carol <carol@hamburger.test>\n",
		"Subject:  日本語の件名\n",
		"\n  1        multipart/alternative; boundary=",
		"\n    1.1      text/plain; charset=\"utf-8\"  quoted-printable  ",
		"\n    1.2      text/html; charset=\"utf-8\"  quoted-printable  ",
		"\n  2        application/octet-stream  base64  10 bytes (5 decoded)  attachment  filename \"données.bin\"\n",
		"\n--- part 1.1: text/plain, utf-8 ---\nGrüße, Bob\n",
		"\n--- part 1.2: text/html, utf-8 ---\n<p>Grüße</p>\n",
	)

	for _, args := range [][]string{
		{"mail", "send", "--from", "a@crepes.test", "--to", "b@hamburger.test"},
		{"mail", "send", "--to", "b@hamburger.test", "--out", "-"},
		{"mail", "send", "--from", "a@crepes.test", "--out", "-"},
		{"mail", "send", "--from", "a@crepes.test", "--to", "b@x.test", "--server", "nohostport"},
		{"mail", "show"},
	} {
		if code, _, _ := run(t, args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

// TestMailShowPythonMessage decodes with `appnet mail show` a message that
// Python's email package built.
func TestMailShowPythonMessage(t *testing.T) {
	py := testnet.NeedTool(t, "python3")
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		py = "/usr/bin/python3"
	}
	file := filepath.Join(t.TempDir(), "py.eml")
	script := `
import sys
from email.message import EmailMessage
from email.headerregistry import Address
from email import policy
m = EmailMessage()
m['Subject'] = 'Grüße — 日本語'
m['From'] = Address('Zoë Çelik', 'zoe', 'crepes.test')
m['To'] = Address('Bob', 'bob', 'hamburger.test')
m.set_content('Ça va, Bob?\nLigne deux.\n')
m.add_attachment(bytes(range(256)), maintype='application', subtype='octet-stream', filename='été.bin')
open(sys.argv[1], 'wb').write(m.as_bytes(policy=policy.SMTP))
`
	if out, err := exec.Command(py, "-c", script, file).CombinedOutput(); err != nil {
		t.Fatalf("python: %v: %s", err, out)
	}
	stdout := showShows(t, file,
		"From:     Zoë Çelik <zoe@crepes.test>\n",
		"Subject:  Grüße — 日本語\n",
		"application/octet-stream  base64",
		"(256 decoded)  attachment  filename \"été.bin\"\n",
		"Ça va, Bob?\nLigne deux.\n",
	)
	if strings.Contains(stdout, "!") {
		t.Errorf("problems reported:\n%s", stdout)
	}
}

// showShows runs `appnet mail show file` and checks that its output has
// each of wants.
func showShows(t *testing.T, file string, wants ...string) string {
	t.Helper()
	code, stdout, stderr := run(t, "mail", "show", file)
	if code != ExitOK || stderr != "" {
		t.Fatalf("show: exit %d, stderr %q", code, stderr)
	}
	for _, want := range wants {
		if !strings.Contains(stdout, want) {
			t.Errorf("show output lacks %q:\n%s", want, stdout)
		}
	}
	return stdout
}

type cliBackend struct {
	mu   sync.Mutex
	user string
	to   []string
	data []byte
}

func (b *cliBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &cliSession{b: b}, nil }

type cliSession struct{ b *cliBackend }

func (s *cliSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *cliSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if pass != "s3cret" {
			return smtp.ErrAuthFailed
		}
		s.b.mu.Lock()
		s.b.user = user
		s.b.mu.Unlock()
		return nil
	}), nil
}
func (s *cliSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *cliSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	s.b.to = append(s.b.to, to)
	s.b.mu.Unlock()
	return nil
}
func (s *cliSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.data = b
	s.b.mu.Unlock()
	return err
}
func (s *cliSession) Reset()        {}
func (s *cliSession) Logout() error { return nil }

// TestMailSendSubmits sends with `appnet --trace mail send --server` to a
// loopback server without TLS (--insecure, which loopback allows a password
// over), the password from the environment.
func TestMailSendSubmits(t *testing.T) {
	be := &cliBackend{}
	s := smtp.NewServer(be)
	s.Domain = "hamburger.test"
	s.AllowInsecureAuth = true
	s.ErrorLog = log.New(io.Discard, "", 0)
	addr := testnet.Serve(t, s, testnet.ListenTCP(t), nil)
	t.Setenv("APPNET_MAIL_PASSWORD", "s3cret")
	args := []string{"--trace", "mail", "send", "--server", addr, "--user", "alice", "--from", "alice@crepes.test",
		"--to", "bob@hamburger.test", "--bcc", "eve@hamburger.test", "--subject", "Do you like ketchup?", "--body", "How about pickles?"}
	code, _, stderr := run(t, args...)
	if code != ExitFail || !strings.Contains(stderr, "STARTTLS") {
		t.Errorf("without --insecure: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := run(t, append(args, "--insecure")...)
	if code != ExitOK || !strings.HasPrefix(stdout, "sent to 2 recipients") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{
		"  S: 220 hamburger.test ESMTP Service Ready\n",
		"  C: AUTH PLAIN (credentials hidden)\n",
		"  C: MAIL FROM:<alice@crepes.test>",
		"  C: RCPT TO:<eve@hamburger.test>\n",
		"  C: Subject: Do you like ketchup?\n",
		"  C: How about pickles?\n",
		"  C: .\n",
		"  S: 221 2.0.0 Bye\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("trace lacks %q:\n%s", want, stderr)
		}
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.user != "alice" || strings.Join(be.to, ",") != "bob@hamburger.test,eve@hamburger.test" || !bytes.Contains(be.data, []byte("How about pickles?")) {
		t.Errorf("server got user %q, rcpts %v, %d bytes", be.user, be.to, len(be.data))
	}
}

// TestMailSendPythonReads builds a message with `appnet mail send --out`
// (multipart/mixed, an HTML alternative, a binary attachment, non-ASCII
// subject and names) and reads it with Python's email package
// (mail/message/testdata/pyread.py): the same subject, addresses, text,
// HTML and attachment bytes and name come out.
func TestMailSendPythonReads(t *testing.T) {
	py := testnet.NeedTool(t, "python3")
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		py = "/usr/bin/python3"
	}
	dir := t.TempDir()
	bin := make([]byte, 4099)
	for i := range bin {
		bin[i] = byte(i*31 + i/256)
	}
	att := filepath.Join(dir, "Übersicht 2026.dat")
	html := filepath.Join(dir, "m.html")
	out := filepath.Join(dir, "m.eml")
	if err := os.WriteFile(att, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(html, []byte("<p>Grüße, <b>Bob</b></p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const subject = "会議について: Zoë's Übersicht"
	const text = "Grüße, Bob!\nSiehe Anhang.\n"
	code, _, stderr := run(t, "mail", "send", "--from", "Zoë Çelik <zoe@crepes.test>", "--to", "Bob Smith <bob@hamburger.test>, 山田 太郎 <taro@example.jp>",
		"--bcc", "eve@hamburger.test", "--subject", subject, "--body", text, "--html", html, "--attach", att, "--out", out)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := exec.Command(py, "../../mail/message/testdata/pyread.py", out).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var v struct {
		Subject     string
		From, To    [][2]string
		Bcc         *string
		Text, HTML  string
		Type        string
		Attachments []struct {
			Filename, Type string
			Data           []byte
		}
		Defects []string
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.Subject != subject || v.Text != text || v.HTML != "<p>Grüße, <b>Bob</b></p>\n" || v.Type != "multipart/mixed" || v.Bcc != nil {
		t.Errorf("python read subject %q, text %q, html %q, type %s, bcc %v", v.Subject, v.Text, v.HTML, v.Type, v.Bcc)
	}
	if fmt.Sprint(v.From) != "[[Zoë Çelik zoe@crepes.test]]" || fmt.Sprint(v.To) != "[[Bob Smith bob@hamburger.test] [山田 太郎 taro@example.jp]]" {
		t.Errorf("from %v, to %v", v.From, v.To)
	}
	if len(v.Attachments) != 1 || v.Attachments[0].Filename != "Übersicht 2026.dat" || !bytes.Equal(v.Attachments[0].Data, bin) {
		t.Errorf("attachments %d", len(v.Attachments))
	}
	if len(v.Defects) > 0 {
		t.Errorf("python found defects: %v", v.Defects)
	}
}

// TestMailSendSTARTTLSWithCA submits over STARTTLS to a server whose
// certificate only --ca FILE vouches for (net/http/httptest's test
// certificate, for 127.0.0.1); without --ca the submission fails.
func TestMailSendSTARTTLSWithCA(t *testing.T) {
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert, leaf := hs.TLS.Certificates[0], hs.Certificate()
	hs.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	be := &cliBackend{}
	s := smtp.NewServer(be)
	s.Domain = "hamburger.test"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.ErrorLog = log.New(io.Discard, "", 0)
	addr := testnet.Serve(t, s, testnet.ListenTCP(t), nil)
	t.Setenv("APPNET_MAIL_PASSWORD", "s3cret")
	args := []string{"--trace", "mail", "send", "--server", addr, "--user", "alice", "--from", "alice@crepes.test",
		"--to", "bob@hamburger.test", "--subject", "over TLS", "--body", "hello"}
	if code, _, stderr := run(t, args...); code != ExitFail || !strings.Contains(stderr, "certificate") {
		t.Errorf("without --ca: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := run(t, append(args, "--ca", ca)...)
	if code != ExitOK || !strings.HasPrefix(stdout, "sent to 1 recipients") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{"  C: STARTTLS\n", ", certificate verified for 127.0.0.1\n", "  C: AUTH PLAIN (credentials hidden)\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("trace lacks %q:\n%s", want, stderr)
		}
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.user != "alice" || !bytes.Contains(be.data, []byte("Subject: over TLS\r\n")) {
		t.Errorf("server got user %q, %d bytes", be.user, len(be.data))
	}
}
