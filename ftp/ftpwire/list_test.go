package ftpwire

import (
	"errors"
	"io/fs"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)

func TestFormatList(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Name: "hello.txt", Size: 4096, ModTime: time.Date(2026, 11, 1, 12, 34, 0, 0, time.UTC), Mode: 0o644},
			"-rw-r--r--    1 ftp      ftp          4096 Nov 01 12:34 hello.txt"},
		{Entry{Name: "old dir", IsDir: true, Size: 4096, ModTime: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Mode: fs.ModeDir | 0o755},
			"drwxr-xr-x    1 ftp      ftp          4096 Mar 01  2024 old dir"},
		{Entry{Name: "future", Size: 1, ModTime: time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC)},
			"-rw-r--r--    1 ftp      ftp             1 Dec 01  2027 future"},
		{Entry{Name: "l", Type: "OS.unix=symlink", Target: "hello.txt", ModTime: now, Mode: 0o777},
			"lrwxrwxrwx    1 ftp      ftp             0 Dec 02 18:00 l -> hello.txt"},
		{Entry{Name: "bin", Size: 12345678901, ModTime: now, Mode: 0o755 | fs.ModeSetuid | fs.ModeSticky},
			"-rwsr-xr-t    1 ftp      ftp      12345678901 Dec 02 18:00 bin"},
		{Entry{Name: "two\nlines", ModTime: now, Mode: 0o600},
			"-rw-------    1 ftp      ftp             0 Dec 02 18:00 two lines"},
	}
	for _, tt := range tests {
		if got := FormatList(tt.e, now); got != tt.want {
			t.Errorf("FormatList(%+v) =\n%q, want\n%q", tt.e, got, tt.want)
		}
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		0o755 | fs.ModeDir:                        "drwxr-xr-x",
		0o644:                                     "-rw-r--r--",
		0o755 | fs.ModeSetuid:                     "-rwsr-xr-x",
		0o644 | fs.ModeSetuid:                     "-rwSr--r--",
		0o775 | fs.ModeSetgid | fs.ModeDir:        "drwxrwsr-x",
		0o777 | fs.ModeSticky | fs.ModeDir:        "drwxrwxrwt",
		0o666 | fs.ModeNamedPipe:                  "prw-rw-rw-",
		0o777 | fs.ModeSymlink:                    "lrwxrwxrwx",
		0o660 | fs.ModeDevice | fs.ModeCharDevice: "crw-rw----",
	} {
		if got := ModeString(m); got != want {
			t.Errorf("ModeString(%v) = %q, want %q", m, got, want)
		}
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
		err  bool
	}{
		// vsftpd
		{"-rw-r--r--    1 0        0            4096 Nov 01 12:34 hello.txt",
			Entry{Name: "hello.txt", Size: 4096, ModTime: time.Date(2026, 11, 1, 12, 34, 0, 0, time.UTC), Type: "file", Mode: 0o644}, false},
		{"drwxr-xr-x    2 ftp      ftp          4096 Mar 01  2024 my  dir ",
			Entry{Name: "my  dir ", Size: 4096, ModTime: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), IsDir: true, Type: "dir", Mode: fs.ModeDir | 0o755}, false},
		// A date later in the year than now is last year's.
		{"-rw-r--r--   1 user group 10 Dec 25 10:00 xmas",
			Entry{Name: "xmas", Size: 10, ModTime: time.Date(2025, 12, 25, 10, 0, 0, 0, time.UTC), Type: "file", Mode: 0o644}, false},
		// No group column (some servers), and the name's leading space kept.
		{"-rw-r--r--   1 owner 7 Jan  5  2020  lead",
			Entry{Name: " lead", Size: 7, ModTime: time.Date(2020, 1, 5, 0, 0, 0, 0, time.UTC), Type: "file", Mode: 0o644}, false},
		{"lrwxrwxrwx    1 0 0 9 Dec 01 08:00 link -> target dir",
			Entry{Name: "link", Target: "target dir", ModTime: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Type: "OS.unix=symlink", Mode: fs.ModeSymlink | 0o777, Size: 9}, false},
		{"-rwsr-x--T    1 0 0 1 Dec 01 08:00 s",
			Entry{Name: "s", Size: 1, ModTime: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Type: "file", Mode: 0o750 | fs.ModeSetuid | fs.ModeSticky}, false},
		{"total 12", Entry{}, true},
		{"", Entry{}, true},
		{"-rw-r--r--    1 0 0 4096 Nov 01 12:34", Entry{}, true},
		{"-rw-r--r--    1 0 0 x Nov 01 12:34 a", Entry{}, true},
		{"-rw-r--r--    1 0 0 1 Foo 01 12:34 a", Entry{}, true},
		{"-rw-r--r--    1 0 0 1 Nov 41 12:34 a", Entry{}, true},
		{"-rw-r--r--    1 0 0 1 Nov 01 25:34 a", Entry{}, true},
		{"xrw-r--r--    1 0 0 1 Nov 01 12:34 a", Entry{}, true},
		{"-rw-r-zr--    1 0 0 1 Nov 01 12:34 a", Entry{}, true},
	}
	for _, tt := range tests {
		got, err := ParseListAt(tt.in, now)
		if (err != nil) != tt.err {
			t.Errorf("ParseList(%q) = %+v, %v; want error %v", tt.in, got, err, tt.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrNotEntry) {
				t.Errorf("ParseList(%q) error %v does not wrap ErrNotEntry", tt.in, err)
			}
			continue
		}
		if !entryEqual(got, tt.want) {
			t.Errorf("ParseList(%q) =\n%+v, want\n%+v", tt.in, got, tt.want)
		}
	}
}

func entryEqual(a, b Entry) bool {
	return a.Name == b.Name && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.IsDir == b.IsDir &&
		a.Mode == b.Mode && a.Type == b.Type && a.Perm == b.Perm && a.Target == b.Target
}

func TestListRoundTrip(t *testing.T) {
	for _, e := range []Entry{
		{Name: "a b.txt", Size: 1 << 40, ModTime: time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), Type: "file", Mode: 0o640},
		{Name: "d", IsDir: true, Size: 4096, ModTime: time.Date(2001, 9, 9, 0, 0, 0, 0, time.UTC), Type: "dir", Mode: fs.ModeDir | 0o700},
		{Name: "ln", Target: "../x", ModTime: time.Date(2026, 7, 1, 1, 2, 0, 0, time.UTC), Type: "OS.unix=symlink", Mode: fs.ModeSymlink | 0o777},
	} {
		got, err := ParseListAt(FormatList(e, now), now)
		if err != nil || !entryEqual(got, e) {
			t.Errorf("round trip of %+v: %q -> %+v, %v", e, FormatList(e, now), got, err)
		}
	}
}

func TestFormatMLSx(t *testing.T) {
	mt := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Name: "a;b c.txt", Size: 10, ModTime: mt, Perm: "adfrw", Mode: 0o644},
			"type=file;size=10;modify=20260102150405;perm=adfrw;UNIX.mode=0644; a;b c.txt"},
		{Entry{Name: "dir", IsDir: true, ModTime: mt, Perm: "el"},
			"type=dir;modify=20260102150405;perm=el; dir"},
		{Entry{Name: ".", Type: "cdir", IsDir: true, ModTime: mt.In(time.FixedZone("X", 3600)), Perm: "flcdmpe", Mode: fs.ModeDir | 0o755 | fs.ModeSetgid},
			"type=cdir;modify=20260102150405;perm=flcdmpe;UNIX.mode=2755; ."},
		{Entry{Name: "x"}, "type=file;size=0; x"},
	}
	for _, tt := range tests {
		if got := FormatMLSx(tt.e); got != tt.want {
			t.Errorf("FormatMLSx(%+v) =\n%q, want\n%q", tt.e, got, tt.want)
		}
	}
}

func TestParseMLSx(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
		err  bool
	}{
		{" type=file;size=10;modify=20260102150405;perm=r;UNIX.mode=0644; a;b c.txt\r",
			Entry{Name: "a;b c.txt", Size: 10, ModTime: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), Type: "file", Perm: "r", Mode: 0o644}, false},
		{"Type=DIR;Modify=20260102150405.250;Unique=801g4;  spaced",
			Entry{Name: " spaced", ModTime: time.Date(2026, 1, 2, 15, 4, 5, 250e6, time.UTC), Type: "dir", IsDir: true, Mode: fs.ModeDir}, false},
		{"type=OS.unix=slink:/etc/passwd; ln",
			Entry{Name: "ln", Type: "OS.unix=symlink", Target: "/etc/passwd", Mode: fs.ModeSymlink}, false},
		{"type=file; ", Entry{}, true},
		{"type=file", Entry{}, true},
		{"type=file;size=-1; x", Entry{}, true},
		{"type=file;size=x; x", Entry{}, true},
		{"type=file;modify=2026; x", Entry{}, true},
		{"type=file;modify=20261302150405; x", Entry{}, true},
		{"type=file;UNIX.mode=9; x", Entry{}, true},
		{"type=file;noequals; x", Entry{}, true},
		{"type=file;size=1 x", Entry{}, true},
	}
	for _, tt := range tests {
		got, err := ParseMLSx(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseMLSx(%q) = %+v, %v; want error %v", tt.in, got, err, tt.err)
			continue
		}
		if err == nil && !entryEqual(got, tt.want) {
			t.Errorf("ParseMLSx(%q) =\n%+v, want\n%+v", tt.in, got, tt.want)
		}
	}
}

func TestTimeVal(t *testing.T) {
	tm := time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
	if s := FormatTimeVal(tm.In(time.FixedZone("Y", -7200))); s != "19991231235959" {
		t.Errorf("FormatTimeVal = %q", s)
	}
	if got, err := ParseTimeVal("19991231235959.5"); err != nil || !got.Equal(tm.Add(500*time.Millisecond)) {
		t.Errorf("ParseTimeVal = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1999123123595", "19991231235959.", "19991231235959.1234567890", "1999123123595x", "+9991231235959"} {
		if _, err := ParseTimeVal(bad); err == nil {
			t.Errorf("ParseTimeVal(%q) accepted", bad)
		}
	}
}
