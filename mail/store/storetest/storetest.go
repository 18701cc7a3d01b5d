// Package storetest is the conformance suite every store.Backend passes:
// users and passwords, mailboxes and their names, UIDs that only grow
// (across expunges and restarts), UIDVALIDITY, flags and modification
// sequences (RFC 7162), exact bytes, concurrent appends, the POP3 maildrop
// lock, size limits, durability across a reopen, and change notification.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"appnet/mail/store"
)

// Opener opens the same store each time it is called: a second call is a
// restart, or a second server sharing the store.
type Opener func() (store.Backend, error)

// Factory makes a new, empty store for a test, with the given options.
type Factory func(t *testing.T, opt store.Options) Opener

// Features says what a backend offers beyond the interface's minimum.
type Features struct {
	// SharedWatch: a change made through one opened instance is announced
	// to watchers of another (several servers on one database).
	SharedWatch bool
}

// Run runs the suite, each test on a fresh store. Passwords are hashed
// with Options.WeakPasswordHash, for speed.
func Run(t *testing.T, newStore Factory, f Features) {
	weak := func(t *testing.T, opt store.Options) Opener {
		opt.WeakPasswordHash = true
		return newStore(t, opt)
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory, Features)
	}{
		{"Users", testUsers},
		{"Mailboxes", testMailboxes},
		{"MailboxNames", testMailboxNames},
		{"Rename", testRename},
		{"UIDs", testUIDs},
		{"Bytes", testBytes},
		{"Limits", testLimits},
		{"FlagsModSeq", testFlags},
		{"CopyMove", testCopyMove},
		{"Parts", testParts},
		{"ConcurrentAppends", testConcurrent},
		{"ConcurrentMoves", testConcurrentMoves},
		{"MaildropLock", testLock},
		{"Durability", testDurability},
		{"Watch", testWatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, weak, f) })
	}
}

func open(t *testing.T, o Opener) store.Backend {
	t.Helper()
	b, err := o()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// user adds a user and opens a session.
func user(t *testing.T, b store.Backend, name string) store.Session {
	t.Helper()
	ctx := context.Background()
	must(t, b.AddUser(ctx, name, "pw-"+name))
	s, err := b.Login(ctx, name, "pw-"+name)
	must(t, err)
	return s
}

func msg(i int) []byte {
	return fmt.Appendf(nil, "From: alice@crepes.test\r\nTo: bob@hamburger.test\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i)
}

func testUsers(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	must(t, b.AddUser(ctx, "Bob", "hungry"))
	wantErr(t, "add twice", b.AddUser(ctx, "bob", "x"), store.ErrUserExists)
	must(t, b.AddUser(ctx, "alice@crepes.test", "s3cret"))
	for _, bad := range []string{"", "a b", "x\x00y", "a@b@c", "@x", "x/y", string(bytes.Repeat([]byte("u"), 300))} {
		wantErr(t, fmt.Sprintf("add %q", bad), b.AddUser(ctx, bad, "pw"), store.ErrBadUser)
	}
	wantErr(t, "empty password", b.AddUser(ctx, "carol", ""), store.ErrBadPassword)

	s, err := b.Login(ctx, "BOB", "hungry")
	must(t, err)
	if s.User() != "bob" {
		t.Errorf("user %q, want bob", s.User())
	}
	for _, c := range []struct{ u, p string }{{"bob", "Hungry"}, {"bob", "hungry "}, {"bob", ""}, {"nobody", "hungry"}, {"alice", "s3cret"}} {
		if _, err := b.Login(ctx, c.u, c.p); !errors.Is(err, store.ErrAuthFailed) {
			t.Errorf("login %q/%q: %v, want ErrAuthFailed", c.u, c.p, err)
		}
	}
	// Addresses resolve to a user stored under the whole address or under
	// its local part.
	for rcpt, want := range map[string]bool{
		"bob": true, "bob@hamburger.test": true, "<Bob@Hamburger.Test>": true,
		"alice@crepes.test": true, "alice": false, "carol@x.test": false, "a b@x": false,
	} {
		got, err := b.UserExists(ctx, rcpt)
		if err != nil || got != want {
			t.Errorf("UserExists(%q) = %v, %v; want %v", rcpt, got, err, want)
		}
	}
	if _, err := b.Login(ctx, "bob@hamburger.test", "hungry"); err != nil {
		t.Errorf("login by address: %v", err)
	}

	must(t, b.SetPassword(ctx, "bob", "fed"))
	if _, err := b.Login(ctx, "bob", "hungry"); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf("old password still works: %v", err)
	}
	if _, err := b.Login(ctx, "bob", "fed"); err != nil {
		t.Errorf("new password: %v", err)
	}
	wantErr(t, "passwd of nobody", b.SetPassword(ctx, "nobody", "x"), store.ErrNoUser)

	users, err := b.Users(ctx)
	must(t, err)
	if !slices.Equal(users, []string{"alice@crepes.test", "bob"}) {
		t.Errorf("users %q", users)
	}
	must(t, b.Deliver(ctx, "bob@hamburger.test", msg(1)))
	wantErr(t, "deliver to nobody", b.Deliver(ctx, "nobody@hamburger.test", msg(1)), store.ErrNoUser)
	must(t, b.DeleteUser(ctx, "bob"))
	wantErr(t, "delete twice", b.DeleteUser(ctx, "bob"), store.ErrNoUser)
	if _, err := b.Login(ctx, "bob", "fed"); !errors.Is(err, store.ErrAuthFailed) {
		t.Errorf("deleted user logs in: %v", err)
	}
	if ok, _ := b.UserExists(ctx, "bob"); ok {
		t.Error("deleted user exists")
	}
	// A new bob starts empty.
	s = user(t, b, "bob")
	st, err := s.Status(ctx, "INBOX")
	must(t, err)
	if st.Messages != 0 {
		t.Errorf("new bob has %d messages", st.Messages)
	}
}

func names(t *testing.T, s store.Session) []string {
	t.Helper()
	ms, err := s.Mailboxes(context.Background())
	must(t, err)
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func testMailboxes(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	ms, err := s.Mailboxes(ctx)
	must(t, err)
	uses := map[string]string{}
	for _, m := range ms {
		uses[m.Name] = m.SpecialUse
		if !m.Subscribed {
			t.Errorf("default mailbox %q is not subscribed", m.Name)
		}
	}
	if uses["INBOX"] != "" || uses["Sent"] != store.SpecialSent || uses["Trash"] != store.SpecialTrash ||
		uses["Drafts"] != store.SpecialDrafts || uses["Junk"] != store.SpecialJunk || len(ms) != 5 {
		t.Errorf("default mailboxes %+v", ms)
	}
	must(t, s.CreateMailbox(ctx, "Work/2026/Q4"))
	wantErr(t, "create twice", s.CreateMailbox(ctx, "Work/2026"), store.ErrMailboxExists)
	wantErr(t, "create inbox", s.CreateMailbox(ctx, "inbox"), store.ErrMailboxExists)
	want := []string{"Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "Work/2026", "Work/2026/Q4"}
	if got := names(t, s); !slices.Equal(got, want) {
		t.Errorf("mailboxes %q, want %q", got, want)
	}
	ms, _ = s.Mailboxes(ctx)
	for _, m := range ms {
		if m.HasChildren != (m.Name == "Work" || m.Name == "Work/2026") {
			t.Errorf("%q HasChildren = %v", m.Name, m.HasChildren)
		}
	}
	wantErr(t, "delete with children", s.DeleteMailbox(ctx, "Work"), store.ErrHasChildren)
	wantErr(t, "delete INBOX", s.DeleteMailbox(ctx, "Inbox"), store.ErrInbox)
	wantErr(t, "delete missing", s.DeleteMailbox(ctx, "Nope"), store.ErrNoMailbox)
	must(t, s.DeleteMailbox(ctx, "Work/2026/Q4"))
	must(t, s.Subscribe(ctx, "Work", true))
	wantErr(t, "subscribe missing", s.Subscribe(ctx, "Nope", true), store.ErrNoMailbox)
	ms, _ = s.Mailboxes(ctx)
	for _, m := range ms {
		if m.Name == "Work" && !m.Subscribed || m.Name == "Work/2026" && m.Subscribed {
			t.Errorf("subscription of %q: %v", m.Name, m.Subscribed)
		}
	}
	// "inbox" in any case is INBOX.
	r, err := s.Append(ctx, "iNbOx", msg(1), nil, time.Time{})
	must(t, err)
	mb, err := s.Select(ctx, "INBOX")
	must(t, err)
	if mb.UIDValidity() != r.UIDValidity || mb.Name() != "INBOX" {
		t.Errorf("select inbox: %q %d, append said %d", mb.Name(), mb.UIDValidity(), r.UIDValidity)
	}
	// A deleted mailbox's handle fails; a new one of the same name has a
	// new UIDVALIDITY (RFC 3501 §2.3.1.1).
	must(t, s.CreateMailbox(ctx, "Tmp"))
	tmp, err := s.Select(ctx, "Tmp")
	must(t, err)
	_, err = s.Append(ctx, "Tmp", msg(2), nil, time.Time{})
	must(t, err)
	must(t, s.DeleteMailbox(ctx, "Tmp"))
	_, err = tmp.List(ctx)
	wantErr(t, "list deleted", err, store.ErrNoMailbox)
	_, err = tmp.Fetch(ctx, 1)
	wantErr(t, "fetch deleted", err, store.ErrNoMailbox)
	_, err = s.Append(ctx, "Tmp", msg(3), nil, time.Time{})
	wantErr(t, "append to deleted", err, store.ErrNoMailbox)
	must(t, s.CreateMailbox(ctx, "Tmp"))
	tmp2, err := s.Select(ctx, "Tmp")
	must(t, err)
	if tmp2.UIDValidity() == tmp.UIDValidity() {
		t.Errorf("recreated mailbox reuses UIDVALIDITY %d", tmp.UIDValidity())
	}
	// Users do not see each other's mailboxes.
	a := user(t, b, "alice")
	if _, err := a.Select(ctx, "Work"); !errors.Is(err, store.ErrNoMailbox) {
		t.Errorf("alice selects bob's Work: %v", err)
	}
}

func testMailboxNames(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	good := []string{"Entwürfe", "日本語/メール", "a b", "[Gmail]/All Mail", "x&y", "tab-less~", "\"quoted\"", "back\\slash", "INBOX/Sub"}
	for _, n := range good {
		if err := s.CreateMailbox(ctx, n); err != nil {
			t.Errorf("create %q: %v", n, err)
			continue
		}
		if _, err := s.Append(ctx, n, msg(1), nil, time.Time{}); err != nil {
			t.Errorf("append to %q: %v", n, err)
		}
	}
	got := names(t, s)
	for _, n := range good {
		if !slices.Contains(got, n) {
			t.Errorf("%q not listed in %q", n, got)
		}
	}
	if slices.Contains(got, "inbox/Sub") {
		t.Error("INBOX/Sub listed as inbox/Sub")
	}
	bad := []string{"", "/", "/a", "a/", "a//b", "a/./b", "..", "x\x00y", "line\r\nbreak", "tab\t", "del\x7f", "\xff\xfe", "wild*", "per%cent",
		"\u0085next", string(bytes.Repeat([]byte("n"), store.MaxMailboxName+1))}
	for _, n := range bad {
		if err := s.CreateMailbox(ctx, n); !errors.Is(err, store.ErrBadName) {
			t.Errorf("create %q: %v, want ErrBadName", n, err)
		}
		if _, err := s.Append(ctx, n, msg(1), nil, time.Time{}); !errors.Is(err, store.ErrBadName) {
			t.Errorf("append to %q: %v, want ErrBadName", n, err)
		}
	}
	if got2 := names(t, s); len(got2) != len(got) {
		t.Errorf("bad names changed the list: %q", got2)
	}
}

func testRename(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	must(t, s.CreateMailbox(ctx, "A/B"))
	_, err := s.Append(ctx, "A/B", msg(1), []string{store.FlagSeen}, time.Time{})
	must(t, err)
	ab, err := s.Select(ctx, "A/B")
	must(t, err)
	must(t, s.RenameMailbox(ctx, "A", "X/Y"))
	want := []string{"Drafts", "INBOX", "Junk", "Sent", "Trash", "X", "X/Y", "X/Y/B"}
	if got := names(t, s); !slices.Equal(got, want) {
		t.Errorf("after rename: %q, want %q", got, want)
	}
	moved, err := s.Select(ctx, "X/Y/B")
	must(t, err)
	if moved.UIDValidity() != ab.UIDValidity() {
		t.Errorf("rename changed UIDVALIDITY %d -> %d", ab.UIDValidity(), moved.UIDValidity())
	}
	// The old handle follows the mailbox.
	if l, err := ab.List(ctx); err != nil || len(l) != 1 {
		t.Errorf("old handle after rename: %v %v", l, err)
	}
	wantErr(t, "rename onto existing", s.RenameMailbox(ctx, "X", "Sent"), store.ErrMailboxExists)
	wantErr(t, "rename missing", s.RenameMailbox(ctx, "Nope", "Z"), store.ErrNoMailbox)
	wantErr(t, "rename into itself", s.RenameMailbox(ctx, "X", "X/Z"), store.ErrBadName)
	wantErr(t, "rename to INBOX", s.RenameMailbox(ctx, "X", "INBOX"), store.ErrBadName)

	// RFC 3501 §6.3.5: renaming INBOX moves its messages out and leaves it
	// empty.
	for i := range 3 {
		_, err := s.Append(ctx, "INBOX", msg(i), nil, time.Time{})
		must(t, err)
	}
	inbox, _ := s.Select(ctx, "INBOX")
	before, _ := inbox.Status(ctx)
	must(t, s.RenameMailbox(ctx, "inbox", "Old/Inbox"))
	st, err := s.Status(ctx, "INBOX")
	must(t, err)
	old, err := s.Status(ctx, "Old/Inbox")
	must(t, err)
	if st.Messages != 0 || old.Messages != 3 || st.UIDNext != before.UIDNext || st.UIDValidity != before.UIDValidity {
		t.Errorf("rename INBOX: INBOX %+v (before %+v), Old/Inbox %+v", st, before, old)
	}
}

func testUIDs(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	o := nf(t, store.Options{})
	b := open(t, o)
	s := user(t, b, "bob")
	var uids []store.UID
	var uv uint32
	for i := range 5 {
		r, err := s.Append(ctx, "INBOX", msg(i), nil, time.Time{})
		must(t, err)
		uids = append(uids, r.UID)
		uv = r.UIDValidity
	}
	if !slices.Equal(uids, []store.UID{1, 2, 3, 4, 5}) {
		t.Errorf("uids %v", uids)
	}
	mb, err := s.Select(ctx, "INBOX")
	must(t, err)
	_, _, err = mb.SetFlags(ctx, []store.UID{4, 5}, store.FlagsAdd, []string{store.FlagDeleted}, 0)
	must(t, err)
	gone, err := mb.Expunge(ctx, nil)
	must(t, err)
	if !slices.Equal(gone, []store.UID{4, 5}) {
		t.Errorf("expunged %v", gone)
	}
	r, err := s.Append(ctx, "INBOX", msg(6), nil, time.Time{})
	must(t, err)
	if r.UID != 6 {
		t.Errorf("after expunging the last UIDs, append got %d, want 6", r.UID)
	}
	_, err = mb.Expunge(ctx, nil) // nothing flagged
	must(t, err)
	_, err = mb.Delete(ctx, []store.UID{6})
	must(t, err)
	must(t, b.Close())

	// Restart: UIDVALIDITY is the same and UIDs go on from where they were.
	b2 := open(t, o)
	s2, err := b2.Login(ctx, "bob", "pw-bob")
	must(t, err)
	st, err := s2.Status(ctx, "INBOX")
	must(t, err)
	if st.UIDValidity != uv || st.UIDNext != 7 || st.Messages != 3 {
		t.Errorf("after restart: %+v, want UIDVALIDITY %d UIDNEXT 7, 3 messages", st, uv)
	}
	r, err = s2.Append(ctx, "INBOX", msg(7), nil, time.Time{})
	must(t, err)
	if r.UID != 7 || r.UIDValidity != uv {
		t.Errorf("append after restart: %+v", r)
	}
	mb2, _ := s2.Select(ctx, "INBOX")
	l, err := mb2.List(ctx)
	must(t, err)
	var got []store.UID
	for _, m := range l {
		got = append(got, m.UID)
	}
	if !slices.Equal(got, []store.UID{1, 2, 3, 7}) {
		t.Errorf("list %v", got)
	}
	if _, err := mb2.Fetch(ctx, 4); !errors.Is(err, store.ErrNoMessage) {
		t.Errorf("fetch expunged: %v", err)
	}
	if u := store.UIDL(uv, 7); u != fmt.Sprintf("%d.7", uv) {
		t.Errorf("UIDL %q", u)
	}
}

func testBytes(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	eight := []byte("Subject: =?utf-8?q?x?=\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for c := 1; c < 256; c++ { // every byte but NUL
		eight = append(eight, byte(c))
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = "abcdefghij\r\n"[i%12]
	}
	cases := map[string][]byte{
		"no trailing newline": []byte("Subject: a\r\n\r\nno newline at the end"),
		"8-bit":               eight,
		"bare LF and CR":      []byte("Subject: b\n\nline\nother\rthird\r\n"),
		"leading dots":        []byte("Subject: c\r\n\r\n.\r\n..\r\n.x"),
		"3 MiB":               big,
	}
	zone := time.FixedZone("", -(7*3600 + 30*60))
	date := time.Date(2025, 11, 5, 9, 8, 7, 0, zone)
	mb, err := s.Select(ctx, "INBOX")
	must(t, err)
	var total int64
	for name, body := range cases {
		orig := bytes.Clone(body)
		r, err := s.Append(ctx, "INBOX", body, nil, date)
		must(t, err)
		m, err := mb.Fetch(ctx, r.UID)
		must(t, err)
		if !bytes.Equal(m.Body, orig) || m.Size != int64(len(orig)) {
			t.Errorf("%s: got %d bytes (size %d), want %d identical", name, len(m.Body), m.Size, len(orig))
		}
		if !m.InternalDate.Equal(date) {
			t.Errorf("%s: internal date %v, want %v", name, m.InternalDate, date)
		}
		if _, off := m.InternalDate.Zone(); off != -(7*3600 + 30*60) {
			t.Errorf("%s: zone offset %d", name, off)
		}
		total += int64(len(orig))
	}
	// The same bytes delivered twice are two messages.
	must(t, b.Deliver(ctx, "bob", cases["8-bit"]))
	total += int64(len(cases["8-bit"]))
	st, err := mb.Status(ctx)
	must(t, err)
	if st.Messages != uint32(len(cases)+1) || st.Size != total || st.Unseen != st.Messages {
		t.Errorf("status %+v, want %d messages, %d bytes, all unseen", st, len(cases)+1, total)
	}
	l, _ := mb.List(ctx)
	last := l[len(l)-1]
	m, err := mb.Fetch(ctx, last.UID)
	must(t, err)
	if !bytes.Equal(m.Body, cases["8-bit"]) {
		t.Error("delivered copy differs")
	}
	if time.Since(m.InternalDate) > time.Hour || time.Until(m.InternalDate) > time.Hour {
		t.Errorf("delivered internal date %v is not now", m.InternalDate)
	}
}

func testLimits(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{MaxMessageSize: 1000, MaxMailboxes: 8}))
	s := user(t, b, "bob")
	ok := bytes.Repeat([]byte("x"), 1000)
	if _, err := s.Append(ctx, "INBOX", ok, nil, time.Time{}); err != nil {
		t.Errorf("message of exactly the limit: %v", err)
	}
	_, err := s.Append(ctx, "INBOX", append(ok, 'y'), nil, time.Time{})
	wantErr(t, "append over the limit", err, store.ErrTooLarge)
	wantErr(t, "deliver over the limit", b.Deliver(ctx, "bob", append(ok, 'y')), store.ErrTooLarge)
	_, err = s.Append(ctx, "INBOX", nil, nil, time.Time{})
	wantErr(t, "empty", err, store.ErrEmptyMessage)
	// 5 mailboxes come with the user; 3 more (a, a/b, c) reach the limit of 8.
	must(t, s.CreateMailbox(ctx, "a/b"))
	must(t, s.CreateMailbox(ctx, "c"))
	wantErr(t, "mailbox 9", s.CreateMailbox(ctx, "d"), store.ErrTooMany)
	if got := names(t, s); len(got) != 8 {
		t.Errorf("mailboxes after the limit: %q", got)
	}
	wantErr(t, "rename creating a superior", s.RenameMailbox(ctx, "c", "g/c"), store.ErrTooMany)
	must(t, s.RenameMailbox(ctx, "c", "g")) // a rename makes no new mailbox
	st, _ := s.Status(ctx, "INBOX")
	if st.Messages != 1 || st.UIDNext != 2 {
		t.Errorf("refused messages left traces: %+v", st)
	}
}

func flagsOf(t *testing.T, mb store.Mailbox, uid store.UID) store.MessageInfo {
	t.Helper()
	l, err := mb.List(context.Background())
	must(t, err)
	for _, m := range l {
		if m.UID == uid {
			return m
		}
	}
	t.Fatalf("uid %d not listed", uid)
	return store.MessageInfo{}
}

func testFlags(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	r1, err := s.Append(ctx, "INBOX", msg(1), []string{`\seen`, "$Forwarded", "$Forwarded"}, time.Time{})
	must(t, err)
	r2, err := s.Append(ctx, "INBOX", msg(2), nil, time.Time{})
	must(t, err)
	mb, _ := s.Select(ctx, "INBOX")
	m1 := flagsOf(t, mb, r1.UID)
	if !slices.Equal(m1.Flags, []string{store.FlagSeen, "$Forwarded"}) {
		t.Errorf("appended flags %q", m1.Flags)
	}
	st, _ := mb.Status(ctx)
	m2 := flagsOf(t, mb, r2.UID)
	if m2.ModSeq <= m1.ModSeq || st.HighestModSeq != m2.ModSeq || st.Unseen != 1 {
		t.Errorf("modseqs %d %d, highest %d, unseen %d", m1.ModSeq, m2.ModSeq, st.HighestModSeq, st.Unseen)
	}

	changed, failed, err := mb.SetFlags(ctx, []store.UID{r1.UID, r2.UID, 99}, store.FlagsAdd, []string{store.FlagFlagged, "Work"}, 0)
	must(t, err)
	if len(changed) != 2 || len(failed) != 0 || changed[0].ModSeq <= st.HighestModSeq || changed[0].ModSeq != changed[1].ModSeq {
		t.Fatalf("add flags: changed %+v failed %v", changed, failed)
	}
	ms := changed[0].ModSeq
	if got := flagsOf(t, mb, r1.UID).Flags; !slices.Equal(got, []string{store.FlagSeen, store.FlagFlagged, "$Forwarded", "Work"}) {
		t.Errorf("after +FLAGS: %q", got)
	}
	// No UIDs: nothing changes (not "all").
	for _, none := range [][]store.UID{nil, {}} {
		changed, _, err = mb.SetFlags(ctx, none, store.FlagsReplace, nil, 0)
		must(t, err)
		if res, err := mb.Copy(ctx, none, "Trash"); err != nil || len(res.Dest) != 0 {
			t.Errorf("copy of %v: %+v %v", none, res, err)
		}
		if gone, err := mb.Delete(ctx, none); err != nil || len(gone) != 0 {
			t.Errorf("delete of %v: %v %v", none, gone, err)
		}
	}
	if len(changed) != 0 || len(flagsOf(t, mb, r1.UID).Flags) != 4 {
		t.Errorf("SetFlags of no UIDs changed %+v", changed)
	}
	// A change that changes nothing takes no modification sequence.
	changed, _, err = mb.SetFlags(ctx, []store.UID{r1.UID}, store.FlagsAdd, []string{store.FlagFlagged}, 0)
	must(t, err)
	if st2, _ := mb.Status(ctx); len(changed) != 0 || st2.HighestModSeq != ms {
		t.Errorf("no-op store: changed %v, highest %d (was %d)", changed, st2.HighestModSeq, ms)
	}
	// UNCHANGEDSINCE (RFC 7162 §3.1.3).
	changed, failed, err = mb.SetFlags(ctx, []store.UID{r1.UID, r2.UID}, store.FlagsRemove, []string{"Work"}, ms-1)
	must(t, err)
	if len(changed) != 0 || !slices.Equal(failed, []store.UID{r1.UID, r2.UID}) {
		t.Errorf("unchangedsince %d: changed %v failed %v", ms-1, changed, failed)
	}
	changed, _, err = mb.SetFlags(ctx, []store.UID{r2.UID}, store.FlagsReplace, []string{store.FlagAnswered}, ms)
	must(t, err)
	if len(changed) != 1 || !slices.Equal(changed[0].Flags, []string{store.FlagAnswered}) {
		t.Errorf("replace: %+v", changed)
	}
	ms2 := changed[0].ModSeq
	ch, gone, err := mb.Changes(ctx, ms)
	must(t, err)
	if len(ch) != 1 || ch[0].UID != r2.UID || len(gone) != 0 {
		t.Errorf("changes since %d: %+v %v", ms, ch, gone)
	}
	for _, bad := range [][]string{{`\Recent`}, {`\Whatever`}, {"a b"}, {"(x"}, {"x]"}, {""}, {"caf\xc3\xa9"}} {
		if _, _, err := mb.SetFlags(ctx, []store.UID{r1.UID}, store.FlagsAdd, bad, 0); !errors.Is(err, store.ErrBadFlag) {
			t.Errorf("flag %q: %v", bad, err)
		}
	}
	// Expunge takes only \Deleted messages, and announces them as vanished.
	_, _, err = mb.SetFlags(ctx, []store.UID{r1.UID}, store.FlagsAdd, []string{store.FlagDeleted}, 0)
	must(t, err)
	st, _ = mb.Status(ctx)
	if st.Deleted != 1 {
		t.Errorf("deleted count %d", st.Deleted)
	}
	gone, err = mb.Expunge(ctx, []store.UID{r2.UID})
	must(t, err)
	if len(gone) != 0 {
		t.Errorf("UID EXPUNGE of an undeleted message removed %v", gone)
	}
	gone, err = mb.Expunge(ctx, nil)
	must(t, err)
	if !slices.Equal(gone, []store.UID{r1.UID}) {
		t.Errorf("expunge: %v", gone)
	}
	ch, gone, err = mb.Changes(ctx, ms2)
	must(t, err)
	st2, _ := mb.Status(ctx)
	if len(ch) != 0 || !slices.Equal(gone, []store.UID{r1.UID}) || st2.HighestModSeq <= ms2 {
		t.Errorf("after expunge: changes %+v vanished %v highest %d", ch, gone, st2.HighestModSeq)
	}
}

func testCopyMove(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	for i := range 4 {
		_, err := s.Append(ctx, "INBOX", msg(i), []string{"k" + fmt.Sprint(i)}, time.Time{})
		must(t, err)
	}
	_, err := s.Append(ctx, "Trash", msg(9), nil, time.Time{})
	must(t, err)
	inbox, _ := s.Select(ctx, "INBOX")
	trash, _ := s.Select(ctx, "Trash")
	res, err := inbox.Copy(ctx, []store.UID{3, 1, 42}, "Trash")
	must(t, err)
	if res.UIDValidity != trash.UIDValidity() || !slices.Equal(res.Source, []store.UID{1, 3}) || !slices.Equal(res.Dest, []store.UID{2, 3}) {
		t.Errorf("copy: %+v", res)
	}
	m, err := trash.Fetch(ctx, 3)
	must(t, err)
	if !bytes.Equal(m.Body, msg(2)) || !slices.Equal(m.Flags, []string{"k2"}) {
		t.Errorf("copied message: %q %q", m.Body, m.Flags)
	}
	before, _ := inbox.Status(ctx)
	res, err = inbox.Move(ctx, []store.UID{2, 4}, "Trash")
	must(t, err)
	if !slices.Equal(res.Dest, []store.UID{4, 5}) {
		t.Errorf("move: %+v", res)
	}
	after, _ := inbox.Status(ctx)
	_, gone, _ := inbox.Changes(ctx, before.HighestModSeq)
	if after.Messages != 2 || !slices.Equal(gone, []store.UID{2, 4}) {
		t.Errorf("after move: %+v, vanished %v", after, gone)
	}
	if _, err := inbox.Move(ctx, []store.UID{1}, "INBOX"); err == nil {
		t.Error("move to the same mailbox accepted")
	}
	if _, err := inbox.Copy(ctx, []store.UID{1}, "Nope"); !errors.Is(err, store.ErrNoMailbox) {
		t.Errorf("copy to missing mailbox: %v", err)
	}
	// Expunging the original keeps the copy's bytes (they are shared).
	_, err = inbox.Delete(ctx, []store.UID{1, 3})
	must(t, err)
	m, err = trash.Fetch(ctx, 2)
	must(t, err)
	if !bytes.Equal(m.Body, msg(0)) {
		t.Errorf("copy after original's expunge: %q", m.Body)
	}
	must(t, s.DeleteMailbox(ctx, "Trash"))
	must(t, s.CreateMailbox(ctx, "Trash"))
	_, err = s.Append(ctx, "Trash", msg(0), nil, time.Time{})
	must(t, err)
}

func testConcurrent(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	o := nf(t, store.Options{})
	b1 := open(t, o)
	b2 := open(t, o) // a second server on the same store
	must(t, b1.AddUser(ctx, "bob", "pw"))
	const workers, each = 12, 15
	var mu sync.Mutex
	seen := map[store.UID]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := b1
			if w%2 == 1 {
				b = b2
			}
			s, err := b.OpenSession(ctx, "bob")
			if err != nil {
				errs <- err
				return
			}
			for i := range each {
				n := w*each + i
				r, err := s.Append(ctx, "INBOX", msg(n), nil, time.Time{})
				if err != nil {
					errs <- fmt.Errorf("append %d: %w", n, err)
					return
				}
				mu.Lock()
				if prev, dup := seen[r.UID]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("uid %d given to messages %d and %d", r.UID, prev, n)
					return
				}
				seen[r.UID] = n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, _ := b1.OpenSession(ctx, "bob")
	mb, _ := s.Select(ctx, "INBOX")
	st, err := mb.Status(ctx)
	must(t, err)
	if st.Messages != workers*each || st.UIDNext != workers*each+1 {
		t.Errorf("status %+v, want %d messages", st, workers*each)
	}
	for uid, n := range seen {
		m, err := mb.Fetch(ctx, uid)
		if err != nil || !bytes.Equal(m.Body, msg(n)) {
			t.Fatalf("uid %d: %v, want message %d", uid, err, n)
		}
	}
}

func testLock(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	o := nf(t, store.Options{LockLease: time.Second})
	b1 := open(t, o)
	b2 := open(t, o)
	must(t, b1.AddUser(ctx, "bob", "pw"))
	must(t, b1.AddUser(ctx, "alice", "pw"))
	s1, _ := b1.OpenSession(ctx, "bob")
	s2, _ := b2.OpenSession(ctx, "bob")
	l1, err := s1.LockMaildrop(ctx)
	must(t, err)
	if _, err := s2.LockMaildrop(ctx); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second lock on another server: %v", err)
	}
	if _, err := s1.LockMaildrop(ctx); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second lock on the same server: %v", err)
	}
	a, _ := b2.OpenSession(ctx, "alice")
	la, err := a.LockMaildrop(ctx)
	must(t, err) // another user's maildrop is free
	must(t, la.Release(ctx))
	// The holder renews its lease: after more than a lease it still holds.
	time.Sleep(2500 * time.Millisecond)
	if _, err := s2.LockMaildrop(ctx); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("lock lost while its holder lives: %v", err)
	}
	must(t, l1.Release(ctx))
	l2, err := s2.LockMaildrop(ctx)
	must(t, err)
	// A holder that dies (its server closes without releasing) frees the
	// maildrop when its lease runs out.
	must(t, b2.Close())
	_ = l2
	var got store.Lock
	for range 300 {
		got, err = s1.LockMaildrop(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLocked) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got == nil {
		t.Fatalf("dead holder's lock never expired: %v", err)
	}
	must(t, got.Release(ctx))
}

func testDurability(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	o := nf(t, store.Options{})
	b := open(t, o)
	must(t, b.AddUser(ctx, "bob", "pw"))
	s, _ := b.OpenSession(ctx, "bob")
	must(t, s.CreateMailbox(ctx, "Kept"))
	r, err := s.Append(ctx, "Kept", msg(1), []string{store.FlagFlagged}, time.Time{})
	must(t, err)
	must(t, b.Deliver(ctx, "bob", msg(2)))
	must(t, b.Close())
	b = open(t, o)
	s, err = b.Login(ctx, "bob", "pw")
	must(t, err)
	mb, err := s.Select(ctx, "Kept")
	must(t, err)
	m, err := mb.Fetch(ctx, r.UID)
	must(t, err)
	if !bytes.Equal(m.Body, msg(1)) || !m.Has(store.FlagFlagged) {
		t.Errorf("after reopen: %q %q", m.Body, m.Flags)
	}
	in, _ := s.Select(ctx, "INBOX")
	m, err = in.Fetch(ctx, 1)
	must(t, err)
	if !bytes.Equal(m.Body, msg(2)) {
		t.Errorf("delivered message after reopen: %q", m.Body)
	}
}

func testWatch(t *testing.T, nf Factory, f Features) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := nf(t, store.Options{})
	b := open(t, o)
	w, ok := b.(store.Watcher)
	if !ok {
		t.Skip("backend has no store.Watcher")
	}
	must(t, b.AddUser(ctx, "bob", "pw"))
	ch, err := w.Watch(ctx, "bob", "INBOX")
	must(t, err)
	other, err := w.Watch(ctx, "bob", "Sent")
	must(t, err)
	if _, err := w.Watch(ctx, "bob", "Nope"); !errors.Is(err, store.ErrNoMailbox) {
		t.Errorf("watch missing mailbox: %v", err)
	}
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
	}
	must(t, b.Deliver(ctx, "bob", msg(1)))
	wait("deliver", ch)
	s, _ := b.OpenSession(ctx, "bob")
	mb, _ := s.Select(ctx, "INBOX")
	_, _, err = mb.SetFlags(ctx, []store.UID{1}, store.FlagsAdd, []string{store.FlagSeen}, 0)
	must(t, err)
	wait("flags", ch)
	if f.SharedWatch {
		b2 := open(t, o)
		must(t, b2.Deliver(ctx, "bob", msg(2)))
		wait("deliver through another server", ch)
	}
	select {
	case <-other:
		t.Error("Sent was told of INBOX's changes")
	default:
	}
	cancel()
	for range ch { // closed once ctx ends
	}
}

// BenchmarkDeliver measures local delivery: messages of 2 KiB appended to
// one INBOX from parallel goroutines (b.SetParallelism(4) per CPU), each
// one committed to stable storage before the next.
func BenchmarkDeliver(b *testing.B, o Opener) {
	ctx := context.Background()
	be, err := o()
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	if err := be.AddUser(ctx, "bob", "pw"); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 32)
	var n sync.Mutex
	seq := 0
	b.SetBytes(int64(len(body)))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			seq++
			m := append(fmt.Appendf(nil, "Message-ID: <%d@bench>\r\n", seq), body...)
			n.Unlock()
			if err := be.Deliver(ctx, "bob", m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func testParts(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	b := open(t, nf(t, store.Options{}))
	s := user(t, b, "bob")
	bodies := [][]byte{
		[]byte("Subject: a\r\nX-Y: b\r\n\r\nbody\r\n\r\nmore"),
		[]byte("Subject: no body\r\n"),
		[]byte("Subject: bare\nX: y\n\nlf body"),
		[]byte("\r\nno header"),
	}
	heads := []string{"Subject: a\r\nX-Y: b\r\n\r\n", "Subject: no body\r\n", "Subject: bare\nX: y\n\n", "\r\n"}
	for _, m := range bodies {
		_, err := s.Append(ctx, "INBOX", m, nil, time.Time{})
		must(t, err)
	}
	mb, _ := s.Select(ctx, "INBOX")
	pf, ok := mb.(store.PartFetcher)
	if !ok {
		t.Skip("backend has no store.PartFetcher")
	}
	parts, err := pf.Headers(ctx, []store.UID{4, 99, 2, 1, 3, 2})
	must(t, err)
	if len(parts) != 4 {
		t.Fatalf("headers: %d parts", len(parts))
	}
	for i, p := range parts {
		if p.UID != store.UID(i+1) || string(p.Bytes) != heads[i] {
			t.Errorf("header of %d: %q, want uid %d %q", p.UID, p.Bytes, i+1, heads[i])
		}
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, 7, "Subject"}, {int64(len(bodies[0])) - 4, 100, "more"}, {9, 1, "a"}, {1000, 10, ""}, {0, 0, ""}} {
		got, err := pf.FetchRange(ctx, 1, c.off, c.n)
		if err != nil || string(got) != c.want {
			t.Errorf("range %d+%d: %q %v, want %q", c.off, c.n, got, err, c.want)
		}
	}
	if _, err := pf.FetchRange(ctx, 99, 0, 1); !errors.Is(err, store.ErrNoMessage) {
		t.Errorf("range of a missing message: %v", err)
	}
	if p, err := pf.Headers(ctx, []store.UID{99}); err != nil || len(p) != 0 {
		t.Errorf("headers of a missing message: %v %v", p, err)
	}
}

// testConcurrentMoves moves messages both ways between two mailboxes from
// two servers at once, with flag changes and copies beside: no deadlock
// surfaces as an error, and each message ends in exactly one place.
func testConcurrentMoves(t *testing.T, nf Factory, _ Features) {
	ctx := context.Background()
	o := nf(t, store.Options{})
	b1, b2 := open(t, o), open(t, o)
	must(t, b1.AddUser(ctx, "bob", "pw"))
	s, _ := b1.OpenSession(ctx, "bob")
	must(t, s.CreateMailbox(ctx, "A"))
	must(t, s.CreateMailbox(ctx, "B"))
	const n = 20
	for i := range n {
		box := "A"
		if i%2 == 1 {
			box = "B"
		}
		_, err := s.Append(ctx, box, msg(i), nil, time.Time{})
		must(t, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := b1
			if w%2 == 1 {
				b = b2
			}
			ss, err := b.OpenSession(ctx, "bob")
			if err != nil {
				errs <- err
				return
			}
			from, to := "A", "B"
			if w%3 == 1 {
				from, to = to, from
			}
			for i := range 15 {
				mb, err := ss.Select(ctx, from)
				if err != nil {
					errs <- err
					return
				}
				l, err := mb.List(ctx)
				if err != nil {
					errs <- err
					return
				}
				var uids []store.UID
				for j, m := range l {
					if j%3 == i%3 {
						uids = append(uids, m.UID)
					}
				}
				switch w % 3 {
				case 2:
					_, _, err = mb.SetFlags(ctx, uids, store.FlagsAdd, []string{fmt.Sprintf("k%d", i%4)}, 0)
				default:
					_, err = mb.Move(ctx, uids, to)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d step %d: %w", w, i, err)
					return
				}
				from, to = to, from
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]int{}
	for _, box := range []string{"A", "B"} {
		mb, _ := s.Select(ctx, box)
		l, err := mb.List(ctx)
		must(t, err)
		for _, m := range l {
			full, err := mb.Fetch(ctx, m.UID)
			must(t, err)
			seen[string(full.Body)]++
		}
	}
	for i := range n {
		if c := seen[string(msg(i))]; c != 1 {
			t.Errorf("message %d is in %d places", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
}
