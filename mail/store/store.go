// Package store is the mailbox store: users with hashed passwords, their
// mailboxes (INBOX and folders, hierarchy delimiter "/"), and messages kept
// once with their exact bytes, as local delivery (RFC 5321 §4.4: the final
// delivery of an accepted message), POP3 (RFC 1939), IMAP (RFC 3501, RFC
// 9051) and webmail need them.
//
// The interface is grouped by protocol state, as an IMAP server walks it: a
// Backend authenticates a user and opens a Session (the authenticated
// state); a Session lists, creates, renames and deletes mailboxes, appends
// messages and selects a Mailbox (the selected state), where messages are
// listed, fetched by UID, flagged, copied, moved and expunged.
//
// Each mailbox has a UIDVALIDITY and a UIDNEXT (RFC 3501 §2.3.1.1): UIDs are
// strictly increasing and never reused, not even after an expunge or a
// restart. Each message has flags (the system flags \Seen \Answered
// \Flagged \Deleted \Draft, and keywords) and a modification sequence
// (CONDSTORE, RFC 7162 §3.1): every change to a message's flags, every
// append and every expunge takes a new, higher value of the mailbox's
// HIGHESTMODSEQ, and expunged UIDs are remembered with theirs (QRESYNC's
// VANISHED, RFC 7162 §3.2.10).
//
// Two backends implement it and pass one test suite (storetest): SQLite
// (mail/store/sqlite, the embedded default) and PostgreSQL
// (mail/store/postgres, for several servers sharing one database). Open
// picks one by the form of its DSN once the backend's package is imported.
package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// UID is a message's unique identifier in its mailbox (RFC 3501 §2.3.1.1),
// from 1 to 2^32-1.
type UID uint32

// System flags (RFC 3501 §2.3.2). \Recent is not stored: it belongs to a
// session, and IMAP4rev2 (RFC 9051) dropped it.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// SystemFlags lists the system flags in the order the store reports them.
var SystemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

// Special-use attributes (RFC 6154) of the mailboxes a new user gets.
const (
	SpecialDrafts = `\Drafts`
	SpecialSent   = `\Sent`
	SpecialTrash  = `\Trash`
	SpecialJunk   = `\Junk`
)

// Inbox is the name of the mailbox every user has (RFC 3501 §5.1: the name
// is case-insensitive).
const Inbox = "INBOX"

// Delimiter separates the levels of a mailbox name's hierarchy.
const Delimiter = "/"

// Limits the store enforces, whatever the backend.
const (
	// DefaultMaxMessageSize is the largest message Append and Deliver take
	// unless Options says otherwise (Postfix's message_size_limit is 10 MB;
	// this leaves room for attachments while bounding what one message costs).
	DefaultMaxMessageSize = 64 << 20
	// DefaultMaxMailboxes is how many mailboxes a user may have unless
	// Options says otherwise.
	DefaultMaxMailboxes = 10000
	// MaxMailboxName is the longest mailbox name, in bytes.
	MaxMailboxName = 512
	// MaxKeyword is the longest keyword, in bytes.
	MaxKeyword = 128
	// MaxKeywords is how many distinct keywords one message may carry.
	MaxKeywords = 64
	// MaxUserName is the longest user name, in bytes.
	MaxUserName = 255
	// MaxPassword is the longest password, in bytes.
	MaxPassword = 1024
)

// Errors. Backends wrap them, so test them with errors.Is.
var (
	ErrAuthFailed     = errors.New("store: authentication failed")
	ErrNoUser         = errors.New("store: no such user")
	ErrUserExists     = errors.New("store: user already exists")
	ErrNoMailbox      = errors.New("store: no such mailbox")
	ErrMailboxExists  = errors.New("store: mailbox already exists")
	ErrTooMany        = errors.New("store: too many mailboxes")
	ErrHasChildren    = errors.New("store: mailbox has inferior hierarchical names")
	ErrInbox          = errors.New("store: INBOX cannot be deleted")
	ErrBadName        = errors.New("store: invalid mailbox name")
	ErrBadUser        = errors.New("store: invalid user name")
	ErrBadPassword    = errors.New("store: invalid password")
	ErrBadFlag        = errors.New("store: invalid flag")
	ErrNoMessage      = errors.New("store: no such message")
	ErrTooLarge       = errors.New("store: message too large")
	ErrEmptyMessage   = errors.New("store: empty message")
	ErrLocked         = errors.New("store: maildrop is locked by another session")
	ErrUIDsExhausted  = errors.New("store: the mailbox has used all 2^32-1 UIDs")
	ErrClosed         = errors.New("store: closed")
	ErrUnknownBackend = errors.New("store: unknown store kind")
)

// Options are the settings every backend takes; the zero value is the
// default.
type Options struct {
	// MaxMessageSize bounds a message's size in bytes (0: DefaultMaxMessageSize).
	MaxMessageSize int64
	// LockLease is how long a POP3 maildrop lock outlives its holder if the
	// holder dies without releasing it (0: 30 s). A live holder renews it
	// every third of the lease.
	LockLease time.Duration
	// MaxMailboxes bounds how many mailboxes one user may have (0:
	// DefaultMaxMailboxes), so a client cannot CREATE without end.
	MaxMailboxes int
	// WeakPasswordHash hashes new passwords with a trivial argon2id cost
	// (64 KiB, one pass): for tests only, where the real cost (19 MiB, two
	// passes: about 0.1 s, 1 s under the race detector) would dominate.
	WeakPasswordHash bool
}

// MaxSize returns the effective message size limit.
func (o Options) MaxSize() int64 {
	if o.MaxMessageSize > 0 {
		return o.MaxMessageSize
	}
	return DefaultMaxMessageSize
}

// Mailboxes returns the effective limit on a user's mailboxes.
func (o Options) Mailboxes() int {
	if o.MaxMailboxes > 0 {
		return o.MaxMailboxes
	}
	return DefaultMaxMailboxes
}

// Lease returns the effective maildrop lock lease.
func (o Options) Lease() time.Duration {
	if o.LockLease > 0 {
		return o.LockLease
	}
	return 30 * time.Second
}

// Backend is a store: the unauthenticated state, local delivery, and user
// management.
type Backend interface {
	// Login checks a user's password and opens a session for the user
	// (IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS, webmail). A wrong password
	// and an unknown user both give ErrAuthFailed, after the same work.
	Login(ctx context.Context, user, password string) (Session, error)
	// OpenSession opens a session for a user the caller has authenticated
	// by other means (a webmail session cookie). ErrNoUser if there is none.
	OpenSession(ctx context.Context, user string) (Session, error)
	// Deliver appends msg, exactly as given, to the INBOX of the user rcpt
	// names (user@domain, or a bare user name); see ResolveUser. The message
	// is on stable storage when it returns nil.
	Deliver(ctx context.Context, rcpt string, msg []byte) error
	// UserExists reports whether rcpt names a user, as Deliver resolves it.
	UserExists(ctx context.Context, rcpt string) (bool, error)

	// AddUser creates a user with a password, an INBOX and the special-use
	// mailboxes Drafts, Sent, Trash and Junk.
	AddUser(ctx context.Context, user, password string) error
	// DeleteUser removes a user, the user's mailboxes and messages.
	DeleteUser(ctx context.Context, user string) error
	// SetPassword replaces a user's password.
	SetPassword(ctx context.Context, user, password string) error
	// Users lists the user names, sorted.
	Users(ctx context.Context) ([]string, error)

	// Close releases the backend's resources; sessions opened from it must
	// not be used afterwards.
	Close() error
}

// Session is one user's authenticated state.
type Session interface {
	// User is the session's canonical user name.
	User() string
	// Mailboxes lists the user's mailboxes, sorted by name.
	Mailboxes(ctx context.Context) ([]MailboxInfo, error)
	// CreateMailbox creates a mailbox and any missing superiors of its name
	// (RFC 3501 §6.3.3).
	CreateMailbox(ctx context.Context, name string) error
	// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
	// deleted (ErrInbox), nor a mailbox with inferiors (ErrHasChildren, as
	// Dovecot does).
	DeleteMailbox(ctx context.Context, name string) error
	// RenameMailbox renames a mailbox and its inferiors, keeping their
	// UIDVALIDITY and UIDs; renaming INBOX moves its messages to a new
	// mailbox and leaves INBOX empty (RFC 3501 §6.3.5).
	RenameMailbox(ctx context.Context, from, to string) error
	// Subscribe adds or removes a mailbox from the subscriptions (LSUB).
	Subscribe(ctx context.Context, name string, subscribed bool) error
	// Status reports a mailbox's counters (IMAP STATUS, POP3 STAT).
	Status(ctx context.Context, name string) (MailboxStatus, error)
	// Append adds a message with the given flags and internal date (the
	// zero time: now) to a mailbox (IMAP APPEND).
	Append(ctx context.Context, mailbox string, msg []byte, flags []string, date time.Time) (AppendResult, error)
	// Select opens a mailbox (IMAP SELECT/EXAMINE; POP3 uses INBOX).
	Select(ctx context.Context, name string) (Mailbox, error)
	// LockMaildrop takes the user's POP3 maildrop lock (RFC 1939 §4: one
	// session at a time), across every server sharing the store;
	// ErrLocked if another session holds it.
	LockMaildrop(ctx context.Context) (Lock, error)
	// Close ends the session.
	Close() error
}

// Mailbox is a selected mailbox. It refers to the mailbox itself, so it
// follows a rename; once the mailbox is deleted, calls give ErrNoMailbox.
type Mailbox interface {
	// Name is the mailbox's name when it was selected.
	Name() string
	// UIDValidity is the mailbox's UIDVALIDITY.
	UIDValidity() uint32
	// Status reports the mailbox's counters now.
	Status(ctx context.Context) (MailboxStatus, error)
	// List returns every message's metadata in UID order.
	List(ctx context.Context) ([]MessageInfo, error)
	// Changes returns the messages whose modification sequence is above
	// since, in UID order, and the UIDs expunged after since (RFC 7162
	// CHANGEDSINCE and VANISHED).
	Changes(ctx context.Context, since uint64) (changed []MessageInfo, vanished []UID, err error)
	// Fetch returns a message with its exact bytes; ErrNoMessage if there
	// is none with that UID.
	Fetch(ctx context.Context, uid UID) (*Message, error)
	// SetFlags changes the flags of the messages with the given UIDs
	// (absent UIDs are ignored; no UIDs, nothing changes). With unchangedSince > 0, a message whose
	// modification sequence is above it is left alone and reported in
	// failed (RFC 7162 §3.1.3, UNCHANGEDSINCE). changed lists the messages
	// whose flags changed, with their new flags and modification sequence.
	SetFlags(ctx context.Context, uids []UID, op FlagOp, flags []string, unchangedSince uint64) (changed []MessageInfo, failed []UID, err error)
	// Expunge removes the messages flagged \Deleted: all of them if uids is
	// nil, otherwise those of uids (UID EXPUNGE, RFC 4315). It returns the
	// UIDs removed, in order.
	Expunge(ctx context.Context, uids []UID) ([]UID, error)
	// Delete removes the messages with the given UIDs whatever their flags
	// (POP3's UPDATE state, RFC 1939 §6), returning the UIDs removed.
	Delete(ctx context.Context, uids []UID) ([]UID, error)
	// In SetFlags, Delete, Copy and Move, a nil or empty uids means no
	// message; only Expunge takes nil for "all".
	//
	// Copy copies messages to another mailbox (COPY; the bytes are shared,
	// not copied), with their flags; the result pairs source and new UIDs
	// (UIDPLUS COPYUID, RFC 4315).
	Copy(ctx context.Context, uids []UID, dest string) (CopyResult, error)
	// Move moves messages to another mailbox atomically (MOVE, RFC 6851).
	Move(ctx context.Context, uids []UID, dest string) (CopyResult, error)
}

// PartFetcher is an optional Mailbox extension: parts of messages read
// without loading their whole bytes (IMAP BODY[]<partial>, BODY[HEADER]
// and ENVELOPE of many messages, POP3 TOP).
type PartFetcher interface {
	// FetchRange returns up to length bytes of a message from offset
	// (RFC 3501 §6.4.5 <partial>); fewer, or none, past its end.
	FetchRange(ctx context.Context, uid UID, offset, length int64) ([]byte, error)
	// Headers returns the header sections (HeaderSize) of the messages of
	// uids that exist, in UID order, in one read.
	Headers(ctx context.Context, uids []UID) ([]Part, error)
}

// Part is a piece of a message's bytes.
type Part struct {
	UID   UID
	Bytes []byte
}

// HeaderSize returns the length of a message's header section, through
// the empty line that ends it (RFC 5322 §2.1): CRLF CRLF, or a bare LF LF
// in a message stored as received; the whole message if it has no body.
func HeaderSize(msg []byte) int64 {
	for i := 0; i < len(msg); i++ {
		if msg[i] != '\n' {
			continue
		}
		// An empty line starts at i+1: CRLF or a bare LF.
		if i+1 < len(msg) && msg[i+1] == '\n' {
			return int64(i + 2)
		}
		if i+2 < len(msg) && msg[i+1] == '\r' && msg[i+2] == '\n' {
			return int64(i + 3)
		}
	}
	// A message that begins with its empty line has an empty header.
	if len(msg) >= 2 && msg[0] == '\r' && msg[1] == '\n' {
		return 2
	}
	if len(msg) >= 1 && msg[0] == '\n' {
		return 1
	}
	return int64(len(msg))
}

// Lock is a held POP3 maildrop lock.
type Lock interface {
	// Release gives the lock up.
	Release(ctx context.Context) error
}

// Watcher is an optional Backend extension: a way to be told that a
// mailbox changed (new, flagged or expunged messages), for IMAP IDLE and
// for other sessions on the same mailbox. Backends shared by several
// servers (PostgreSQL) deliver other servers' changes too.
type Watcher interface {
	// Watch returns a channel that receives a value (coalesced: at most one
	// pending) after each change to the user's mailbox; it is closed when
	// ctx ends or the backend closes.
	Watch(ctx context.Context, user, mailbox string) (<-chan struct{}, error)
}

// MailboxInfo describes a mailbox in a listing.
type MailboxInfo struct {
	Name       string
	Subscribed bool
	// SpecialUse is the RFC 6154 attribute (\Sent, ...), or "".
	SpecialUse string
	// HasChildren reports inferiors (RFC 3348 \HasChildren/\HasNoChildren).
	HasChildren bool
}

// MailboxStatus holds a mailbox's counters (RFC 3501 §6.3.10, RFC 7162).
type MailboxStatus struct {
	Name          string
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64 // total bytes of the messages (POP3 STAT, RFC 8438 SIZE)
	UIDNext       UID
	UIDValidity   uint32
	HighestModSeq uint64
}

// MessageInfo is a message's metadata.
type MessageInfo struct {
	UID          UID
	Size         int64
	InternalDate time.Time
	// Flags are the system flags (canonical spelling) then the keywords.
	Flags  []string
	ModSeq uint64
}

// Has reports whether the message has a flag (system flags compare
// without regard to case).
func (m MessageInfo) Has(flag string) bool {
	for _, f := range m.Flags {
		if f == flag || (strings.HasPrefix(f, `\`) && strings.EqualFold(f, flag)) {
			return true
		}
	}
	return false
}

// Message is a message with its bytes.
type Message struct {
	MessageInfo
	Body []byte
}

// AppendResult is where an appended message went (UIDPLUS APPENDUID).
type AppendResult struct {
	UIDValidity uint32
	UID         UID
}

// CopyResult pairs copied messages' source UIDs with their new UIDs in the
// destination (UIDPLUS COPYUID), in source UID order.
type CopyResult struct {
	UIDValidity uint32
	Source      []UID
	Dest        []UID
}

// FlagOp says how SetFlags applies its flags (IMAP STORE FLAGS, +FLAGS,
// -FLAGS).
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// UIDL is the POP3 unique-id of a message (RFC 1939 §7): UIDVALIDITY and
// UID, which together never name another message of the mailbox. It is
// made of digits and a dot, within the 70 characters of 0x21-0x7E allowed.
func UIDL(uidValidity uint32, uid UID) string {
	return strconv.FormatUint(uint64(uidValidity), 10) + "." + strconv.FormatUint(uint64(uid), 10)
}

// MailboxName checks a mailbox name and returns its canonical form: INBOX
// in capitals, whatever case it is given in (also as the first level of a
// hierarchical name, as Dovecot does). A name is UTF-8 (IMAP's modified
// UTF-7 is the wire's business), at most MaxMailboxName bytes, without
// control characters, the LIST wildcards * and %, or empty, "." or ".."
// levels between its "/" delimiters.
func MailboxName(name string) (string, error) {
	if name == "" || len(name) > MaxMailboxName {
		return "", fmt.Errorf("%w: %d bytes", ErrBadName, len(name))
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '*' || r == '%' {
			return "", fmt.Errorf("%w: character %U in %q", ErrBadName, r, name)
		}
	}
	parts := strings.Split(name, Delimiter)
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", fmt.Errorf("%w: empty or dot level in %q", ErrBadName, name)
		}
	}
	if strings.EqualFold(parts[0], Inbox) {
		parts[0] = Inbox
	}
	return strings.Join(parts, Delimiter), nil
}

// UserName checks a user name and returns its canonical form (lower case:
// addresses are compared without regard to case, as Postfix does).
func UserName(name string) (string, error) {
	if name == "" || len(name) > MaxUserName || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q", ErrBadUser, name)
	}
	for _, r := range name {
		if r <= 0x20 || r == 0x7f || r == ':' || r == '/' || r == '"' || r == '\\' {
			return "", fmt.Errorf("%w: character %U in %q", ErrBadUser, r, name)
		}
	}
	if strings.Count(name, "@") > 1 || strings.HasPrefix(name, "@") || strings.HasSuffix(name, "@") {
		return "", fmt.Errorf("%w: %q", ErrBadUser, name)
	}
	return strings.ToLower(name), nil
}

// ResolveUser lists the user names rcpt may designate, most specific
// first: the whole address ("bob@hamburger.edu"), then its local part
// ("bob"). A user is stored under either form; the caller (the SMTP
// server) has already checked that the domain is one of ours.
func ResolveUser(rcpt string) ([]string, error) {
	rcpt = strings.TrimSuffix(strings.TrimPrefix(rcpt, "<"), ">")
	name, err := UserName(rcpt)
	if err != nil {
		return nil, err
	}
	if i := strings.LastIndexByte(name, '@'); i > 0 {
		return []string{name, name[:i]}, nil
	}
	return []string{name}, nil
}

// CheckPassword refuses empty, over-long and non-UTF-8 passwords.
func CheckPassword(pw string) error {
	if pw == "" || len(pw) > MaxPassword || !utf8.ValidString(pw) {
		return fmt.Errorf("%w: empty, longer than %d bytes or not UTF-8", ErrBadPassword, MaxPassword)
	}
	return nil
}

// Flag bits of the system flags, as the backends store them.
const (
	BitSeen = 1 << iota
	BitAnswered
	BitFlagged
	BitDeleted
	BitDraft
)

// ParseFlags splits flags into the system flags' bits and the keywords
// (sorted, without duplicates). System flags are matched without regard to
// case; \Recent and unknown backslash flags are refused, as are keywords
// that are not IMAP atoms (RFC 3501 §9, flag-keyword).
func ParseFlags(flags []string) (bits int, keywords []string, err error) {
	seen := map[string]bool{}
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			i := indexFold(SystemFlags, f)
			if i < 0 {
				return 0, nil, fmt.Errorf("%w: %q", ErrBadFlag, f)
			}
			bits |= 1 << i
			continue
		}
		if f == "" || len(f) > MaxKeyword {
			return 0, nil, fmt.Errorf("%w: keyword of %d bytes", ErrBadFlag, len(f))
		}
		for i := 0; i < len(f); i++ {
			c := f[i]
			if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
				return 0, nil, fmt.Errorf("%w: %q is not an atom", ErrBadFlag, f)
			}
		}
		if !seen[f] {
			seen[f] = true
			keywords = append(keywords, f)
		}
	}
	if len(keywords) > MaxKeywords {
		return 0, nil, fmt.Errorf("%w: %d keywords, at most %d", ErrBadFlag, len(keywords), MaxKeywords)
	}
	sort.Strings(keywords)
	return bits, keywords, nil
}

// FormatFlags is the inverse of ParseFlags.
func FormatFlags(bits int, keywords []string) []string {
	out := make([]string, 0, 5+len(keywords))
	for i, f := range SystemFlags {
		if bits&(1<<i) != 0 {
			out = append(out, f)
		}
	}
	return append(out, keywords...)
}

func indexFold(list []string, s string) int {
	for i, x := range list {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

// Opener opens a store from a DSN; backends register one with Register.
type Opener func(ctx context.Context, dsn string, opt Options) (Backend, error)

var (
	regMu    sync.Mutex
	registry = map[string]Opener{}
)

// Register makes a backend available to Open for DSNs that begin with
// prefix (e.g. "sqlite:", "postgres://").
func Register(prefix string, open Opener) {
	regMu.Lock()
	defer regMu.Unlock()
	registry[prefix] = open
}

// Open opens the store a DSN names: "sqlite:PATH" (mail/store/sqlite) or
// "postgres://user@host:port/db?..." / "postgresql://..."
// (mail/store/postgres); the backend's package must be imported.
func Open(ctx context.Context, dsn string, opt Options) (Backend, error) {
	regMu.Lock()
	var open Opener
	best := 0
	for p, o := range registry {
		if strings.HasPrefix(dsn, p) && len(p) > best {
			open, best = o, len(p)
		}
	}
	regMu.Unlock()
	if open == nil {
		kind, _, _ := strings.Cut(dsn, ":")
		return nil, fmt.Errorf("%w %q: want sqlite:PATH or postgres://HOST/DB", ErrUnknownBackend, kind)
	}
	return open(ctx, dsn, opt)
}

// ReadMailbox returns every message of a user's mailbox, oldest first: a
// convenience for checks and tests that look at what was delivered.
func ReadMailbox(ctx context.Context, b Backend, user, mailbox string) ([]*Message, error) {
	sess, err := b.OpenSession(ctx, user)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	mb, err := sess.Select(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	list, err := mb.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, 0, len(list))
	for _, mi := range list {
		m, err := mb.Fetch(ctx, mi.UID)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
