package metainfo

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMagnet(t *testing.T) {
	const hexHash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	var hash [20]byte
	hex.Decode(hash[:], []byte(hexHash))
	tests := []struct {
		uri  string
		want Magnet
	}{
		{"magnet:?xt=urn:btih:" + hexHash, Magnet{InfoHash: hash}},
		{"magnet:?xt=urn:btih:" + strings.ToUpper(hexHash), Magnet{InfoHash: hash}},
		{"MAGNET:?xt=URN:BTIH:" + hexHash, Magnet{InfoHash: hash}},
		// The same hash in base32, upper and lower case.
		{"magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK", Magnet{InfoHash: hash}},
		{"magnet:?xt=urn:btih:yex6dqdlxisuvhoj6um3gnnkpqjwpkek", Magnet{InfoHash: hash}},
		{
			"magnet:?xt=urn:btih:" + hexHash + "&dn=My+File%20name.iso&tr=http%3A%2F%2Ftracker.test%2Fannounce&tr=udp://t2.test:6969&x.pe=127.0.0.2:6881&xl=123",
			Magnet{InfoHash: hash, DisplayName: "My File name.iso", Trackers: []string{"http://tracker.test/announce", "udp://t2.test:6969"}, Peers: []string{"127.0.0.2:6881"}},
		},
		// A hybrid v1/v2 link: the btmh topic is ignored.
		{"magnet:?xt=urn:btmh:1220abcd&xt=urn:btih:" + hexHash, Magnet{InfoHash: hash}},
		{"magnet:?xt=urn:btih:" + hexHash + "&xt=urn:btih:" + strings.ToUpper(hexHash), Magnet{InfoHash: hash}},
	}
	for _, tt := range tests {
		got, err := ParseMagnet(tt.uri)
		if err != nil {
			t.Errorf("ParseMagnet(%q): %v", tt.uri, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseMagnet(%q) (-want +got):\n%s", tt.uri, diff)
		}
		// String gives a link that parses to the same thing.
		again, err := ParseMagnet(got.String())
		if err != nil {
			t.Errorf("ParseMagnet(%q): %v", got.String(), err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("String round trip of %q (-first +again):\n%s", tt.uri, diff)
		}
	}
}

func TestMagnetString(t *testing.T) {
	m := Magnet{DisplayName: "a b+c&d", Trackers: []string{"http://t.test/a?x=1"}, Peers: []string{"[::1]:6881"}}
	m.InfoHash[0] = 0xab
	want := "magnet:?xt=urn:btih:ab00000000000000000000000000000000000000&dn=a%20b%2Bc%26d&tr=http%3A%2F%2Ft.test%2Fa%3Fx%3D1&x.pe=%5B%3A%3A1%5D%3A6881"
	if got := m.String(); got != want {
		t.Errorf("String =\n %s\nwant\n %s", got, want)
	}
}

func TestParseMagnetErrors(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"http://example.test/", "not a magnet URI"},
		{"magnet:", "not a magnet URI"},
		{"magnet:?dn=x", "no xt=urn:btih: info hash"},
		{"magnet:?xt=urn:sha1:abc", "no xt=urn:btih: info hash"},
		{"magnet:?xt=urn:btih:abc", "neither 40 hexadecimal nor 32 base32"},
		{"magnet:?xt=urn:btih:" + strings.Repeat("g", 40), "not hexadecimal"},
		{"magnet:?xt=urn:btih:" + strings.Repeat("1", 32), "not base32"},
		{"magnet:?xt=urn:btih:" + strings.Repeat("a", 40) + "&xt=urn:btih:" + strings.Repeat("b", 40), "two different"},
		{"magnet:?xt=urn:btih:" + strings.Repeat("a", 40) + "&dn=%zz", "invalid URL escape"},
	}
	for _, tt := range tests {
		_, err := ParseMagnet(tt.uri)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "metainfo: ") {
			t.Errorf("ParseMagnet(%q) = %v, want an error containing %q", tt.uri, err, tt.want)
		}
	}
	if _, err := ParseMagnet("ftp://x"); !errors.Is(err, ErrNotMagnet) {
		t.Errorf("ParseMagnet(ftp) = %v, want ErrNotMagnet", err)
	}
}

func TestMetaInfoMagnet(t *testing.T) {
	m, err := Parse(encode(t, validTorrent()))
	if err != nil {
		t.Fatal(err)
	}
	mag := m.Magnet()
	want := Magnet{
		InfoHash:    m.InfoHash(),
		DisplayName: "dir",
		Trackers:    []string{"http://tracker.test/announce", "udp://t2.test:6969", "udp://t3.test:6969"},
	}
	if diff := cmp.Diff(want, mag); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
