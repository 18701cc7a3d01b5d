package ftpwire

import (
	"bufio"
	"bytes"
	"io"
)

// ToCRLF returns a writer that converts local text to NVT-ASCII for a
// TYPE A transfer (RFC 959 §3.1.1.1): each LF not already preceded by a
// CR becomes CRLF, as vsftpd's ASCII mode does; other bytes pass
// unchanged. It buffers: Close flushes what is buffered (it does not
// close w).
func ToCRLF(w io.Writer) io.WriteCloser {
	return &toCRLF{w: bufio.NewWriterSize(w, 32<<10)}
}

type toCRLF struct {
	w      *bufio.Writer
	lastCR bool
}

func (t *toCRLF) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		if b == '\n' && !t.lastCR {
			if _, err := t.w.Write(p[start:i]); err != nil {
				return start, err
			}
			if err := t.w.WriteByte('\r'); err != nil {
				return i, err
			}
			start = i
		}
		t.lastCR = b == '\r'
	}
	if _, err := t.w.Write(p[start:]); err != nil {
		return start, err
	}
	return len(p), nil
}

func (t *toCRLF) Close() error { return t.w.Flush() }

// FromCRLF returns a reader that converts NVT-ASCII from a TYPE A
// transfer to local text (RFC 959 §3.1.1.1): CRLF becomes LF, CR NUL
// (NVT's bare carriage return) becomes CR, and any other byte, a lone CR
// included, passes unchanged.
func FromCRLF(r io.Reader) io.Reader {
	return &fromCRLF{r: r, buf: make([]byte, 32<<10)}
}

type fromCRLF struct {
	r         io.Reader
	buf       []byte
	r0, r1    int  // unconverted input: buf[r0:r1]
	pendingCR bool // a CR was read and the byte after it decides it
	err       error
}

func (f *fromCRLF) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		if f.r0 == f.r1 {
			if f.err != nil {
				if f.pendingCR {
					f.pendingCR = false
					p[n] = '\r'
					n++
					continue
				}
				break
			}
			if n > 0 {
				break
			}
			m, err := f.r.Read(f.buf)
			f.r0, f.r1, f.err = 0, m, err
			continue
		}
		b := f.buf[f.r0]
		switch {
		case f.pendingCR:
			f.pendingCR = false
			switch b {
			case '\n':
				p[n] = '\n'
				f.r0++
			case 0:
				p[n] = '\r'
				f.r0++
			default:
				p[n] = '\r' // b stays for the next round
			}
			n++
		case b == '\r':
			f.pendingCR = true
			f.r0++
		default:
			end := f.r1
			if i := bytes.IndexByte(f.buf[f.r0:f.r1], '\r'); i >= 0 {
				end = f.r0 + i
			}
			c := copy(p[n:], f.buf[f.r0:end])
			n += c
			f.r0 += c
		}
	}
	if n == 0 {
		return 0, f.err
	}
	return n, nil
}
