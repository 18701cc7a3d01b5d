package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMailboxName(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "inbox": "INBOX", "InBoX/Sub": "INBOX/Sub", "Inboxes": "Inboxes",
		"Entwürfe": "Entwürfe", "a/b/c": "a/b/c", "[Gmail]/Sent Mail": "[Gmail]/Sent Mail",
	} {
		got, err := MailboxName(in)
		if err != nil || got != want {
			t.Errorf("MailboxName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/", "a/", "/a", "a//b", ".", "a/../b", "x\x00", "x\ny", "\xc3", "*", "a%", "\u009b", strings.Repeat("x", MaxMailboxName+1)} {
		if _, err := MailboxName(in); !errors.Is(err, ErrBadName) {
			t.Errorf("MailboxName(%q): %v, want ErrBadName", in, err)
		}
	}
}

func TestParseFlags(t *testing.T) {
	bits, kw, err := ParseFlags([]string{`\SEEN`, `\draft`, "$Junk", "Work", "$Junk"})
	if err != nil || bits != BitSeen|BitDraft || !slices.Equal(kw, []string{"$Junk", "Work"}) {
		t.Fatalf("ParseFlags: %b %q %v", bits, kw, err)
	}
	if got := FormatFlags(bits, kw); !slices.Equal(got, []string{FlagSeen, FlagDraft, "$Junk", "Work"}) {
		t.Errorf("FormatFlags: %q", got)
	}
	many := make([]string, MaxKeywords+1)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i)
	}
	for _, bad := range [][]string{{`\Recent`}, {`\`}, {"a{b"}, {"sp ace"}, {strings.Repeat("k", MaxKeyword+1)}, many} {
		if _, _, err := ParseFlags(bad); !errors.Is(err, ErrBadFlag) {
			t.Errorf("ParseFlags(%q): %v", bad, err)
		}
	}
}

func TestResolveUser(t *testing.T) {
	got, err := ResolveUser("<Bob@Hamburger.EDU>")
	if err != nil || !slices.Equal(got, []string{"bob@hamburger.edu", "bob"}) {
		t.Errorf("ResolveUser: %q %v", got, err)
	}
	if _, err := ResolveUser("bob smith@x"); !errors.Is(err, ErrBadUser) {
		t.Errorf("space: %v", err)
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("hungry")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "hungry") {
		t.Errorf("hash %q", h)
	}
	h2, _ := HashPassword("hungry")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	if !VerifyPassword(h, "hungry") || VerifyPassword(h, "Hungry") || VerifyPassword(h, "") {
		t.Error("verify")
	}
	weak, _ := HashPasswordWith(Options{WeakPasswordHash: true}, "hungry")
	if !VerifyPassword(weak, "hungry") || VerifyPassword(weak, "x") {
		t.Error("verify weak")
	}
	f := strings.Split(h, "$")
	for _, bad := range []string{
		"", "hungry", "$argon2i$" + strings.Join(f[2:], "$"),
		strings.Replace(h, "m=19456", "m=4194304", 1), // a cost no stored hash may ask for
		strings.Replace(h, "t=2", "t=0", 1),
		h[:len(h)-4],
		h + "$",
	} {
		if VerifyPassword(bad, "hungry") {
			t.Errorf("VerifyPassword(%q) accepted", bad)
		}
	}
	if _, err := HashPassword(strings.Repeat("p", MaxPassword+1)); !errors.Is(err, ErrBadPassword) {
		t.Errorf("long password: %v", err)
	}
}

func TestUIDL(t *testing.T) {
	u := UIDL(4294967295, 4294967295)
	if u != "4294967295.4294967295" || len(u) > 70 {
		t.Errorf("UIDL %q", u)
	}
}

func TestOpenUnknown(t *testing.T) {
	if _, err := Open(context.Background(), "mysql://x/y", Options{}); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("Open(mysql): %v", err)
	}
}

func TestHeaderSize(t *testing.T) {
	for in, want := range map[string]int64{
		"A: b\r\n\r\nbody": 8, "A: b\n\nbody": 6, "A: b\r\n": 6, "A: b": 4, "\r\nbody": 2, "\nbody": 1, "": 0,
		"A: b\r\n folded\r\n\r\n": 17, "A: b\n\r\nx": 7,
	} {
		if got := HeaderSize([]byte(in)); got != want {
			t.Errorf("HeaderSize(%q) = %d, want %d", in, got, want)
		}
	}
}
