package ftpwire

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER alice", "PASS x", "\xff\xf4\xff\xf2ABOR", "\xff\xf4\xffABOR", "\xf2ABOR\r",
		"RETR a\xff\xffb", "EPRT |2|::1|21|", "", " ", "\xff", "\xff\xfb", "CWD  x "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseCommand(line)
		if err != nil {
			return
		}
		if c.Verb == "" || len(c.Verb) > MaxVerb {
			t.Fatalf("verb %q", c.Verb)
		}
		for i := 0; i < len(c.Verb); i++ {
			if c.Verb[i] < 'A' || c.Verb[i] > 'Z' {
				t.Fatalf("verb %q", c.Verb)
			}
		}
		if len(c.Verb)+len(c.Arg) > len(line) {
			t.Fatalf("command %+v longer than its line %q", c, line)
		}
		// The parsed command, sent again, parses the same (an argument
		// with 0xff is sent doubled, as Telnet wants).
		wire := c.Verb
		if c.Arg != "" || bytes.IndexByte(StripTelnet(line), ' ') >= 0 {
			wire += " " + strings.ReplaceAll(c.Arg, "\xff", "\xff\xff")
		}
		if strings.HasSuffix(c.Arg, "\r") {
			return // a CR before the CR the parser drops
		}
		again, err := ParseCommand([]byte(wire))
		if err != nil || again != c {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, c, wire, again, err)
		}
	})
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"220 ready\r\n", "211-a\r\n b\r\n211 end\r\n", "200\n", "211-x\r\n211-y\r\n", "999 x\r\n", "1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1024
		r, err := ReadReply(bufio.NewReaderSize(bytes.NewReader(in), 16), max)
		if err != nil {
			return
		}
		if r.Code < 100 || r.Code > 599 || len(r.Lines) == 0 {
			t.Fatalf("reply %+v", r)
		}
		n := 0
		for _, l := range r.Lines {
			n += len(l)
		}
		if n > max {
			t.Fatalf("reply of %d bytes past the %d limit", n, max)
		}
		// What Append writes reads back as the same reply.
		wire := r.Append(nil)
		back, err := ReadReply(bufio.NewReader(bytes.NewReader(wire)), 0)
		if err != nil {
			t.Fatalf("%q -> %+v -> %q: %v", in, r, wire, err)
		}
		if back.Code != r.Code || len(back.Lines) != len(r.Lines) {
			t.Fatalf("%q -> %+v -> %q -> %+v", in, r, wire, back)
		}
		for i := range r.Lines {
			if strings.TrimPrefix(back.Lines[i], " ") != strings.TrimPrefix(strings.NewReplacer("\r", " ", "\n", " ").Replace(r.Lines[i]), " ") {
				t.Fatalf("line %d: %q -> %q", i, r.Lines[i], back.Lines[i])
			}
		}
	})
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"-rw-r--r--    1 0        0            4096 Nov 01 12:34 hello.txt",
		"drwxr-xr-x    2 ftp      ftp          4096 Mar 01  2024 my  dir ",
		"lrwxrwxrwx    1 0 0 9 Dec 01 08:00 link -> target",
		"-rwsr-x--T   1 owner 7 Jan  5  2020  lead",
		"total 12",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseListAt(line, now)
		if err != nil {
			return
		}
		if e.Name == "" || e.Size < 0 {
			t.Fatalf("%q -> %+v", line, e)
		}
		if strings.ContainsAny(e.Name, "\r\n") || strings.ContainsAny(e.Target, "\r\n") {
			return // FormatList would send those as spaces
		}
		if e.Type == "OS.unix=symlink" && (e.Target == "" || strings.Contains(e.Name, " -> ")) {
			return // "a -> b -> c" or a link without target: ambiguous
		}
		if !strings.HasPrefix(e.Type, "OS.unix=") || e.Type == "OS.unix=symlink" {
			// Formatting and parsing again keeps the entry (times to the
			// minute or the day, as ls shows them).
			back, err := ParseListAt(FormatList(e, now), now)
			if err != nil || back.Name != e.Name || back.Size != e.Size || back.IsDir != e.IsDir || back.Type != e.Type || back.Target != e.Target {
				t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, e, FormatList(e, now), back, err)
			}
		}
	})
}

func FuzzParseMLSx(f *testing.F) {
	for _, s := range []string{
		" type=file;size=10;modify=20260102150405;perm=r;UNIX.mode=0644; a;b c.txt\r",
		"Type=DIR;Modify=20260102150405.250;Unique=801g4;  spaced",
		"type=OS.unix=slink:/etc/passwd; ln",
		"type=cdir;perm=el; /",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseMLSx(line)
		if err != nil {
			return
		}
		if e.Name == "" || e.Size < 0 {
			t.Fatalf("%q -> %+v", line, e)
		}
		if strings.ContainsAny(e.Name, "\r\n") || strings.ContainsAny(e.Perm, "; ") || strings.ContainsAny(e.Type, "; ") ||
			strings.HasPrefix(e.Name, " ") && strings.HasPrefix(line, " ") {
			return
		}
		if e.Type == "OS.unix=symlink" {
			return // formatted without its target
		}
		back, err := ParseMLSx(FormatMLSx(e))
		if err != nil || back.Name != e.Name || back.IsDir != e.IsDir || !back.ModTime.Equal(e.ModTime.Truncate(1e9)) && !e.ModTime.IsZero() ||
			back.Perm != e.Perm || back.Mode.Perm() != e.Mode.Perm() {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, e, FormatMLSx(e), back, err)
		}
		if !e.IsDir && e.Type == "file" && back.Size != e.Size {
			t.Fatalf("size %d -> %d", e.Size, back.Size)
		}
	})
}

func FuzzHostPort(f *testing.F) {
	for _, s := range []string{"127,0,0,1,156,72", "|1|132.235.1.2|6275|", "|2|::1|5282|",
		"Entering Passive Mode (127,0,0,1,156,72).", "Entering Extended Passive Mode (|||6446|)", "|3|x|1|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ap, err := ParseHostPort(s); err == nil {
			if !ap.Addr().Is4() {
				t.Fatalf("PORT %q -> %v", s, ap)
			}
			if back, err := ParseHostPort(FormatHostPort(ap)); err != nil || back != ap {
				t.Fatalf("PORT %q -> %v -> %v, %v", s, ap, back, err)
			}
		}
		if ap, err := ParseEPRT(s); err == nil {
			if ap.Port() == 0 || ap.Addr().Zone() != "" {
				t.Fatalf("EPRT %q -> %v", s, ap)
			}
			if back, err := ParseEPRT(FormatEPRT(ap)); err != nil || back.Addr().Unmap() != ap.Addr().Unmap() || back.Port() != ap.Port() {
				t.Fatalf("EPRT %q -> %v -> %v, %v", s, ap, back, err)
			}
		}
		if ap, err := ParsePASVReply(s); err == nil {
			if back, err := ParsePASVReply(FormatPASVReply(ap)); err != nil || back != ap {
				t.Fatalf("PASV %q -> %v -> %v, %v", s, ap, back, err)
			}
		}
		if p, err := ParseEPSVReply(s); err == nil {
			if p < 1 || p > 65535 {
				t.Fatalf("EPSV %q -> %d", s, p)
			}
			if back, err := ParseEPSVReply(FormatEPSVReply(p)); err != nil || back != p {
				t.Fatalf("EPSV %q -> %d -> %d, %v", s, p, back, err)
			}
		}
	})
}

func FuzzCRLF(f *testing.F) {
	for _, s := range []string{"a\nb\r\n", "\r\x00\r", "\r", "\n\r\n\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// FromCRLF never adds bytes; ToCRLF then FromCRLF gives back any
		// input without CR (the common Unix text file).
		out, err := io.ReadAll(FromCRLF(bytes.NewReader(in)))
		if err != nil || len(out) > len(in) {
			t.Fatalf("FromCRLF(%q) = %q, %v", in, out, err)
		}
		if bytes.IndexByte(in, '\r') >= 0 {
			return
		}
		var wire bytes.Buffer
		w := ToCRLF(&wire)
		w.Write(in)
		w.Close()
		back, _ := io.ReadAll(FromCRLF(&wire))
		if !bytes.Equal(back, in) {
			t.Fatalf("%q -> %q -> %q", in, wire.Bytes(), back)
		}
	})
}
