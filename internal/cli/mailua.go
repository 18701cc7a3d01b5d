package cli

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"appnet/mail/ua"
)

func init() {
	addMailCommand((*app).mailSendCommand)
	addMailCommand((*app).mailShowCommand)
}

// maxShowBytes is the largest message `mail show` reads.
const maxShowBytes = 64 << 20

func (a *app) mailSendCommand() *cobra.Command {
	var (
		c                                   ua.Compose
		body, bodyFile, htmlFile, out       string
		server, user, passEnv, caFile, ehlo string
		passStdin, insecure                 bool
		timeout                             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send --from A --to B [--cc C] [--bcc D] --subject S [--body TEXT | --body-file F] [--attach FILE]... [--html FILE] (--server HOST:587 [--user U] | --out FILE|-)",
		Short: "compose a MIME message and submit it over SMTP, or write it out",
		Long: `Send composes an Internet message (RFC 5322) the way a mail client does: a
text/plain body (quoted-printable when it is not plain ASCII), an optional
HTML alternative (multipart/alternative), files attached in base64
(multipart/mixed, types by extension or content), and RFC 2047 encoded-words
for non-ASCII subjects and names. --to, --cc and --bcc may be repeated or
hold comma-separated lists; Bcc recipients get the message but are in no
header.

With --server it submits the message over SMTP: EHLO, STARTTLS (required
unless --insecure), AUTH PLAIN or LOGIN with --user, MAIL FROM, RCPT TO for
every recipient, DATA. The password comes from --password-stdin, the
environment variable named by --password-env, or a prompt on the terminal;
it is sent only over TLS, or in clear to a server on loopback with
--insecure. --ca FILE trusts the certificate authority in FILE (PEM), such
as the lab's. With --out it writes the message to FILE (- for stdout)
instead. --trace shows the SMTP dialogue in C:/S: form.`,
		Example: `  appnet mail send --from 'Zoë <zoe@crepes.test>' --to bob@hamburger.test --subject 'Grüße' --body 'Hello, Bob' --out -
  APPNET_MAIL_PASSWORD=secret appnet --trace mail send --server mail.crepes.test:587 --ca lab-ca.pem --user alice --from alice@crepes.test --to bob@hamburger.test --subject hi --body-file note.txt --attach photo.jpg`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.From == "" {
				return usagef("give --from ADDRESS")
			}
			if len(c.To)+len(c.Cc)+len(c.Bcc) == 0 {
				return usagef("give at least one --to, --cc or --bcc")
			}
			if (server == "") == (out == "") {
				return usagef("give either --server HOST:PORT to send or --out FILE|- to write the message")
			}
			if body != "" && bodyFile != "" {
				return usagef("give --body or --body-file, not both")
			}
			if user != "" && server == "" {
				return usagef("--user needs --server")
			}
			if passStdin && bodyFile == "-" {
				return usagef("--password-stdin and --body-file - both read stdin")
			}
			if server != "" {
				if _, _, err := net.SplitHostPort(server); err != nil {
					return usagef("--server %q: want HOST:PORT, e.g. mail.crepes.test:587", server)
				}
			}
			c.Text = body
			if bodyFile != "" {
				b, err := readFileOrStdin(bodyFile, maxShowBytes)
				if err != nil {
					return err
				}
				c.Text = string(b)
			}
			if htmlFile != "" {
				b, err := readFileOrStdin(htmlFile, maxShowBytes)
				if err != nil {
					return err
				}
				c.HTML = string(b)
			}
			c.UserAgent = "appnet"
			msg, env, err := ua.Build(&c)
			if err != nil {
				return err
			}
			if out != "" {
				if out == "-" {
					_, err = a.stdout.Write(msg)
					return err
				}
				return os.WriteFile(out, msg, 0o644)
			}
			s := &ua.Submitter{Addr: server, LocalName: ehlo, Insecure: insecure, Username: user, Timeout: timeout, Host: "ua", Tracer: a.tracer}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return usagef("--ca %s: no PEM certificate in it", caFile)
				}
				s.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
			if user != "" {
				if s.Password, err = a.password(user, passEnv, passStdin); err != nil {
					return err
				}
			}
			reply, err := s.Send(cmd.Context(), env, msg)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "sent to %d recipients (%d bytes): %s\n", len(env.To), len(msg), reply)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.From, "from", "", "the sender, as addr or 'Name <addr>'")
	f.StringArrayVar(&c.To, "to", nil, "a recipient or comma-separated list (repeatable)")
	f.StringArrayVar(&c.Cc, "cc", nil, "a copy recipient or list (repeatable)")
	f.StringArrayVar(&c.Bcc, "bcc", nil, "a blind copy recipient or list: envelope only (repeatable)")
	f.StringVar(&c.Subject, "subject", "", "the subject (any language)")
	f.StringVar(&body, "body", "", "the text of the message")
	f.StringVar(&bodyFile, "body-file", "", "read the text from FILE (- for stdin)")
	f.StringVar(&htmlFile, "html", "", "add FILE as a text/html alternative to the text")
	f.StringArrayVar(&c.Attach, "attach", nil, "attach FILE (repeatable)")
	f.StringVar(&out, "out", "", "write the message to FILE (- for stdout) instead of sending it")
	f.StringVar(&server, "server", "", "submit to this SMTP server, HOST:587 (submission) or HOST:25")
	f.StringVar(&user, "user", "", "authenticate as this user (SASL PLAIN or LOGIN, over TLS)")
	f.StringVar(&passEnv, "password-env", "APPNET_MAIL_PASSWORD", "environment variable holding the password")
	f.BoolVar(&passStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&caFile, "ca", "", "trust the certificate authority in FILE (PEM) for STARTTLS")
	f.BoolVar(&insecure, "insecure", false, "send in clear when the server offers no STARTTLS (a password only to loopback)")
	f.StringVar(&ehlo, "ehlo", "localhost", "the name to give in EHLO")
	f.DurationVar(&timeout, "timeout", time.Minute, "for connecting and for each SMTP command")
	return cmd
}

// password gets the user's password: from stdin, the environment, or a
// prompt on the terminal without echo.
func (a *app) password(user, env string, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	if v, ok := os.LookupEnv(env); ok && env != "" {
		return v, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usagef("no password: set $%s, give --password-stdin, or run on a terminal", env)
	}
	fmt.Fprintf(a.stderr, "password for %s: ", user)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// readFileOrStdin reads FILE, or stdin for "-", up to limit bytes.
func readFileOrStdin(name string, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return b, nil
}

func (a *app) mailShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE|-",
		Short: "print a message's MIME tree and its decoded text",
		Long: `Show reads a message (an .eml file, a file from a mailbox, or stdin for -)
and prints its main header fields with encoded-words decoded, its MIME tree
(each part's number, content type, transfer encoding, size, file name), and
the text of its text parts, decoded from quoted-printable or base64 and
converted from their charset to UTF-8. It reads malformed messages too and
says what was wrong with them.`,
		Example: `  appnet mail send --from alice@crepes.test --to bob@hamburger.test --subject 'Grüße' --body 'Hello, Bob' --out - | appnet mail show -`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			msg, err := readFileOrStdin(argv[0], maxShowBytes)
			if err != nil {
				return err
			}
			return ua.Show(a.stdout, msg)
		},
	}
}
