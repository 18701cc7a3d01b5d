package ftpwire

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// Entry is one file in a listing, as MLSx facts (RFC 3659 §7) or an ls -l
// line describe it.
type Entry struct {
	Name    string
	Size    int64
	ModTime time.Time
	IsDir   bool
	Mode    fs.FileMode // permission bits and type; 0 when unknown
	// Type is the MLSx type fact (RFC 3659 §7.5.1): "file", "dir",
	// "cdir" (the listed directory itself), "pdir" (its parent) or
	// "OS.unix=symlink".
	Type string
	// Perm is the MLSx perm fact (RFC 3659 §7.5.5): the letters of what
	// the user may do, "adfrw" for a writable file, "flcdmpe" for a
	// writable directory, "r" or "el" read-only.
	Perm string
	// Target is a symbolic link's target, from an ls -l "name -> target".
	Target string
}

// mlsxTime is the time-val of RFC 3659 §2.3, in UTC.
const mlsxTime = "20060102150405"

// FormatMLSx returns the entry as one MLSx line without line end
// (RFC 3659 §7.2): "type=file;size=1024;modify=20260102150405;perm=r;
// name". Size is given for files only; UNIX.mode when Mode has
// permission bits. MLST's reply puts a space before it; MLSD does not.
// A CR or LF in the name is sent as a space (the format has no escape).
func FormatMLSx(e Entry) string {
	var b strings.Builder
	typ := e.Type
	if typ == "" {
		typ = "file"
		if e.IsDir {
			typ = "dir"
		}
	}
	b.WriteString("type=")
	b.WriteString(typ)
	b.WriteByte(';')
	if !e.IsDir && typ == "file" {
		b.WriteString("size=")
		b.WriteString(strconv.FormatInt(e.Size, 10))
		b.WriteByte(';')
	}
	if !e.ModTime.IsZero() {
		b.WriteString("modify=")
		b.WriteString(e.ModTime.UTC().Format(mlsxTime))
		b.WriteByte(';')
	}
	if e.Perm != "" {
		b.WriteString("perm=")
		b.WriteString(e.Perm)
		b.WriteByte(';')
	}
	if e.Mode.Perm() != 0 || e.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		b.WriteString("UNIX.mode=")
		b.WriteString(fmt.Sprintf("%04o", unixPerm(e.Mode)))
		b.WriteByte(';')
	}
	b.WriteByte(' ')
	b.WriteString(oneLine(e.Name))
	return b.String()
}

// unixPerm returns the 12 permission bits as chmod takes them.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// ParseMLSx parses one MLSx line (RFC 3659 §7.2): facts, each
// "name=value;", a space, and the pathname (which may hold spaces and
// semicolons). One leading space (as in MLST's reply) and a trailing CR
// are ignored. Fact names are case-insensitive; unknown facts are
// skipped. A bad size, modify or UNIX.mode value is an error.
func ParseMLSx(line string) (Entry, error) {
	line = strings.TrimSuffix(line, "\r")
	line = strings.TrimPrefix(line, " ")
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		return Entry{}, fmt.Errorf("%w: MLSx line without a name %q", ErrSyntax, trimS(line))
	}
	facts, name := line[:sp], line[sp+1:]
	if name == "" {
		return Entry{}, fmt.Errorf("%w: MLSx line without a name %q", ErrSyntax, trimS(line))
	}
	e := Entry{Name: name}
	for facts != "" {
		semi := strings.IndexByte(facts, ';')
		if semi < 0 {
			return Entry{}, fmt.Errorf("%w: MLSx fact not ended by ';' %q", ErrSyntax, trimS(facts))
		}
		f := facts[:semi]
		facts = facts[semi+1:]
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return Entry{}, fmt.Errorf("%w: MLSx fact %q", ErrSyntax, trimS(f))
		}
		switch strings.ToLower(k) {
		case "type":
			lv := strings.ToLower(v)
			switch lv {
			case "file", "dir", "cdir", "pdir":
				e.Type = lv
			default:
				e.Type = v
				if strings.HasPrefix(lv, "os.unix=slink") || strings.HasPrefix(lv, "os.unix=symlink") {
					e.Type = "OS.unix=symlink"
					if _, t, ok := strings.Cut(v, ":"); ok {
						e.Target = t
					}
				}
			}
			e.IsDir = lv == "dir" || lv == "cdir" || lv == "pdir"
		case "size", "sizd":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return Entry{}, fmt.Errorf("%w: MLSx size %q", ErrSyntax, trimS(v))
			}
			e.Size = n
		case "modify":
			t, err := ParseTimeVal(v)
			if err != nil {
				return Entry{}, err
			}
			e.ModTime = t
		case "perm":
			e.Perm = v
		case "unix.mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return Entry{}, fmt.Errorf("%w: MLSx UNIX.mode %q", ErrSyntax, trimS(v))
			}
			e.Mode |= fs.FileMode(n & 0o777)
			if n&0o4000 != 0 {
				e.Mode |= fs.ModeSetuid
			}
			if n&0o2000 != 0 {
				e.Mode |= fs.ModeSetgid
			}
			if n&0o1000 != 0 {
				e.Mode |= fs.ModeSticky
			}
		}
	}
	if e.IsDir {
		e.Mode |= fs.ModeDir
	} else if e.Type == "OS.unix=symlink" {
		e.Mode |= fs.ModeSymlink
	}
	return e, nil
}

// FormatTimeVal returns t as RFC 3659's time-val (§2.3), in UTC: the
// MDTM reply and the modify fact.
func FormatTimeVal(t time.Time) string { return t.UTC().Format(mlsxTime) }

// ParseTimeVal parses a time-val (RFC 3659 §2.3): YYYYMMDDHHMMSS in UTC,
// optionally followed by a dot and fractions of a second.
func ParseTimeVal(s string) (time.Time, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if len(whole) != 14 || (hasFrac && (frac == "" || len(frac) > 9)) {
		return time.Time{}, fmt.Errorf("%w: time-val %q", ErrSyntax, trimS(s))
	}
	for i := 0; i < len(whole); i++ {
		if !isDigit(whole[i]) {
			return time.Time{}, fmt.Errorf("%w: time-val %q", ErrSyntax, trimS(s))
		}
	}
	t, err := time.ParseInLocation(mlsxTime, whole, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time-val %q", ErrSyntax, trimS(s))
	}
	if hasFrac {
		ns := 0
		for i := 0; i < 9; i++ {
			ns *= 10
			if i < len(frac) {
				if !isDigit(frac[i]) {
					return time.Time{}, fmt.Errorf("%w: time-val %q", ErrSyntax, trimS(s))
				}
				ns += int(frac[i] - '0')
			}
		}
		t = t.Add(time.Duration(ns))
	}
	return t, nil
}

// ModeString returns the ten-character mode of ls -l: the type letter
// (d, l, p, s, c, b or -) and rwx bits with s/S and t/T.
func ModeString(m fs.FileMode) string {
	var b [10]byte
	switch {
	case m&fs.ModeDir != 0:
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	default:
		b[0] = '-'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<uint(8-i)) != 0 {
			b[1+i] = rwx[i]
		} else {
			b[1+i] = '-'
		}
	}
	special := func(i int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = lower
		} else {
			b[i] = upper
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b[:])
}

// halfYear is how old (or how far in the future) a time may be and still
// be shown with hours and minutes instead of the year, as ls does.
const halfYear = 182 * 24 * time.Hour

// FormatList returns the entry as an ls -l line without line end, in the
// form vsftpd writes (owner and group "ftp", as with its hide_ids):
//
//	-rw-r--r--    1 ftp      ftp          4096 Mar 01 12:34 name
//	drwxr-xr-x    2 ftp      ftp          4096 Mar 01  2024 dir
//
// A time within half a year of now shows hours and minutes, an older or
// future one the year; times are in UTC. A symbolic link with a Target
// shows "name -> target". A CR or LF in a name is sent as a space.
func FormatList(e Entry, now time.Time) string {
	m := e.Mode
	if e.IsDir {
		m |= fs.ModeDir
	}
	if e.Type == "OS.unix=symlink" {
		m |= fs.ModeSymlink
	}
	if m.Perm() == 0 && m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == 0 {
		if m&fs.ModeDir != 0 {
			m |= 0o755
		} else {
			m |= 0o644
		}
	}
	mt := e.ModTime.UTC()
	date := mt.Format("Jan 02 15:04")
	if d := now.Sub(mt); d > halfYear || d < -halfYear {
		date = mt.Format("Jan 02  2006")
	}
	name := oneLine(e.Name)
	if m&fs.ModeSymlink != 0 && e.Target != "" {
		name += " -> " + oneLine(e.Target)
	}
	return fmt.Sprintf("%s %4d %-8s %-8s %8d %s %s", ModeString(m), 1, "ftp", "ftp", e.Size, date, name)
}

var months = map[string]time.Month{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

// ParseList parses one line of a Unix ls -l style LIST reply (vsftpd,
// Pure-FTPd, ProFTPD, ours): mode, link count, owner, group (may be
// missing), size, date ("Mon DD HH:MM" or "Mon DD YYYY") and name, which
// keeps its inner spaces; "name -> target" for a symbolic link. A year
// left out is the one that puts the date at most a day after now
// (ls's rule). A "total N" line, a blank line and other lines that are no
// entry return ErrNotEntry.
func ParseList(line string) (Entry, error) { return ParseListAt(line, time.Now()) }

// ParseListAt is ParseList with now given.
func ParseListAt(line string, now time.Time) (Entry, error) {
	line = strings.TrimRight(line, "\r\n")
	notEntry := func() (Entry, error) {
		return Entry{}, fmt.Errorf("%w: %q", ErrNotEntry, trimS(line))
	}
	if len(line) < 10 {
		return notEntry()
	}
	e := Entry{}
	switch line[0] {
	case 'd':
		e.IsDir, e.Type, e.Mode = true, "dir", fs.ModeDir
	case 'l':
		e.Type, e.Mode = "OS.unix=symlink", fs.ModeSymlink
	case '-', 'f':
		e.Type = "file"
	case 'p', 's', 'c', 'b':
		e.Type = "OS.unix=" + map[byte]string{'p': "fifo", 's': "socket", 'c': "chr", 'b': "blk"}[line[0]]
	default:
		return notEntry()
	}
	perm, ok := parsePermBits(line[1:10])
	if !ok {
		return notEntry()
	}
	e.Mode |= perm
	// Split into fields, remembering where each one starts.
	type field struct {
		s     string
		start int
	}
	var fields []field
	for i := 0; i < len(line) && len(fields) < 12; {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		fields = append(fields, field{line[i:j], i})
		i = j
	}
	// Find the month: the field after a numeric size, followed by a day
	// and a time or year, with a name after them.
	for k := 3; k+3 < len(fields); k++ {
		mon, ok := months[strings.ToLower(fields[k].s)]
		if !ok || len(fields[k].s) != 3 {
			continue
		}
		size, err := strconv.ParseInt(fields[k-1].s, 10, 64)
		if err != nil || size < 0 {
			continue
		}
		day, err := strconv.Atoi(fields[k+1].s)
		if err != nil || day < 1 || day > 31 {
			continue
		}
		tf := fields[k+2]
		var t time.Time
		if h, m, ok := strings.Cut(tf.s, ":"); ok {
			hh, e1 := strconv.Atoi(h)
			mm, e2 := strconv.Atoi(m)
			if e1 != nil || e2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
				continue
			}
			now = now.UTC()
			t = time.Date(now.Year(), mon, day, hh, mm, 0, 0, time.UTC)
			if t.Sub(now) > 24*time.Hour {
				t = t.AddDate(-1, 0, 0)
			}
		} else {
			y, err := strconv.Atoi(tf.s)
			if err != nil || len(tf.s) != 4 {
				continue
			}
			t = time.Date(y, mon, day, 0, 0, 0, 0, time.UTC)
		}
		nameStart := tf.start + len(tf.s) + 1
		if nameStart >= len(line) {
			return notEntry()
		}
		e.Size, e.ModTime = size, t
		e.Name = line[nameStart:]
		if e.Mode&fs.ModeSymlink != 0 {
			if n, target, ok := strings.Cut(e.Name, " -> "); ok && n != "" {
				e.Name, e.Target = n, target
			}
		}
		return e, nil
	}
	return notEntry()
}

func parsePermBits(s string) (fs.FileMode, bool) {
	var m fs.FileMode
	for i := range 9 {
		c := s[i]
		bit := fs.FileMode(1) << uint(8-i)
		want := "rwxrwxrwx"[i]
		switch {
		case c == want:
			m |= bit
		case c == '-':
		case i == 2 && (c == 's' || c == 'S'), i == 5 && (c == 's' || c == 'S'):
			if c == 's' {
				m |= bit
			}
			if i == 2 {
				m |= fs.ModeSetuid
			} else {
				m |= fs.ModeSetgid
			}
		case i == 8 && (c == 't' || c == 'T'):
			if c == 't' {
				m |= bit
			}
			m |= fs.ModeSticky
		default:
			return 0, false
		}
	}
	return m, true
}
