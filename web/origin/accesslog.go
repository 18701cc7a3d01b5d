package origin

import (
	"io"
	"net/http"
	"sync"
	"time"

	"appnet/web/internal/httpx"
)

// Access-log buffering.
const (
	logFlushEvery = time.Second // a line waits at most this long
	logBufSize    = 32 << 10    // a fuller buffer is written at once
)

// accessLog keeps the access log off the request path: lines are appended
// to a buffer, which is written out when it is full, a second after the
// first line put in it (a timer, so no goroutine waits while the server
// is idle), and at Shutdown.
type accessLog struct {
	w io.Writer

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	timer   *time.Timer // armed while buf holds lines
	writeMu sync.Mutex  // orders the writes to w
	closed  bool
}

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{w: w, buf: make([]byte, 0, logBufSize), spare: make([]byte, 0, logBufSize)}
}

// log appends one Combined Log Format line.
func (l *accessLog) log(r *http.Request, user string, status int, bytes int64, t time.Time) {
	l.mu.Lock()
	l.buf = httpx.AppendCombined(l.buf, r, user, status, bytes, t)
	l.appended()
}

// logEntry appends e's line.
func (l *accessLog) logEntry(e *httpx.Entry) {
	l.mu.Lock()
	l.buf = httpx.AppendEntry(l.buf, e)
	l.appended()
}

// appended writes the buffer out, or arms the timer that will, after a
// line was appended; it unlocks l.mu.
func (l *accessLog) appended() {
	switch {
	case l.closed || len(l.buf) >= logBufSize:
		l.flushLocked()
		return
	case l.timer == nil:
		l.timer = time.AfterFunc(logFlushEvery, l.flush)
	}
	l.mu.Unlock()
}

func (l *accessLog) flush() {
	l.mu.Lock()
	l.flushLocked()
}

// flushLocked swaps the buffer, unlocks l.mu and writes what it held: the
// write happens outside the lock, so requests never wait for the disk, only
// for one another's appends.
func (l *accessLog) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	out := l.buf
	l.buf, l.spare = l.spare[:0], nil
	l.writeMu.Lock()
	l.mu.Unlock()
	if len(out) > 0 {
		l.w.Write(out) //nolint:errcheck // nowhere to report it
	}
	l.writeMu.Unlock()
	l.mu.Lock()
	if l.spare == nil && cap(out) <= 4*logBufSize {
		l.spare = out[:0]
	}
	l.mu.Unlock()
}

// close writes what is buffered; later lines are written at once.
func (l *accessLog) close() {
	l.mu.Lock()
	l.closed = true
	l.flushLocked()
}
