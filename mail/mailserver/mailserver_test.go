package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/internal/labca"
	"appnet/internal/testnet"
	"appnet/mail/queue"
	"appnet/mail/smtp"
	"appnet/mail/store"
	_ "appnet/mail/store/sqlite"
	"appnet/mail/ua"
)

// TestSubmissionToLocalMailbox: Alice submits over STARTTLS (a lab CA's
// certificate) with AUTH checked against the store, and the queue delivers
// to Bob's INBOX on the same server; a wrong password is refused, and
// mail to a user the store lacks is refused at RCPT.
func TestSubmissionToLocalMailbox(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "mail.db"), store.Options{WeakPasswordHash: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"alice", "bob"} {
		if err := st.AddUser(ctx, u, u+"-secret"); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := labca.Open(filepath.Join(dir, "ca"), "test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"mail.umass.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Start(Config{Domains: []string{"umass.test"}, Hostname: "mail.umass.test", QueueDir: filepath.Join(dir, "q"),
		Store: st, TLS: labca.ServerConfig(cert), Resolver: nil, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.ListenTCP(t)
	served := make(chan error, 1)
	go func() { served <- ms.Serve(smtp.Submission, ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := ms.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	msg, env, err := ua.Build(&ua.Compose{From: "alice@umass.test", To: []string{"bob@umass.test"}, Subject: "lunch", Text: "Noon?\n"})
	if err != nil {
		t.Fatal(err)
	}
	sub := ua.Submitter{Addr: ln.Addr().String(), TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "mail.umass.test"},
		Username: "alice", Password: "wrong", Timeout: 10 * time.Second}
	if _, err := sub.Send(ctx, env, msg); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("a wrong password: %v, want a 535 reply", err)
	}
	sub.Password = "alice-secret"
	if _, err := sub.Send(ctx, env, msg); err != nil {
		t.Fatalf("submission: %v", err)
	}
	if _, err := sub.Send(ctx, ua.Envelope{From: env.From, To: []string{"nobody@umass.test"}}, msg); err == nil {
		t.Error("mail to a user the store lacks was accepted")
	}
	var got []byte
	for i := 0; i < 500 && got == nil; i++ {
		got = firstMessage(t, st, "bob")
		time.Sleep(10 * time.Millisecond)
	}
	if got == nil {
		t.Fatal("nothing reached Bob's INBOX")
	}
	s := string(got)
	for _, want := range []string{"Received: from ", "with ESMTPSA", "Subject: lunch", "Noon?", "Message-ID: "} {
		if !strings.Contains(s, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, s)
		}
	}
}

// firstMessage returns the first message in user's INBOX, or nil.
func firstMessage(t *testing.T, st store.Backend, user string) []byte {
	t.Helper()
	msgs, err := store.ReadMailbox(context.Background(), st, user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0].Body
}

// TestStartWaitsForABriefQueueLock: a server starting while a queue
// listing holds the directory (as `mail queue list` does with no server
// running) waits for it instead of failing; one held for good still fails.
func TestStartWaitsForABriefQueueLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "mail.db"), store.Options{WeakPasswordHash: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	qdir := filepath.Join(dir, "q")
	held, err := queue.Open(queue.Config{Dir: qdir})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(300 * time.Millisecond); held.Close() }()
	ms, err := Start(Config{Domains: []string{"a.test"}, QueueDir: qdir, Store: st, Hold: true})
	if err != nil {
		t.Fatalf("Start while a listing held the queue briefly: %v", err)
	}
	defer ms.Shutdown(ctx) //nolint:errcheck
	if _, err := Start(Config{Domains: []string{"a.test"}, QueueDir: qdir, Store: st, Hold: true}); !errors.Is(err, queue.ErrLocked) {
		t.Errorf("a second server on a running server's queue: %v, want ErrLocked", err)
	}
}
