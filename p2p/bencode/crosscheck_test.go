package bencode

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	zeebo "github.com/zeebo/bencode"
)

// crossInputs are canonical values that both decoders must read alike.
var crossInputs = []string{
	"i0e",
	"i-1e",
	"i9223372036854775807e",
	"i-9223372036854775808e",
	"0:",
	"4:spam",
	"3:\x00\xff\n",
	"le",
	"de",
	"l4:spam4:eggse",
	"d3:cow3:moo4:spam4:eggse",
	"d4:spaml1:a1:bee",
	"d9:publisher3:bob17:publisher-webpage15:www.example.com18:publisher.location4:homee",
	"lli1ei2eeli3eed1:xlleeee",
	"d8:announce28:http://tracker.test/announce4:infod6:lengthi5e4:name5:a.txt12:piece lengthi262144e6:pieces20:01234567890123456789ee",
	"d1:ad1:bd1:cd1:dleeeee",
	"d0:i1e1:\xffi2ee",
}

// TestCrossCheckDecode decodes the same inputs with github.com/zeebo/bencode
// and expects the same values.
func TestCrossCheckDecode(t *testing.T) {
	for _, in := range crossInputs {
		crossCheck(t, []byte(in))
	}
}

func crossCheck(t *testing.T, in []byte) {
	t.Helper()
	var ours, theirs any
	if err := Unmarshal(in, &ours); err != nil {
		t.Errorf("Unmarshal(%q): %v", in, err)
		return
	}
	if err := zeebo.DecodeBytes(in, &theirs); err != nil {
		t.Errorf("zeebo.DecodeBytes(%q): %v", in, err)
		return
	}
	// zeebo decodes an empty list as a nil []any, we as an empty one.
	if diff := cmp.Diff(theirs, ours, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decoding %q (-zeebo +ours):\n%s", in, diff)
	}
}

// TestCrossCheckEncode encodes the same values with both encoders and
// expects the same bytes.
func TestCrossCheckEncode(t *testing.T) {
	values := []any{
		42,
		-7,
		"spam",
		[]byte{0, 1, 2},
		[]any{"a", 1, []any{}},
		map[string]any{"z": 1, "a": "x", "m": []any{map[string]any{}}, "\xff": 0, "": "e"},
		torrent{
			Announce: "http://tracker.test/announce",
			Info:     infoDict{Name: "x", PieceLength: 16384, Pieces: bytes.Repeat([]byte{1}, 20), Length: 10},
		},
	}
	for _, v := range values {
		ours, err := Marshal(v)
		if err != nil {
			t.Errorf("Marshal(%#v): %v", v, err)
			continue
		}
		theirs, err := zeebo.EncodeBytes(v)
		if err != nil {
			t.Errorf("zeebo.EncodeBytes(%#v): %v", v, err)
			continue
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("encoding %#v:\n ours   %q\n zeebo  %q", v, ours, theirs)
		}
	}
}
