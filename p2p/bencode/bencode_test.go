package bencode

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

type fileEntry struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
	MD5    []byte   `bencode:"md5sum,omitempty"`
}

type infoDict struct {
	Name        string      `bencode:"name"`
	PieceLength int64       `bencode:"piece length"`
	Pieces      []byte      `bencode:"pieces"`
	Files       []fileEntry `bencode:"files,omitempty"`
	Length      int64       `bencode:"length,omitempty"`
	Private     bool        `bencode:"private,omitempty"`
}

type torrent struct {
	Announce     string     `bencode:"announce"`
	AnnounceList [][]string `bencode:"announce-list,omitempty"`
	CreationDate int64      `bencode:"creation date,omitempty"`
	Info         infoDict   `bencode:"info"`
	Ignored      string     `bencode:"-"`
	unexported   int
}

func TestMarshalScalars(t *testing.T) {
	type myString string
	type myBytes []byte
	tests := []struct {
		in   any
		want string
	}{
		{0, "i0e"},
		{42, "i42e"},
		{-42, "i-42e"},
		{int8(-128), "i-128e"},
		{int64(math.MinInt64), "i-9223372036854775808e"},
		{uint64(math.MaxUint64), "i18446744073709551615e"},
		{uint8(255), "i255e"},
		{true, "i1e"},
		{false, "i0e"},
		{"", "0:"},
		{"spam", "4:spam"},
		{myString("eggs"), "4:eggs"},
		{[]byte("\x00\xff"), "2:\x00\xff"},
		{myBytes("ab"), "2:ab"},
		{[]byte(nil), "0:"},
		{[3]byte{'a', 'b', 'c'}, "3:abc"},
		{[]int{1, 2}, "li1ei2ee"},
		{[]int(nil), "le"},
		{[2]string{"a", "b"}, "l1:a1:be"},
		{[]any{"spam", 42, []any{}}, "l4:spami42elee"},
		{map[string]int{"b": 2, "a": 1}, "d1:ai1e1:bi2ee"},
		{map[string]any{}, "de"},
		{map[myString]string{"z": "", "\xff": "", "A": ""}, "d1:A0:1:z0:1:\xff0:e"},
		{new(int), "i0e"},
		{RawMessage("d1:bi1e1:ai2ee"), "d1:bi1e1:ai2ee"},
	}
	for _, tt := range tests {
		got, err := Marshal(tt.in)
		if err != nil {
			t.Errorf("Marshal(%#v): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Marshal(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarshalSortsKeysAsBytes(t *testing.T) {
	// Byte order, not alphanumeric or UTF-8 collation: "Z" < "a" < "é".
	m := map[string]int{"é": 3, "a": 2, "Z": 1, "aa": 4, "": 0}
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := "d0:i0e1:Zi1e1:ai2e2:aai4e2:\xc3\xa9i3ee"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Struct keys too, whatever the field order.
	type s struct {
		Z int `bencode:"zz"`
		A int `bencode:"piece length"`
		B int `bencode:"pieces"`
		C int `bencode:"piece"`
	}
	got, err = Marshal(s{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	want = "d5:piecei4e12:piece lengthi2e6:piecesi3e2:zzi1ee"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRoundTripStruct(t *testing.T) {
	in := torrent{
		Announce:     "http://tracker.test/announce",
		AnnounceList: [][]string{{"http://a.test/announce"}, {"udp://b.test:80", "udp://c.test:80"}},
		CreationDate: 1700000000,
		Info: infoDict{
			Name:        "dir",
			PieceLength: 262144,
			Pieces:      bytes.Repeat([]byte{0xab}, 40),
			Files: []fileEntry{
				{Length: 5, Path: []string{"a", "b.txt"}},
				{Length: 0, Path: []string{"empty"}, MD5: []byte("0123456789abcdef")},
			},
			Private: true,
		},
		Ignored:    "not encoded",
		unexported: 7,
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !Valid(b) {
		t.Fatalf("Marshal output is not canonical: %q", b)
	}
	var out torrent
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.Ignored, in.unexported = "", 0
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(torrent{})); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	// And through the generic representation back to the same bytes.
	var generic any
	if err := Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	b2, err := Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("generic round trip:\n got %q\nwant %q", b2, b)
	}
}

func TestUnmarshalAny(t *testing.T) {
	var v any
	if err := Unmarshal([]byte("d1:ai-1e1:bl0:i0ee1:cdee"), &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(-1), "b": []any{"", int64(0)}, "c": map[string]any{}}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUnmarshalInts(t *testing.T) {
	var (
		i8  int8
		u8  uint8
		i64 int64
		u64 uint64
		b   bool
		u   uint
	)
	ok := []struct {
		in   string
		dst  any
		want any
	}{
		{"i127e", &i8, int8(127)},
		{"i-128e", &i8, int8(-128)},
		{"i255e", &u8, uint8(255)},
		{"i9223372036854775807e", &i64, int64(math.MaxInt64)},
		{"i-9223372036854775808e", &i64, int64(math.MinInt64)},
		{"i18446744073709551615e", &u64, uint64(math.MaxUint64)},
		{"i1e", &b, true},
		{"i0e", &b, false},
		{"i7e", &u, uint(7)},
	}
	for _, tt := range ok {
		if err := Unmarshal([]byte(tt.in), tt.dst); err != nil {
			t.Errorf("Unmarshal(%q, %T): %v", tt.in, tt.dst, err)
			continue
		}
		if got := reflect.ValueOf(tt.dst).Elem().Interface(); got != tt.want {
			t.Errorf("Unmarshal(%q, %T) = %v, want %v", tt.in, tt.dst, got, tt.want)
		}
	}
	overflow := []struct {
		in  string
		dst any
	}{
		{"i128e", &i8},
		{"i-129e", &i8},
		{"i256e", &u8},
		{"i-1e", &u8},
		{"i9223372036854775808e", &i64},
		{"i-9223372036854775809e", &i64},
		{"i18446744073709551616e", &u64},
		{"i99999999999999999999999999e", &u64},
		{"i2e", &b},
		{"i-1e", &b},
		{"i9223372036854775808e", new(any)},
	}
	for _, tt := range overflow {
		err := Unmarshal([]byte(tt.in), tt.dst)
		var te *UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Errorf("Unmarshal(%q, %T) = %v, want *UnmarshalTypeError", tt.in, tt.dst, err)
			continue
		}
		if !strings.Contains(te.Value, tt.in[1:len(tt.in)-1]) {
			t.Errorf("Unmarshal(%q, %T): error %q does not show the integer", tt.in, tt.dst, err)
		}
	}
}

// TestSyntaxErrors checks every rejection of the strict decoder.
func TestSyntaxErrors(t *testing.T) {
	deep := strings.Repeat("l", DefaultMaxDepth+1) + strings.Repeat("e", DefaultMaxDepth+1)
	tests := []struct {
		name   string
		in     string
		offset int64
		msg    string
	}{
		{"empty input", "", 0, "unexpected end of input"},
		{"leading zero", "i03e", 1, "leading zero in integer"},
		{"leading zero negative", "i-03e", 2, "leading zero in integer"},
		{"double zero", "i00e", 1, "leading zero in integer"},
		{"negative zero", "i-0e", 0, "negative zero"},
		{"no digits", "ie", 0, "integer has no digits"},
		{"only minus", "i-e", 0, "integer has no digits"},
		{"plus sign", "i+1e", 1, `invalid character '+' in integer`},
		{"space in integer", "i 1e", 1, `invalid character ' ' in integer`},
		{"float", "i1.5e", 2, `invalid character '.' in integer`},
		{"unterminated integer", "i12", 3, "unexpected end of input"},
		{"non-digit length", "1a:x", 1, `invalid character 'a' in string length`},
		{"negative length", "-1:x", 0, `invalid character '-' looking for beginning of value`},
		{"leading zero length", "01:x", 0, "leading zero in string length"},
		{"length too long", "5:abc", 0, "string length 5 exceeds the 3 bytes of remaining input"},
		{"huge length", "99999999999:abc", 0, "string length 99999999999 exceeds the 3 bytes of remaining input"},
		{"overflowing length", "99999999999999999999999:abc", 0, "string length too large"},
		{"length without colon", "3", 1, "unexpected end of input"},
		{"unterminated list", "li1e", 4, "unexpected end of input"},
		{"unterminated dict", "d1:ai1e", 7, "unexpected end of input"},
		{"unsorted keys", "d1:bi1e1:ai2ee", 7, `dict key "a" is out of order`},
		{"duplicate keys", "d1:ai1e1:ai2ee", 7, `duplicate dict key "a"`},
		{"integer key", "di1ei2ee", 1, "dict key is not a string"},
		{"list key", "dlei2ee", 1, "dict key is not a string"},
		{"key without value", "d1:ae", 4, `dict key "a" has no value`},
		{"trailing data", "i1ei2e", 3, "trailing data after top-level value"},
		{"trailing newline", "4:spam\n", 6, "trailing data after top-level value"},
		{"bad start", "x", 0, `invalid character 'x' looking for beginning of value`},
		{"stray end", "e", 0, `invalid character 'e' looking for beginning of value`},
		{"too deep", deep, DefaultMaxDepth, "nesting deeper than 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := Unmarshal([]byte(tt.in), &v)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Unmarshal(%q) = %v, want *SyntaxError", tt.in, err)
			}
			if se.Offset != tt.offset || se.Msg != tt.msg {
				t.Errorf("Unmarshal(%q) = offset %d %q, want offset %d %q", tt.in, se.Offset, se.Msg, tt.offset, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "bencode: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if Valid([]byte(tt.in)) {
				t.Errorf("Valid(%q) = true", tt.in)
			}
		})
	}
}

func TestTruncatedWrapsUnexpectedEOF(t *testing.T) {
	for _, in := range []string{"", "i1", "4:spa", "l", "d1:a"} {
		err := Unmarshal([]byte(in), new(any))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Unmarshal(%q) = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestMaxDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat("l", n) + strings.Repeat("e", n))
	}
	if err := Unmarshal(nest(DefaultMaxDepth), new(any)); err != nil {
		t.Errorf("depth %d: %v", DefaultMaxDepth, err)
	}
	opts := DecodeOptions{MaxDepth: 3}
	if err := opts.Unmarshal(nest(3), new(any)); err != nil {
		t.Errorf("depth 3 with MaxDepth 3: %v", err)
	}
	if err := opts.Unmarshal([]byte("ld1:ald1:aleeee"), new(any)); err == nil {
		t.Errorf("depth 5 with MaxDepth 3: no error")
	}
	// Very deep input fails quickly and without exhausting the stack.
	if err := Unmarshal(nest(1_000_000), new(any)); err == nil {
		t.Error("depth 1e6: no error")
	}
}

func TestLenientKeys(t *testing.T) {
	in := []byte("d4:spami1e3:bari2ee")
	if err := Unmarshal(in, new(any)); err == nil {
		t.Fatal("strict Unmarshal accepted unsorted keys")
	}
	lenient := DecodeOptions{AllowUnsortedKeys: true}
	var m map[string]int
	if err := lenient.Unmarshal(in, &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"spam": 1, "bar": 2}, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Duplicates are still refused, even far apart and out of order.
	for _, in := range []string{"d1:bi1e1:ai1e1:bi1ee", "d1:ci1e1:ai1e1:bi1e1:ai1ee"} {
		var se *SyntaxError
		if err := lenient.Unmarshal([]byte(in), new(any)); !errors.As(err, &se) || !strings.Contains(se.Msg, "duplicate") {
			t.Errorf("lenient Unmarshal(%q) = %v, want duplicate key error", in, err)
		}
	}
	// A RawMessage keeps the unsorted bytes, and Marshal writes them back.
	var raw struct {
		Info RawMessage `bencode:"info"`
	}
	doc := []byte("d4:infod1:zi1e1:ai2eee")
	if err := lenient.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw.Info) != "d1:zi1e1:ai2ee" {
		t.Errorf("raw info = %q", raw.Info)
	}
	out, err := Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, doc) {
		t.Errorf("Marshal(raw) = %q, want %q", out, doc)
	}
}

func TestUnmarshalTypeErrors(t *testing.T) {
	type inner struct {
		Length int32 `bencode:"length"`
	}
	type outer struct {
		Files []inner     `bencode:"files"`
		Name  string      `bencode:"name"`
		Hash  [4]byte     `bencode:"hash"`
		Pair  [2]int      `bencode:"pair"`
		Any   fmtStringer `bencode:"stringer"`
	}
	tests := []struct {
		in    string
		value string
		typ   string
		field string
		off   int64
	}{
		{"d5:filesld6:lengthi1eed6:length3:abceee", "string", "int32", "files[1].length", 31},
		{"d5:filesld6:lengthi9999999999eeee", "integer 9999999999", "int32", "files[0].length", 18},
		{"d4:namei1ee", "integer", "string", "name", 7},
		{"d4:hash3:abce", "string of length 3", "[4]uint8", "hash", 7},
		{"d4:pairli1eee", "list of length 1", "[2]int", "pair", 7},
		{"d4:pairli1ei2ei3eee", "list of more than 2 elements", "[2]int", "pair", 7},
		{"d5:filesi1ee", "integer", "[]bencode.inner", "files", 8},
		{"d5:filesli1eee", "integer", "bencode.inner", "files[0]", 9},
		{"d8:stringeri1ee", "integer", "bencode.fmtStringer", "stringer", 11},
		{"le", "list", "bencode.outer", "", 0},
	}
	for _, tt := range tests {
		var v outer
		err := Unmarshal([]byte(tt.in), &v)
		var te *UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Errorf("Unmarshal(%q) = %v, want *UnmarshalTypeError", tt.in, err)
			continue
		}
		got := []any{te.Value, te.Type.String(), te.Field, te.Offset}
		want := []any{tt.value, tt.typ, tt.field, tt.off}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Unmarshal(%q): (-want +got):\n%s", tt.in, diff)
		}
	}
	// Maps need string keys.
	if err := Unmarshal([]byte("d1:ai1ee"), new(map[int]int)); err == nil {
		t.Error("Unmarshal into map[int]int: no error")
	}
}

type fmtStringer interface{ String() string }

func TestInvalidUnmarshal(t *testing.T) {
	var x int
	for _, v := range []any{nil, x, (*int)(nil)} {
		var ie *InvalidUnmarshalError
		if err := Unmarshal([]byte("i1e"), v); !errors.As(err, &ie) {
			t.Errorf("Unmarshal into %T = %v, want *InvalidUnmarshalError", v, err)
		}
	}
}

func TestUnmarshalPointersAndReuse(t *testing.T) {
	type s struct {
		P  *int           `bencode:"p"`
		PP **string       `bencode:"pp"`
		M  map[string]int `bencode:"m"`
		L  []string       `bencode:"l"`
		B  []byte         `bencode:"b"`
		E  []int          `bencode:"e"`
	}
	v := s{L: []string{"old", "old", "old"}, M: map[string]int{"keep": 1}}
	if err := Unmarshal([]byte("d1:b0:1:ele1:l l1:xe1:md1:ai1ee1:pi5e2:pp2:hie"), &v); err == nil {
		t.Fatal("accepted a space")
	}
	if err := Unmarshal([]byte("d1:b0:1:ele1:ll1:xe1:md1:ai1ee1:pi5e2:pp2:hie"), &v); err != nil {
		t.Fatal(err)
	}
	if *v.P != 5 || **v.PP != "hi" {
		t.Errorf("pointers: %d %q", *v.P, **v.PP)
	}
	if diff := cmp.Diff([]string{"x"}, v.L); diff != "" {
		t.Errorf("slice not replaced: %s", diff)
	}
	if diff := cmp.Diff(map[string]int{"keep": 1, "a": 1}, v.M); diff != "" {
		t.Errorf("map: %s", diff)
	}
	if v.B == nil || len(v.B) != 0 || v.E == nil || len(v.E) != 0 {
		t.Errorf("empty string and list should decode to empty non-nil slices: %#v %#v", v.B, v.E)
	}
	// Decoded bytes do not alias the input.
	in := []byte("d1:b3:abce")
	var w s
	if err := Unmarshal(in, &w); err != nil {
		t.Fatal(err)
	}
	in[6] = 'X'
	if string(w.B) != "abc" {
		t.Errorf("decoded []byte aliases the input: %q", w.B)
	}
}

type Embedded struct {
	A int `bencode:"a"`
	B int `bencode:"b"`
}

type embeddedPtr struct {
	C int `bencode:"c"`
}

type EmbeddedPtr = embeddedPtr

func TestEmbeddedStructs(t *testing.T) {
	type outer struct {
		Embedded
		*EmbeddedPtr
		B int `bencode:"b"` // shadows Embedded.B
	}
	v := outer{Embedded: Embedded{A: 1, B: 2}, B: 3}
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "d1:ai1e1:bi3ee" {
		t.Errorf("Marshal = %q", b)
	}
	var w outer
	if err := Unmarshal([]byte("d1:ai1e1:bi3e1:ci4ee"), &w); err != nil {
		t.Fatal(err)
	}
	if w.A != 1 || w.B != 3 || w.Embedded.B != 0 || w.EmbeddedPtr == nil || w.C != 4 {
		t.Errorf("Unmarshal = %+v %+v", w, w.EmbeddedPtr)
	}
	// Two fields at the same depth with the same key: neither is used.
	type x1 struct {
		N int `bencode:"n"`
	}
	type x2 struct {
		N int `bencode:"n"`
	}
	type ambiguous struct {
		X1 x1 `bencode:"-"`
		x1
		x2
	}
	b, err = Marshal(ambiguous{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "de" {
		t.Errorf("ambiguous fields encoded: %q", b)
	}
}

func TestOmit(t *testing.T) {
	type s struct {
		E  string         `bencode:"e,omitempty"`
		I  int            `bencode:"i,omitempty"`
		B  bool           `bencode:"b,omitempty"`
		L  []int          `bencode:"l,omitempty"`
		M  map[string]int `bencode:"m,omitempty"`
		P  *int           `bencode:"p"`
		T  time.Time      `bencode:"t,omitzero"`
		A  [2]int         `bencode:"a,omitzero"`
		N  int            `bencode:"n"`
		X  any            `bencode:"x"`
		R  RawMessage     `bencode:"r,omitempty"`
		Nm string
	}
	b, err := Marshal(s{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "d2:Nm0:1:ni0ee" {
		t.Errorf("Marshal = %q", b)
	}
}

type upper string

func (u upper) MarshalBencode() ([]byte, error) {
	return Marshal(strings.ToUpper(string(u)))
}

func (u *upper) UnmarshalBencode(b []byte) error {
	var s string
	if err := Unmarshal(b, &s); err != nil {
		return err
	}
	*u = upper(strings.ToLower(s))
	return nil
}

type point struct{ X, Y int }

func (p point) MarshalText() ([]byte, error) {
	return []byte(strconv.Itoa(p.X) + "," + strconv.Itoa(p.Y)), nil
}

func (p *point) UnmarshalText(b []byte) error {
	x, y, ok := strings.Cut(string(b), ",")
	if !ok {
		return errors.New("no comma")
	}
	var err1, err2 error
	p.X, err1 = strconv.Atoi(x)
	p.Y, err2 = strconv.Atoi(y)
	return errors.Join(err1, err2)
}

type badMarshaler struct{ out string }

func (b badMarshaler) MarshalBencode() ([]byte, error) { return []byte(b.out), nil }

func TestMarshalers(t *testing.T) {
	type s struct {
		U  upper   `bencode:"u"`
		P  point   `bencode:"p"`
		PP *point  `bencode:"pp"`
		US []upper `bencode:"us"`
	}
	in := s{U: "abc", P: point{1, 2}, PP: &point{3, 4}, US: []upper{"x"}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d1:p3:1,22:pp3:3,41:u3:ABC2:usl1:Xee"
	if string(b) != want {
		t.Errorf("Marshal = %q, want %q", b, want)
	}
	var out s
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.U, in.US = "abc", []upper{"x"}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A TextUnmarshaler wants a string.
	var te *UnmarshalTypeError
	if err := Unmarshal([]byte("d1:pi1ee"), &out); !errors.As(err, &te) {
		t.Errorf("integer into TextUnmarshaler: %v", err)
	}
	// Marshalers must return one well-formed value.
	for _, bad := range []string{"", "i1ei2e", "4:abc", "i01e"} {
		var me *MarshalerError
		if _, err := Marshal(badMarshaler{bad}); !errors.As(err, &me) {
			t.Errorf("Marshal(badMarshaler{%q}) = %v, want *MarshalerError", bad, err)
		}
	}
	if _, err := Marshal(RawMessage(nil)); err == nil {
		t.Error("Marshal(empty RawMessage): no error")
	}
}

func TestMarshalErrors(t *testing.T) {
	type cyclic struct {
		Next *cyclic `bencode:"next"`
	}
	c := &cyclic{}
	c.Next = c
	var ut *UnsupportedTypeError
	var uv *UnsupportedValueError
	tests := []struct {
		in     any
		target any
	}{
		{nil, &uv},
		{1.5, &ut},
		{map[int]string{1: "a"}, &ut},
		{make(chan int), &ut},
		{[]*int{nil}, &uv},
		{map[string]any{"a": nil}, &uv},
		{c, &uv},
		{struct{ F func() }{func() {}}, &ut},
	}
	for _, tt := range tests {
		if _, err := Marshal(tt.in); !errors.As(err, tt.target) {
			t.Errorf("Marshal(%T) = %v, want %T", tt.in, err, tt.target)
		}
	}
}

func TestDecoderStream(t *testing.T) {
	in := "i1e4:spamld1:ai1eeede" + "trailing raw bytes"
	for _, name := range []string{"whole", "one byte"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(in)
			if name == "one byte" {
				r = iotest.OneByteReader(r)
			}
			dec := NewDecoder(r)
			var got []any
			for range 4 {
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			want := []any{int64(1), "spam", []any{map[string]any{"a": int64(1)}}, map[string]any{}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if off := dec.InputOffset(); off != 21 {
				t.Errorf("InputOffset = %d, want 21", off)
			}
			rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), r))
			if string(rest) != "trailing raw bytes" {
				t.Errorf("rest = %q", rest)
			}
		})
	}
}

func TestDecoderEOF(t *testing.T) {
	dec := NewDecoder(strings.NewReader("i1e"))
	var v int
	if err := dec.Decode(&v); err != nil || v != 1 {
		t.Fatalf("Decode = %d, %v", v, err)
	}
	if err := dec.Decode(&v); err != io.EOF {
		t.Errorf("Decode at end = %v, want io.EOF", err)
	}
	dec = NewDecoder(strings.NewReader("l4:spa"))
	err := dec.Decode(new(any))
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, io.ErrUnexpectedEOF) || se.Offset != 6 {
		t.Errorf("Decode of truncated stream = %v, want *SyntaxError at 6 wrapping io.ErrUnexpectedEOF", err)
	}
	// Errors are sticky.
	if err2 := dec.Decode(new(any)); err2 != err {
		t.Errorf("second Decode = %v, want %v", err2, err)
	}
	// Offsets count from the start of the stream.
	dec = NewDecoder(strings.NewReader("i1ei01e"))
	dec.Decode(new(any))
	if err := dec.Decode(new(any)); !errors.As(err, &se) || se.Offset != 4 {
		t.Errorf("Decode = %v, want syntax error at offset 4", err)
	}
	// A read error is returned wrapped.
	boom := errors.New("boom")
	dec = NewDecoder(io.MultiReader(strings.NewReader("l"), iotest.ErrReader(boom)))
	if err := dec.Decode(new(any)); !errors.Is(err, boom) {
		t.Errorf("Decode = %v, want %v", err, boom)
	}
	// A type error does not break the stream.
	dec = NewDecoder(strings.NewReader("4:spami2e"))
	if err := dec.Decode(&v); err == nil {
		t.Error("string into int: no error")
	}
	if err := dec.Decode(&v); err != nil || v != 2 {
		t.Errorf("Decode after type error = %d, %v", v, err)
	}
}

// countingReader returns a few bytes of a forged header, then endless
// zeros, counting what it hands out.
type countingReader struct {
	head []byte
	n    int
	max  int
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.n >= r.max {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.max-r.n)]
	k := copy(p, r.head[min(r.n, len(r.head)):])
	clear(p[k:])
	r.n += len(p)
	return len(p), nil
}

func TestDecoderDoesNotTrustLengths(t *testing.T) {
	// A stream that declares a 1 GB string but ends after 10 KB must not
	// make the decoder allocate anywhere near 1 GB.
	r := &countingReader{head: []byte("1000000000:"), max: 10_000}
	dec := NewDecoder(r)
	var before, after runtimeMem
	before.read()
	err := dec.Decode(new(any))
	after.read()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Decode = %v, want unexpected EOF", err)
	}
	if c := cap(dec.s.buf); c > 64<<10 {
		t.Errorf("decoder buffer grew to %d bytes for %d bytes of input", c, r.n)
	}
	if grew := after.total - before.total; grew > 16<<20 {
		t.Errorf("decoding allocated %d bytes", grew)
	}
}

func TestMarshalAppendAndEncoder(t *testing.T) {
	b, err := AppendMarshal([]byte("prefix"), []int{1})
	if err != nil || string(b) != "prefixli1ee" {
		t.Errorf("AppendMarshal = %q, %v", b, err)
	}
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, v := range []any{1, "a", map[string]int{"k": 2}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Encode(1.5); err == nil {
		t.Error("Encode(1.5): no error")
	}
	if buf.String() != "i1e1:ad1:ki2ee" {
		t.Errorf("Encoder wrote %q", buf.String())
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

func TestListIntoBytes(t *testing.T) {
	for _, dst := range []any{new([]byte), new([2]byte)} {
		var te *UnmarshalTypeError
		if err := Unmarshal([]byte("li1ei2ee"), dst); !errors.As(err, &te) {
			t.Errorf("list into %T = %v, want *UnmarshalTypeError", dst, err)
		}
	}
}
