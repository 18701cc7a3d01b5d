package message

import (
	"bytes"
	"fmt"
	"time"
)

// HasField reports whether msg's header section has a field called name
// (case-insensitive, RFC 5322 §1.2.2).
func HasField(msg []byte, name string) bool { return countField(msg, name, 1) > 0 }

// CountReceived returns the number of Received: trace fields in msg's
// header section (RFC 5321 §4.4). A server counts them to find a mail loop:
// §6.3 says a relay should reject a message with too many, and Postfix
// bounces at 50 (hopcount_limit).
func CountReceived(msg []byte) int { return countField(msg, "Received", -1) }

// countField counts the fields called name in msg's header section, up to
// stop when stop > 0.
func countField(msg []byte, name string, stop int) int {
	header, _ := SplitHeader(msg)
	n := 0
	for len(header) > 0 {
		var line []byte
		line, header = cutLine(header)
		if len(line) <= len(name) || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		if bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte(name)) {
			n++
			if stop > 0 && n >= stop {
				return n
			}
		}
	}
	return n
}

// EnsureSubmissionHeaders returns msg with a Message-ID (at domain) and a
// Date (now) added where it has none, as a submission server does (RFC 6409
// §8.2 and §8.3; Postfix's cleanup does the same). The added fields are
// prepended; the message's own bytes follow unchanged. A msg that has both
// is returned as it is. domain must be a dot-atom such as "crepes.test".
func EnsureSubmissionHeaders(msg []byte, domain string, now time.Time) ([]byte, error) {
	if !isDotAtom(domain) {
		return nil, fmt.Errorf("message: %q is not a domain for a Message-ID", domain)
	}
	var add []byte
	if !HasField(msg, "Message-ID") {
		add = append(add, FoldField("Message-ID", NewMessageID(domain, now))...)
	}
	if !HasField(msg, "Date") {
		add = append(add, FoldField("Date", FormatDate(now))...)
	}
	if len(add) == 0 {
		return msg, nil
	}
	out := make([]byte, 0, len(add)+len(msg))
	out = append(out, add...)
	if first, _ := cutLine(msg); len(msg) > 0 && msg[0] != '\r' && msg[0] != '\n' && !validFieldLine(first) {
		// A message with no header at all: the fields need the blank line
		// that separates them from the body (RFC 5322 §2.1).
		out = append(out, "\r\n"...)
	}
	return append(out, msg...), nil
}
