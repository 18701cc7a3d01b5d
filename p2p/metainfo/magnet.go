package metainfo

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Magnet is a magnet link to a torrent (BEP 9 §magnet URI format).
type Magnet struct {
	// InfoHash names the torrent (xt=urn:btih:…).
	InfoHash [HashSize]byte
	// DisplayName is a name to show while the metadata is fetched (dn).
	DisplayName string
	// Trackers are tracker URLs (tr).
	Trackers []string
	// Peers are peer addresses, host:port (x.pe).
	Peers []string
}

// ErrNotMagnet is returned by ParseMagnet for a URI that is not a magnet
// link.
var ErrNotMagnet = errors.New("metainfo: not a magnet URI")

// ParseMagnet parses a magnet URI of the form
// magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker-url>. The info hash
// may be 40 hexadecimal digits or, as older links have it, 32 base32
// characters. Parameters other than xt, dn, tr and x.pe are ignored, and
// so are exact topics other than btih (such as BEP 52's btmh), but the
// link must have exactly one btih info hash.
func ParseMagnet(uri string) (Magnet, error) {
	var m Magnet
	const scheme = "magnet:?"
	if len(uri) < len(scheme) || !strings.EqualFold(uri[:len(scheme)], scheme) {
		return m, ErrNotMagnet
	}
	q, err := url.ParseQuery(uri[len(scheme):])
	if err != nil {
		return m, fmt.Errorf("metainfo: magnet: %w", err)
	}
	found := false
	for _, xt := range q["xt"] {
		const btih = "urn:btih:"
		if len(xt) < len(btih) || !strings.EqualFold(xt[:len(btih)], btih) {
			continue
		}
		h, err := parseInfoHash(xt[len(btih):])
		if err != nil {
			return m, err
		}
		if found && h != m.InfoHash {
			return m, errors.New("metainfo: magnet: two different btih info hashes")
		}
		m.InfoHash, found = h, true
	}
	if !found {
		return m, errors.New("metainfo: magnet: no xt=urn:btih: info hash")
	}
	m.DisplayName = q.Get("dn")
	m.Trackers = q["tr"]
	m.Peers = q["x.pe"]
	return m, nil
}

func parseInfoHash(s string) ([HashSize]byte, error) {
	var h [HashSize]byte
	switch len(s) {
	case 2 * HashSize:
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return h, fmt.Errorf("metainfo: magnet: info hash %q is not hexadecimal", s)
		}
	case 32:
		b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s))
		if err != nil || len(b) != HashSize {
			return h, fmt.Errorf("metainfo: magnet: info hash %q is not base32", s)
		}
		copy(h[:], b)
	default:
		return h, fmt.Errorf("metainfo: magnet: info hash %q is neither 40 hexadecimal nor 32 base32 characters", s)
	}
	return h, nil
}

// String returns the magnet URI, with the info hash in lowercase
// hexadecimal and the parameters in the order xt, dn, tr, x.pe.
func (m Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(hex.EncodeToString(m.InfoHash[:]))
	add := func(key, value string) {
		b.WriteString("&" + key + "=")
		// Spaces as %20 rather than +, which not every client decodes.
		b.WriteString(strings.ReplaceAll(url.QueryEscape(value), "+", "%20"))
	}
	if m.DisplayName != "" {
		add("dn", m.DisplayName)
	}
	for _, tr := range m.Trackers {
		add("tr", tr)
	}
	for _, pe := range m.Peers {
		add("x.pe", pe)
	}
	return b.String()
}

// Magnet returns a magnet link for the torrent, with its name and all its
// trackers.
func (m *MetaInfo) Magnet() Magnet {
	mag := Magnet{InfoHash: m.InfoHash(), DisplayName: m.Info.Name}
	seen := map[string]bool{}
	add := func(tr string) {
		if tr != "" && !seen[tr] {
			seen[tr] = true
			mag.Trackers = append(mag.Trackers, tr)
		}
	}
	add(m.Announce)
	for _, tier := range m.AnnounceList {
		for _, tr := range tier {
			add(tr)
		}
	}
	return mag
}
