package bencode

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzUnmarshal checks that the decoder never panics, that everything the
// strict decoder accepts re-encodes to exactly the same bytes and decodes
// alike with github.com/zeebo/bencode, and that the lenient decoder keeps
// raw bytes exactly.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range crossInputs {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"", "i03e", "i-0e", "ie", "5:abc", "01:a", "d1:bi1e1:ai2ee", "d1:ai1e1:ai2ee",
		"di1ei2ee", "d1:ae", "i1ei2e", "llllllllllllllllllllllllllllllee", "99999999999999999999:",
		"d4:infod1:zi1e1:ai2eee", "d5:filesld6:lengthi1e4:pathl1:aeeee",
		"i18446744073709551616e", "i-9223372036854775809e",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		err := Unmarshal(data, &v)
		if err == nil {
			if !Valid(data) {
				t.Fatalf("Unmarshal accepted %q but Valid rejects it", data)
			}
			out, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal(Unmarshal(%q)): %v", data, err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("re-encoding changed the bytes:\n in  %q\n out %q", data, out)
			}
			crossCheck(t, data)

			// The stream decoder agrees.
			dec := NewDecoder(bytes.NewReader(data))
			var w any
			if err := dec.Decode(&w); err != nil {
				t.Fatalf("Decoder rejected %q: %v", data, err)
			}
			if diff := cmp.Diff(v, w); diff != "" {
				t.Fatalf("Decoder and Unmarshal differ on %q:\n%s", data, diff)
			}
			if err := dec.Decode(&w); err != io.EOF {
				t.Fatalf("Decoder after the value: %v, want io.EOF", err)
			}
		} else {
			var se *SyntaxError
			var te *UnmarshalTypeError
			if !errors.As(err, &se) && !errors.As(err, &te) {
				t.Fatalf("Unmarshal(%q) returned untyped error %v", data, err)
			}
		}

		// Lenient decoding keeps raw bytes exactly.
		lenient := DecodeOptions{AllowUnsortedKeys: true}
		var raw RawMessage
		if err := lenient.Unmarshal(data, &raw); err == nil {
			if !bytes.Equal(raw, data) {
				t.Fatalf("RawMessage = %q, want %q", raw, data)
			}
			out, err := Marshal(raw)
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("Marshal(RawMessage %q) = %q, %v", data, out, err)
			}
		}

		// Decoding into a typed struct must not panic either.
		var tor torrent
		_ = lenient.Unmarshal(data, &tor)
	})
}
