package trace

import (
	"bufio"
	"io"
	"time"
)

// Format says what a transcript line shows besides the speaker and summary.
type Format struct {
	Time bool // a wall-clock time stamp, to the millisecond
	Host bool // the host that recorded the event
}

// AppendLine appends e to b as one transcript line in the course's style:
//
//	12:00:01.250 alice uppercase/tcp 127.0.0.1:40312 > 127.0.0.11:12000  C: hello
//
// The addresses are always client > server, so both ends of one
// conversation print the same pair. A note prints "*:" as its speaker.
func (f Format) AppendLine(b []byte, e Event) []byte {
	if f.Time {
		b = e.Time.AppendFormat(b, "15:04:05.000")
		b = append(b, ' ')
	}
	if f.Host && e.Host != "" {
		b = append(b, e.Host...)
		b = append(b, ' ')
	}
	b = append(b, e.Proto...)
	if c, s := e.ClientAddr(), e.ServerAddr(); c != "" || s != "" {
		b = append(b, ' ')
		b = append(b, c...)
		b = append(b, " > "...)
		b = append(b, s...)
	}
	b = append(b, "  "...)
	b = append(b, e.Speaker()...)
	b = append(b, ": "...)
	b = append(b, e.Summary...)
	return append(b, '\n')
}

// Transcript prints a Tracer's events to a writer as they happen, from one
// goroutine of its own, so no lock is held while writing.
type Transcript struct {
	sub  *Subscription
	done chan struct{}
}

// NewTranscript subscribes to t (losslessly: a transcript shows every
// message) and prints each event to w in format f until Stop.
func NewTranscript(t *Tracer, w io.Writer, f Format) *Transcript {
	p := &Transcript{sub: t.Subscribe(1024, true), done: make(chan struct{})}
	go p.run(w, f)
	return p
}

func (p *Transcript) run(w io.Writer, f Format) {
	defer close(p.done)
	bw := bufio.NewWriter(w)
	var line []byte
	write := func(e Event) {
		line = f.AppendLine(line[:0], e)
		bw.Write(line) //nolint:errcheck // a transcript that cannot be written is not worth failing a protocol for
	}
	// Flush after a short quiet spell rather than after every line, so a
	// burst of messages costs one write but a human still sees them at once.
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	for {
		select {
		case e := <-p.sub.C():
			write(e)
			flush.Reset(20 * time.Millisecond)
		case <-flush.C:
			bw.Flush() //nolint:errcheck
		case <-p.sub.Done():
			for {
				select {
				case e := <-p.sub.C():
					write(e)
				default:
					bw.Flush() //nolint:errcheck
					return
				}
			}
		}
	}
}

// Stop prints what is still queued, flushes, and returns once the printer
// has finished.
func (p *Transcript) Stop() {
	p.sub.Close()
	<-p.done
}
