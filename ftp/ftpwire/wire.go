// Package ftpwire is FTP's control-connection codec, shared by the server
// and the client: commands and replies (RFC 959 §4 and §5), the Telnet
// sequences a command line may carry (RFC 854: IP and the Synch's DM, sent
// before ABOR), the address arguments of PORT and PASV (RFC 959 §4.1.2),
// EPRT and EPSV (RFC 2428), the machine listings of MLST and MLSD
// (RFC 3659 §7), the ls -l listing that LIST sends in practice, and the
// NVT-ASCII line-end conversion of TYPE A (RFC 959 §3.1.1.1). It does no
// network I/O.
package ftpwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Errors the parsers return (wrapped, with the offending input).
var (
	ErrSyntax   = errors.New("ftpwire: syntax error")
	ErrTooLong  = errors.New("ftpwire: reply too long")
	ErrNotEntry = errors.New("ftpwire: not a listing entry")
)

// MaxVerb is the longest command verb accepted; RFC 959's are 3 or 4
// letters, extensions (RFC 2228, 2389, 2428, 3659) as well.
const MaxVerb = 8

// Telnet command bytes (RFC 854) that FTP clients send on the control
// connection.
const (
	IAC  = 0xff // interpret as command
	DONT = 0xfe
	DO   = 0xfd
	WONT = 0xfc
	WILL = 0xfb
	IP   = 0xf4 // interrupt process, sent before ABOR
	DM   = 0xf2 // data mark, the urgent byte of the Synch
)

// Command is one command line: a verb, upper-cased, and its argument
// (everything after the one space that follows the verb, untouched).
type Command struct {
	Verb, Arg string
}

// String returns the command as it would be sent, with the password of
// PASS (and the account of ACCT) replaced by ****, for traces and logs.
func (c Command) String() string {
	switch {
	case c.Verb == "PASS" || c.Verb == "ACCT":
		return c.Verb + " ****"
	case c.Arg == "":
		return c.Verb
	}
	return c.Verb + " " + c.Arg
}

// StripTelnet removes Telnet command sequences from a command line
// (RFC 959 §4.1.3, RFC 854): IAC IAC becomes one 0xff data byte,
// IAC WILL/WONT/DO/DONT and their option byte
// are dropped, as is any other IAC and the command byte after it (IP, DM,
// ...). A DM byte left alone at the start of the line (what is left of a
// Synch whose IAC came earlier) is dropped too. It returns line itself
// when there is nothing to remove.
func StripTelnet(line []byte) []byte {
	i := 0
	for i < len(line) && line[i] != IAC {
		i++
	}
	if i == len(line) {
		if len(line) > 0 && line[0] == DM {
			return line[1:]
		}
		return line
	}
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); i++ {
		b := line[i]
		if b != IAC {
			if b == DM && len(out) == 0 {
				continue
			}
			out = append(out, b)
			continue
		}
		if i+1 >= len(line) {
			break // a lone IAC at the end: dropped
		}
		switch n := line[i+1]; {
		case n == IAC:
			out = append(out, IAC)
			i++
		case n >= WILL && n <= DONT:
			i += 2 // option negotiation: command and option byte
		case n >= 0xf0:
			i++ // a two-byte command (IP, DM, AO, AYT, ...)
		default:
			// IAC followed by data: the command byte was taken out of
			// band (urgent data without SO_OOBINLINE); keep the data.
		}
	}
	return out
}

// ParseCommand parses one command line, without its CRLF (a trailing CR
// is dropped), after removing Telnet sequences. The verb is letters only,
// at most MaxVerb of them, and is separated from the argument by one
// space (RFC 959 §5.3.2); trailing spaces of the argument are kept
// (a file name may end in one).
func ParseCommand(line []byte) (Command, error) {
	line = StripTelnet(line)
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	verbEnd := len(line)
	for i, b := range line {
		if b == ' ' {
			verbEnd = i
			break
		}
	}
	verb := line[:verbEnd]
	if len(verb) == 0 || len(verb) > MaxVerb {
		return Command{}, fmt.Errorf("%w: command verb %q", ErrSyntax, trim(verb))
	}
	v := make([]byte, len(verb))
	for i, b := range verb {
		switch {
		case 'a' <= b && b <= 'z':
			b -= 'a' - 'A'
		case 'A' <= b && b <= 'Z':
		default:
			return Command{}, fmt.Errorf("%w: command verb %q", ErrSyntax, trim(verb))
		}
		v[i] = b
	}
	c := Command{Verb: string(v)}
	if verbEnd < len(line) {
		c.Arg = string(line[verbEnd+1:])
	}
	return c, nil
}

func trim(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// Reply is a numbered reply (RFC 959 §4.2): a three-digit code and one
// line of text, or several for a multi-line reply. Lines hold the text
// without the code of the first and last lines; the middle lines of a
// multi-line reply are kept as they were sent.
type Reply struct {
	Code  int
	Lines []string
}

// Text returns the reply's lines joined with newlines.
func (r Reply) Text() string { return strings.Join(r.Lines, "\n") }

// String returns the reply on one line, for traces: the code and the
// lines joined with " / ".
func (r Reply) String() string {
	return strconv.Itoa(r.Code) + " " + strings.Join(r.Lines, " / ")
}

// Append appends the reply's wire form to b (RFC 959 §4.2): "123 text"
// and CRLF, or "123-first", the middle lines, and "123 last". A CR or LF
// inside a line is sent as a space, so text can never end the reply
// early or forge another; a middle line that begins like a last line
// ("123 ") gets a leading space (RFC 959 §4.2 asks for such padding).
func (r Reply) Append(b []byte) []byte {
	code := r.Code % 1000
	if code < 0 {
		code = -code
	}
	var c [3]byte
	c[0], c[1], c[2] = byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)
	lines := r.Lines
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		last := i == len(lines)-1
		switch {
		case i == 0 && !last:
			b = append(b, c[:]...)
			b = append(b, '-')
		case last:
			b = append(b, c[:]...)
			b = append(b, ' ')
		default:
			if len(l) >= 4 && l[:3] == string(c[:]) && l[3] == ' ' {
				b = append(b, ' ')
			}
		}
		for j := 0; j < len(l); j++ {
			ch := l[j]
			if ch == '\r' || ch == '\n' {
				ch = ' '
			}
			b = append(b, ch)
		}
		b = append(b, '\r', '\n')
	}
	return b
}

// ReadReply reads one reply, single- or multi-line, of at most maxBytes
// bytes (lines and their line ends; <= 0 means 64 KiB). Lines may end
// in CRLF or a bare LF. A multi-line reply ends at the first line that
// starts with its code and a space (RFC 959 §4.2).
func ReadReply(r *bufio.Reader, maxBytes int) (Reply, error) {
	if maxBytes <= 0 {
		maxBytes = 64 << 10
	}
	budget := maxBytes
	first, err := readLine(r, &budget)
	if err != nil {
		return Reply{}, err
	}
	code, sep, ok := replyCode(first)
	if !ok {
		return Reply{}, fmt.Errorf("%w: reply %q", ErrSyntax, trimS(first))
	}
	text := ""
	if len(first) > 4 {
		text = first[4:]
	}
	rep := Reply{Code: code, Lines: []string{text}}
	if sep != '-' {
		return rep, nil
	}
	for {
		l, err := readLine(r, &budget)
		if err != nil {
			return Reply{}, err
		}
		if c, s, ok := replyCode(l); ok && c == code && s == ' ' {
			t := ""
			if len(l) > 4 {
				t = l[4:]
			}
			rep.Lines = append(rep.Lines, t)
			return rep, nil
		}
		rep.Lines = append(rep.Lines, l)
	}
}

// replyCode reads "ddd" followed by a space, a hyphen or the line's end.
func replyCode(l string) (code int, sep byte, ok bool) {
	if len(l) < 3 {
		return 0, 0, false
	}
	for i := range 3 {
		if l[i] < '0' || l[i] > '9' {
			return 0, 0, false
		}
	}
	if l[0] < '1' || l[0] > '5' {
		return 0, 0, false
	}
	sep = ' '
	if len(l) > 3 {
		sep = l[3]
		if sep != ' ' && sep != '-' {
			return 0, 0, false
		}
	}
	return int(l[0]-'0')*100 + int(l[1]-'0')*10 + int(l[2]-'0'), sep, true
}

// readLine reads a line, charging its bytes to budget, and returns it
// without the line end.
func readLine(r *bufio.Reader, budget *int) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", ErrTooLong
		}
		buf = append(buf, frag...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(buf) > 0 && errors.Is(err, io.EOF) {
			return "", fmt.Errorf("ftpwire: reply cut short: %w", io.ErrUnexpectedEOF)
		}
		return "", fmt.Errorf("ftpwire: reading reply: %w", err)
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

func trimS(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
