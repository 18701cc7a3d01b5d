package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

func marshalState(id string, i int, r Recipient) ([]byte, error) {
	return json.Marshal(stateRecord{ID: id, Rcpt: i, R: r})
}

// failure is a recipient that will not get the message.
type failure struct {
	rcpt    string
	err     error
	expired bool
}

// maxReturned bounds the original attached in full to a bounce; a larger
// one is returned as its header only (text/rfc822-headers).
const maxReturned = 1 << 20

// bounce queues a delivery status notification (RFC 3464) about failed
// to j's sender. It is sent from the null reverse-path (RFC 5321 §4.5.5),
// so a bounce that bounces goes nowhere: no loops.
func (a *Agent) bounce(ctx context.Context, j *job, msg []byte, failed []failure, now time.Time) error {
	b := BuildDSN(a.cfg.Hostname, j.id, j.from, j.arrived, msg, failed, now)
	return a.q.Enqueue(ctx, a.q.NewID(), "", []string{j.from}, b)
}

// statusOf gives the RFC 3463 status code and the diagnostic of err.
func statusOf(f failure) (status, diag string) {
	var se *smtp.SMTPError
	if errors.As(f.err, &se) {
		ec := se.EnhancedCode
		status = fmt.Sprintf("%d.0.0", se.Code/100)
		if ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode && ec[0] > 0 {
			status = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
		}
		diag = fmt.Sprintf("smtp; %d %s %s", se.Code, status, oneLine(se.Message))
	} else {
		status = "5.0.0"
		diag = "x-appnet; " + oneLine(f.err.Error())
	}
	if f.expired {
		status = "4.4.7" // RFC 3463: delivery time expired
	}
	return status, diag
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}

// BuildDSN returns a bounce message: multipart/report with
// report-type=delivery-status (RFC 3462/6522, RFC 3464): a human-readable
// part, the message/delivery-status part with a per-recipient block, and
// the original message (message/rfc822), or its header alone when it is
// larger than 1 MiB (text/rfc822-headers).
func BuildDSN(host, queueID, sender string, arrived time.Time, orig []byte, failed []failure, now time.Time) []byte {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var rb [8]byte
	rand.Read(rb[:])

	var human strings.Builder
	fmt.Fprintf(&human, "This is the mail system at host %s.\r\n\r\n", host)
	human.WriteString("I'm sorry to have to inform you that your message could not\r\n")
	human.WriteString("be delivered to one or more recipients. It's attached below.\r\n\r\n")
	for _, f := range failed {
		fmt.Fprintf(&human, "<%s>: %s\r\n", f.rcpt, oneLine(f.err.Error()))
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Description", "Notification")
	w, _ := mw.CreatePart(h)
	w.Write([]byte(human.String()))

	// RFC 3464 §2.2: per-message fields, then §2.3: one block per
	// recipient, blocks separated by blank lines.
	var st strings.Builder
	fmt.Fprintf(&st, "Reporting-MTA: dns; %s\r\n", host)
	fmt.Fprintf(&st, "X-Appnet-Queue-ID: %s\r\n", queueID)
	if sender != "" {
		fmt.Fprintf(&st, "X-Original-Sender: rfc822; %s\r\n", sender)
	}
	fmt.Fprintf(&st, "Arrival-Date: %s\r\n", arrived.Format(time.RFC1123Z))
	for _, f := range failed {
		status, diag := statusOf(f)
		fmt.Fprintf(&st, "\r\nFinal-Recipient: rfc822; %s\r\n", f.rcpt)
		st.WriteString("Action: failed\r\n")
		fmt.Fprintf(&st, "Status: %s\r\n", status)
		fmt.Fprintf(&st, "Diagnostic-Code: %s\r\n", diag)
		fmt.Fprintf(&st, "Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "message/delivery-status")
	h.Set("Content-Description", "Delivery report")
	w, _ = mw.CreatePart(h)
	w.Write([]byte(st.String()))

	h = textproto.MIMEHeader{}
	if len(orig) <= maxReturned {
		h.Set("Content-Type", "message/rfc822")
		h.Set("Content-Description", "Undelivered Message")
		w, _ = mw.CreatePart(h)
		w.Write(orig)
	} else {
		h.Set("Content-Type", "text/rfc822-headers")
		h.Set("Content-Description", "Undelivered Message Headers")
		w, _ = mw.CreatePart(h)
		w.Write(headerOf(orig))
	}
	mw.Close()

	var out bytes.Buffer
	fmt.Fprintf(&out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	fmt.Fprintf(&out, "To: <%s>\r\n", sender)
	out.WriteString("Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&out, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&out, "Message-ID: <%s.%s@%s>\r\n", queueID, hex.EncodeToString(rb[:]), host)
	out.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	out.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", mw.Boundary())
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes()
}

// headerOf returns msg's header section, through the blank line.
func headerOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}
