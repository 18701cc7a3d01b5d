package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"appnet/internal/labca"
	"appnet/mail/mailserver"
	"appnet/mail/queue"
	"appnet/mail/smtp"
	"appnet/mail/store"
)

func init() {
	addMailCommand((*app).mailServeCommand)
	addMailCommand((*app).mailQueueCommand)
}

func (a *app) mailServeCommand() *cobra.Command {
	var (
		domains                          []string
		mxAddr, subAddr, qdir, resolver  string
		certFile, keyFile, hostname      string
		dsn                              string
		insecureAuth, hold               bool
		maxSize                          int64
		remotePort, maxConns, maxPerAddr int
		minBackoff, maxBackoff, lifetime time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve --domain D [--mx ADDR:25] [--submission ADDR:587] [--queue DIR] [--resolver ADDR] [--tls-cert F --tls-key F]",
		Short: "run a mail server: an SMTP MX, a submission service, and the durable queue that delivers",
		Long: `Serve runs a mail server for the --domain domains (repeat the flag for more):

  --mx ADDR          receives mail for the local domains from anyone (port 25), with
                     no relaying: mail to other domains is refused (554 5.7.1)
  --submission ADDR  takes mail for any domain from users who authenticated (AUTH
                     PLAIN or LOGIN) after STARTTLS (port 587); --insecure-auth lets
                     clients on loopback authenticate without TLS
  --queue DIR        the durable queue: a message is on disk (fsync) before 250;
                     it is delivered to local mailboxes or, by MX lookup through
                     --resolver (a DNS server, host:port; default the system's),
                     to other domains' servers, with retries from --min-backoff
                     doubling to --max-backoff, bouncing after --lifetime

Local mail goes into the users' INBOXes in the mailbox store (--store:
sqlite:PATH, by default QUEUE/mailboxes.db, or postgres://... for several
servers sharing one database); users and their passwords are managed with
'appnet mail user', and the same users authenticate for submission.
The queue is listed, flushed and pruned with 'appnet mail queue'. --trace shows
every SMTP dialogue, received and sent, in the course's C:/S: style.

To type the course's session by hand, use a client that ends lines with CRLF
(telnet, or nc -C): a bare LF inside DATA is refused (521), as Postfix does, so
that no message can be smuggled inside another.`,
		Example: `  appnet mail user add bob --store sqlite:/tmp/mq/mailboxes.db
  appnet mail serve --domain hamburger.edu --mx 127.0.0.1:2525 --queue /tmp/mq
  nc -C 127.0.0.1 2525     # in another terminal: HELO crepes.fr, MAIL FROM:<alice@crepes.fr>, ...
  appnet mail serve --domain crepes.fr --mx 127.0.0.2:25 --submission 127.0.0.2:587 --tls-cert c.pem --tls-key k.pem --store postgres://mail@db.crepes.fr/mail --resolver 127.0.0.53:53`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(domains) == 0 {
				return usagef("give at least one --domain")
			}
			if mxAddr == "" && subAddr == "" {
				return usagef("give --mx ADDR, --submission ADDR, or both")
			}
			if (certFile == "") != (keyFile == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			if qdir == "" {
				return usagef("give --queue DIR")
			}
			var tlsConf *tls.Config
			if certFile != "" {
				cert, err := labca.LoadKeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("mail serve: %w", err)
				}
				tlsConf = labca.ServerConfig(cert)
			}
			if hostname == "" {
				hostname, _ = os.Hostname()
			}
			if dsn == "" {
				if err := os.MkdirAll(qdir, 0o700); err != nil {
					return fmt.Errorf("mail serve: %w", err)
				}
				dsn = "sqlite:" + filepath.Join(qdir, "mailboxes.db")
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, dsn, store.Options{})
			if err != nil {
				return err
			}
			defer st.Close()
			ms, err := mailserver.Start(mailserver.Config{
				Domains: domains, Hostname: hostname, QueueDir: qdir, Store: st, TLS: tlsConf,
				Resolver: queue.NewResolver(resolver), RemotePort: remotePort, AllowInsecureAuth: insecureAuth,
				Hold: hold, MaxMessageBytes: maxSize, MaxConns: maxConns, MaxConnsPerAddr: maxPerAddr,
				MinBackoff: minBackoff, MaxBackoff: maxBackoff, Lifetime: lifetime,
				Tracer: a.tracer, Logger: a.logger,
			})
			if err != nil {
				return err
			}
			var lc net.ListenConfig
			var servers []func() error
			shutdowns := []func(context.Context) error{ms.Shutdown}
			for _, l := range []struct {
				addr string
				role smtp.Role
			}{{mxAddr, smtp.MX}, {subAddr, smtp.Submission}} {
				if l.addr == "" {
					continue
				}
				ln, err := lc.Listen(ctx, "tcp", l.addr)
				if err != nil {
					ms.Shutdown(context.Background()) //nolint:errcheck
					return err
				}
				fmt.Fprintf(a.stdout, "mail: %s service for %s on %s\n", l.role, strings.Join(domains, ", "), ln.Addr())
				servers = append(servers, func() error { return ms.Serve(l.role, ln) })
			}
			fmt.Fprintf(a.stdout, "mail: queue %s (%d messages), store %s, hostname %s\n", qdir, ms.Queue().Len(), dsn, hostname)
			return serveUntilDone(ctx, a, servers, shutdowns)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&domains, "domain", nil, "a local mail domain (repeatable)")
	f.StringVar(&mxAddr, "mx", "", "address for the MX service, e.g. 127.0.0.1:25")
	f.StringVar(&subAddr, "submission", "", "address for the submission service, e.g. 127.0.0.1:587")
	f.StringVar(&qdir, "queue", "", "queue directory")
	f.StringVar(&resolver, "resolver", "", "DNS server (host:port) for MX lookups; default the system's resolver")
	f.StringVar(&certFile, "tls-cert", "", "PEM certificate for STARTTLS")
	f.StringVar(&keyFile, "tls-key", "", "PEM key for STARTTLS")
	f.StringVar(&hostname, "hostname", "", "this server's name in greetings and Received: (default the system's)")
	f.StringVar(&dsn, "store", "", "the mailbox store: sqlite:PATH or postgres://... (default sqlite:QUEUE/mailboxes.db)")
	f.BoolVar(&insecureAuth, "insecure-auth", false, "let loopback clients authenticate without TLS")
	f.BoolVar(&hold, "hold", false, "accept and queue mail but deliver none (it goes when a server without --hold runs on the queue)")
	f.Int64Var(&maxSize, "max-size", 10<<20, "largest message accepted, in bytes")
	f.IntVar(&remotePort, "remote-port", 25, "SMTP port of other domains' servers")
	f.IntVar(&maxConns, "max-conns", 200, "most SMTP connections at once, per service")
	f.IntVar(&maxPerAddr, "max-conns-per-addr", 50, "most SMTP connections from one client address (an IPv6 /64), per service")
	f.DurationVar(&minBackoff, "min-backoff", 5*time.Minute, "first retry after a temporary failure")
	f.DurationVar(&maxBackoff, "max-backoff", 4*time.Hour, "longest wait between retries")
	f.DurationVar(&lifetime, "lifetime", 5*24*time.Hour, "how long a message may wait before it bounces")
	return cmd
}

func (a *app) mailQueueCommand() *cobra.Command {
	var qdir string
	var asJSON bool
	do := func(cmd *cobra.Command, req queue.ControlRequest) (queue.ControlReply, error) {
		if qdir == "" {
			return queue.ControlReply{}, usagef("give --queue DIR")
		}
		return queue.Control(cmd.Context(), qdir, req)
	}
	list := &cobra.Command{
		Use:   "list --queue DIR",
		Short: "list queued messages, as postqueue -p / mailq",
		Long: `List prints each message in the queue: its ID, size, age, sender and state
(active: being delivered; deferred: a try failed; queued: not tried yet), and
under it each recipient still pending, with its tries, its last error and when
it is tried next. It asks the running server through DIR/control.sock, or reads
the directory when no server runs.`,
		Example: `  appnet mail queue list --queue /tmp/mq
  appnet mail queue list --queue /tmp/mq --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := do(cmd, queue.ControlRequest{Op: "list"})
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(a.stdout)
				e.SetIndent("", "  ")
				return e.Encode(rep.List)
			}
			printQueue(a, rep.List, time.Now())
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	flush := &cobra.Command{
		Use:   "flush --queue DIR [ID...]",
		Short: "try the named messages (all, if none) now, as postqueue -f / -i",
		Long: `Flush makes queued messages due now, whatever their backoff: all of them, or
the IDs given. It needs the running server (through DIR/control.sock); with no
server running, mail is tried when one starts.`,
		Example: `  appnet mail queue flush --queue /tmp/mq
  appnet mail queue flush --queue /tmp/mq 3F2A9C0D1E2B4A5C`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			rep, err := do(cmd, queue.ControlRequest{Op: "flush", IDs: ids})
			if err != nil {
				return err
			}
			if !rep.Running {
				fmt.Fprintln(a.stdout, "mail queue: no server is running on this queue; its mail is tried when one starts")
				return nil
			}
			fmt.Fprintf(a.stdout, "mail queue: %d messages scheduled now\n", rep.N)
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "delete --queue DIR ID...",
		Short: "remove messages from the queue, as postsuper -d",
		Long: `Delete removes the named messages from the queue for good (no bounce is
sent). It goes through the running server, or works on the directory when no
server runs.`,
		Example: `  appnet mail queue delete --queue /tmp/mq 3F2A9C0D1E2B4A5C`,
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, ids []string) error {
			rep, err := do(cmd, queue.ControlRequest{Op: "delete", IDs: ids})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "mail queue: %d messages deleted\n", rep.N)
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, flush, del} {
		c.Flags().StringVar(&qdir, "queue", "", "queue directory")
	}
	return group("queue", "list, flush and delete the mail queue's messages (like postqueue and postsuper)", list, flush, del)
}

func printQueue(a *app, list []queue.Info, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(a.stdout, "mail queue is empty")
		return
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSIZE\tAGE\tSTATE\tSENDER")
	var total int64
	for _, in := range list {
		from := in.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", in.ID, in.Size, now.Sub(in.Arrived).Round(time.Second), in.Status, from)
		for _, r := range in.Rcpts {
			if r.State != queue.Pending {
				continue
			}
			line := fmt.Sprintf("  %s\ttries %d", r.Addr, r.Attempts)
			if !r.NextTry.IsZero() {
				line += fmt.Sprintf("\tnext in %s", max(0, r.NextTry.Sub(now)).Round(time.Second))
			}
			if r.LastError != "" {
				line += "\t(" + r.LastError + ")"
			}
			fmt.Fprintln(w, line)
		}
		total += in.Size
	}
	w.Flush()
	fmt.Fprintf(a.stdout, "-- %d bytes in %d messages\n", total, len(list))
}
