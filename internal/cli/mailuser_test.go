package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"appnet/mail/store"
	"appnet/mail/store/postgres/pgtest"
)

// withStdin runs f with standard input reading text.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	old := os.Stdin
	os.Stdin = in
	defer func() { os.Stdin = old }()
	f()
}

func mailUserLifecycle(t *testing.T, dsn string) {
	ctx := context.Background()
	var code int
	var out, errs string
	withStdin(t, "hungry\nignored\n", func() {
		code, out, errs = run(t, "mail", "user", "add", "Bob", "--store", dsn, "--password-stdin")
	})
	if code != 0 || !strings.Contains(out, "added user bob") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	withStdin(t, "x\n", func() {
		code, _, errs = run(t, "mail", "user", "add", "bob", "--store", dsn, "--password-stdin")
	})
	if code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("add twice: %d %q", code, errs)
	}
	withStdin(t, "s3cret", func() { // no newline at the end
		code, _, errs = run(t, "mail", "user", "--store", dsn, "add", "alice@crepes.fr", "--password-stdin")
	})
	if code != 0 {
		t.Fatalf("add alice: %d %q", code, errs)
	}
	code, out, _ = run(t, "mail", "user", "list", "--store", dsn)
	if code != 0 || out != "alice@crepes.fr\nbob\n" {
		t.Errorf("list: %d %q", code, out)
	}
	login := func(user, pw string) error {
		b, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		_, err = b.Login(ctx, user, pw)
		return err
	}
	if err := login("bob", "hungry"); err != nil {
		t.Errorf("bob's password: %v", err)
	}
	if err := login("alice@crepes.fr", "s3cret"); err != nil {
		t.Errorf("alice's password: %v", err)
	}
	withStdin(t, "fed\r\n", func() {
		code, _, errs = run(t, "mail", "user", "passwd", "bob", "--store", dsn, "--password-stdin")
	})
	if code != 0 {
		t.Fatalf("passwd: %d %q", code, errs)
	}
	if err := login("bob", "hungry"); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf("old password after passwd: %v", err)
	}
	if err := login("bob", "fed"); err != nil {
		t.Errorf("new password: %v", err)
	}
	code, _, errs = run(t, "mail", "user", "del", "bob", "--store", dsn)
	if code != 0 {
		t.Fatalf("del: %d %q", code, errs)
	}
	code, _, errs = run(t, "mail", "user", "del", "bob", "--store", dsn)
	if code != 1 || !strings.Contains(errs, "no such user") {
		t.Errorf("del twice: %d %q", code, errs)
	}
	code, out, _ = run(t, "mail", "user", "list", "--store", dsn)
	if code != 0 || out != "alice@crepes.fr\n" {
		t.Errorf("list after del: %d %q", code, out)
	}
}

func TestMailUserSQLite(t *testing.T) {
	mailUserLifecycle(t, "sqlite:"+filepath.Join(t.TempDir(), "mail.db"))
}

func TestMailUserPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	mailUserLifecycle(t, srv.NewDatabase(t))
}

func TestMailUserUsage(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "mail.db")
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"pw\n", []string{"add", "bob", "--password-stdin"}, "give --store"},
		{"pw\n", []string{"add", "bob", "--store", "mysql://x/y", "--password-stdin"}, "unknown store kind"},
		{"pw\n", []string{"add", "bob", "--store", dsn}, "not a terminal"}, // no prompt without a terminal
		{"\n", []string{"add", "bob", "--store", dsn, "--password-stdin"}, "no password"},
		{"", []string{"add", "bob", "--store", dsn, "--password-stdin"}, "no password"},
		{"pw\n", []string{"add", "--store", dsn}, "accepts 1 arg"},
		{"pw\n", []string{"add", "a b", "--store", dsn, "--password-stdin"}, "invalid user name"},
	} {
		var code int
		var errs string
		withStdin(t, c.stdin, func() { code, _, errs = run(t, append([]string{"mail", "user"}, c.args...)...) })
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %q", c.args, code, errs, c.want)
		}
	}
	code, out, _ := run(t, "mail", "user", "list", "--store", dsn)
	if code != 0 || out != "" {
		t.Errorf("refused commands added users: %q", out)
	}
}
