package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"appnet/mail/store"
	_ "appnet/mail/store/postgres" // postgres:// stores
	_ "appnet/mail/store/sqlite"   // sqlite: stores
)

func init() { addMailCommand((*app).mailUserCommand) }

// mailUserCommand is `appnet mail user`: the mailbox store's users.
func (a *app) mailUserCommand() *cobra.Command {
	var dsn string
	var fromStdin bool
	openStore := func(ctx context.Context) (store.Backend, error) {
		if dsn == "" {
			return nil, usagef("give --store sqlite:PATH or --store postgres://USER@HOST/DB")
		}
		b, err := store.Open(ctx, dsn, store.Options{})
		if errors.Is(err, store.ErrUnknownBackend) {
			return nil, usagef("--store: %v", err)
		}
		return b, err
	}
	withStore := func(f func(cmd *cobra.Command, b store.Backend, argv []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, argv []string) error {
			b, err := openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			return f(cmd, b, argv)
		}
	}
	password := func(cmd *cobra.Command, user string) (string, error) {
		if fromStdin {
			return readPasswordLine(cmd.InOrStdin())
		}
		return promptPassword(cmd.InOrStdin(), a.stderr, user)
	}
	// withPassword runs add or passwd: USER, a password, then a line.
	withPassword := func(set func(store.Backend, context.Context, string, string) error, verb, done string) func(*cobra.Command, []string) error {
		return withStore(func(cmd *cobra.Command, b store.Backend, argv []string) error {
			pw, err := password(cmd, argv[0])
			if err != nil {
				return err
			}
			if err := set(b, cmd.Context(), argv[0], pw); err != nil {
				return fmt.Errorf("mail user %s: %w", verb, err)
			}
			fmt.Fprintf(a.stdout, "mail: "+done+"\n", strings.ToLower(argv[0]))
			return nil
		})
	}

	add := &cobra.Command{
		Use:   "add USER --store DSN [--password-stdin]",
		Short: "add a mail user (a name or an address) with a password and the usual mailboxes",
		Long: `Add creates a user in the mailbox store with a password (hashed with
argon2id) and the mailboxes INBOX, Drafts, Sent, Trash and Junk.

USER is what the user logs in with over POP3, IMAP and webmail, and what
local delivery looks up: either a whole address (bob@hamburger.edu), or a
bare name (bob), which then receives mail for bob at every local domain.
Names are compared without regard to case.

The password is asked for twice on the terminal (not echoed), or read as
the first line of standard input with --password-stdin; never from the
command line, where other users could read it in the process list.`,
		Example: `  appnet mail user add alice@crepes.fr --store postgres://mail@db.example/mail   # asks twice
  echo hungry | appnet mail user add bob --store sqlite:/var/lib/appnet/mail.db --password-stdin`,
		Args: args(cobra.ExactArgs(1)),
		RunE: withPassword(store.Backend.AddUser, "add", "added user %s (INBOX, Drafts, Sent, Trash, Junk)"),
	}
	passwd := &cobra.Command{
		Use:   "passwd USER --store DSN [--password-stdin]",
		Short: "set a mail user's password",
		Long: `Passwd replaces a user's password: asked for twice on the terminal, or the
first line of standard input with --password-stdin.`,
		Example: `  appnet mail user passwd bob --store sqlite:mail.db   # asks twice
  echo fed | appnet mail user passwd bob --store sqlite:mail.db --password-stdin`,
		Args: args(cobra.ExactArgs(1)),
		RunE: withPassword(store.Backend.SetPassword, "passwd", "password of %s changed"),
	}
	del := &cobra.Command{
		Use:   "del USER --store DSN",
		Short: "delete a mail user with all of the user's mailboxes and messages",
		Long: `Del deletes a user, the user's mailboxes and messages. It does not ask
again.`,
		Example: `  appnet mail user del bob --store sqlite:mail.db`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: withStore(func(cmd *cobra.Command, b store.Backend, argv []string) error {
			ctx := cmd.Context()
			if err := b.DeleteUser(ctx, argv[0]); err != nil {
				return fmt.Errorf("mail user del: %w", err)
			}
			fmt.Fprintf(a.stdout, "mail: deleted user %s\n", strings.ToLower(argv[0]))
			return nil
		}),
	}
	list := &cobra.Command{
		Use:     "list --store DSN",
		Short:   "list the mail users, one per line",
		Example: `  appnet mail user list --store sqlite:mail.db`,
		Args:    args(cobra.NoArgs),
		RunE: withStore(func(cmd *cobra.Command, b store.Backend, _ []string) error {
			ctx := cmd.Context()
			users, err := b.Users(ctx)
			if err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintln(a.stdout, u)
			}
			return nil
		}),
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	}
	g := group("user", "the mailbox store's users: add, del, passwd, list", add, del, passwd, list)
	g.PersistentFlags().StringVar(&dsn, "store", "", "the mailbox store: sqlite:PATH, or postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=...]")
	return g
}

// readPasswordLine reads a password: the first line of r, without its line
// ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, store.MaxPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if errors.Is(err, io.EOF) && len(line) > store.MaxPassword {
		return "", usagef("the password is longer than %d bytes", store.MaxPassword)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usagef("no password on standard input")
	}
	return pw, nil
}

// promptPassword asks for a password twice on the terminal r, with echo
// off.
func promptPassword(r io.Reader, w io.Writer, user string) (string, error) {
	f, ok := r.(*os.File)
	if !ok {
		return "", usagef("standard input is not a terminal: give --password-stdin")
	}
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", usagef("standard input is not a terminal: give --password-stdin")
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("mail user: terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	br := bufio.NewReader(io.LimitReader(f, 2*(store.MaxPassword+2)))
	ask := func(prompt string) (string, error) {
		fmt.Fprint(w, prompt)
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	pw, err := ask("Password for " + user + ": ")
	if err != nil {
		return "", err
	}
	again, err := ask("Again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("mail user: the passwords differ")
	}
	if pw == "" {
		return "", errors.New("mail user: empty password")
	}
	return pw, nil
}
