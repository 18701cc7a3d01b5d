package tracker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxWhitelist bounds the entries ReadWhitelist accepts.
const MaxWhitelist = 1_000_000

// ReadWhitelist reads a whitelist of info hashes: one 40-digit hex info
// hash per line (the format opentracker reads); blank lines and lines
// starting with '#' are skipped. Errors name the line.
func ReadWhitelist(r io.Reader) (map[Hash]bool, error) {
	out := make(map[Hash]bool)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		h, err := ParseHash(s)
		if err != nil {
			return nil, fmt.Errorf("tracker: whitelist line %d: %w", line, err)
		}
		if len(out) == MaxWhitelist {
			return nil, fmt.Errorf("tracker: whitelist line %d: more than %d info hashes", line, MaxWhitelist)
		}
		out[h] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tracker: whitelist: %w", err)
	}
	return out, nil
}

// LoadWhitelist reads the whitelist file at path; see ReadWhitelist.
func LoadWhitelist(path string) (map[Hash]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	defer f.Close()
	return ReadWhitelist(f)
}
