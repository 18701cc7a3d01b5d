package lab

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

//go:embed default.toml
var defaultFile []byte

// Default returns the embedded default lab.
func Default() *File {
	f, err := Parse("default.toml", defaultFile)
	if err != nil {
		panic("lab: the embedded default lab is invalid: " + err.Error())
	}
	return f
}

// DefaultSource returns the text of the embedded default lab, for
// `appnet lab --print-default`.
func DefaultSource() []byte { return bytes.Clone(defaultFile) }

// File is a parsed lab file: the hosts of a small Internet and what each
// one runs.
type File struct {
	Name  string // where it came from, for messages
	Hosts []*Host
}

// Host is one machine of the lab: a name, a loopback address, services.
type Host struct {
	Name     string
	Address  netip.Addr
	Services []*ServiceConfig
	line     int
}

// ServiceConfig is one service of a host as the lab file describes it.
type ServiceConfig struct {
	Kind   *Kind
	Config any // the kind's config struct, filled from the file
	line   int
}

// FileError is a problem with a lab file, located at a line.
type FileError struct {
	File string
	Line int // 0 when the problem concerns the whole file
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and parses the lab file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return Parse(path, data)
}

var hostName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// loopback is where every lab host lives.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// Parse parses a lab file. name is used in error messages. Every error is a
// *FileError naming the line at fault.
//
// The format is TOML: one table per host, named after the host, holding its
// address and one sub-table per service, named after the service's kind:
//
//	[host.upper1]
//	address = "127.0.0.21"
//
//	[host.upper1.uppercase]
//	tcp = 12000
//	udp = 12000
func Parse(name string, data []byte) (*File, error) {
	fail := func(line int, format string, args ...any) error {
		return &FileError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var raw struct {
		Host map[string]toml.Primitive `toml:"host"`
	}
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, tomlError(name, err)
	}
	f := &File{Name: name}
	names := make([]string, 0, len(raw.Host))
	for n := range raw.Host {
		names = append(names, n)
	}
	for _, hn := range names {
		line := locate(data, toml.Key{"host", hn})
		if !hostName.MatchString(hn) {
			return nil, fail(line, "host %q: a host name is lower-case letters, digits and '-', starting with a letter", hn)
		}
		var tables map[string]toml.Primitive
		if err := md.PrimitiveDecode(raw.Host[hn], &tables); err != nil {
			return nil, tomlError(name, err)
		}
		h := &Host{Name: hn, line: line}
		addr, ok := tables["address"]
		if !ok {
			return nil, fail(line, "host %q has no address", hn)
		}
		var s string
		if err := md.PrimitiveDecode(addr, &s); err != nil {
			return nil, fail(locate(data, toml.Key{"host", hn, "address"}), "host %q: address: %v", hn, err)
		}
		aline := locate(data, toml.Key{"host", hn, "address"})
		if h.Address, err = netip.ParseAddr(s); err != nil {
			return nil, fail(aline, "host %q: address %q is not an IP address", hn, s)
		}
		if !loopback.Contains(h.Address) {
			return nil, fail(aline, "host %q: address %s is not in 127.0.0.0/8: lab hosts live on loopback", hn, h.Address)
		}
		kinds := make([]string, 0, len(tables))
		for k := range tables {
			if k != "address" {
				kinds = append(kinds, k)
			}
		}
		sort.Strings(kinds)
		for _, kn := range kinds {
			sline := locate(data, toml.Key{"host", hn, kn})
			kind := lookupKind(kn)
			if kind == nil {
				return nil, fail(sline, "host %q: unknown service %q (known: %s)", hn, kn, strings.Join(KindNames(), ", "))
			}
			cfg := kind.newConfig()
			if err := md.PrimitiveDecode(tables[kn], cfg); err != nil {
				return nil, tomlError(name, err)
			}
			if err := kind.validate(cfg); err != nil {
				var fe *fieldError
				if errors.As(err, &fe) {
					sline = locate(data, toml.Key{"host", hn, kn, fe.field})
				}
				return nil, fail(sline, "host %q, %s: %v", hn, kn, err)
			}
			h.Services = append(h.Services, &ServiceConfig{Kind: kind, Config: cfg, line: sline})
		}
		f.Hosts = append(f.Hosts, h)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fail(locate(data, und[0]), "unknown setting %q", und[0].String())
	}
	if len(f.Hosts) == 0 {
		return nil, fail(0, "no hosts: a lab file has at least one [host.NAME] table")
	}
	// Hosts in address order: the order they are started and listed in.
	sort.Slice(f.Hosts, func(i, j int) bool { return f.Hosts[i].Address.Less(f.Hosts[j].Address) })
	for i := 1; i < len(f.Hosts); i++ {
		if a, b := f.Hosts[i-1], f.Hosts[i]; a.Address == b.Address {
			first, second := a, b
			if first.line > second.line {
				first, second = second, first
			}
			return nil, fail(locate(data, toml.Key{"host", second.Name, "address"}), "host %q has the address %s of host %q (line %d)", second.Name, second.Address, first.Name, first.line)
		}
	}
	return f, nil
}

// tomlError turns an error of the TOML decoder into a *FileError.
func tomlError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = fmt.Sprintf("%s: %s", pe.LastKey, msg)
		}
		return &FileError{File: name, Line: pe.Position.Line, Msg: msg}
	}
	// Type mismatches come as plain errors: "toml: line 4 (last key "k"): …".
	if m := tomlLineError.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FileError{File: name, Line: line, Msg: m[2] + ": " + m[3]}
	}
	return &FileError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

var tomlLineError = regexp.MustCompile(`^toml: line (\d+) \(last key "(.*?)"\): (.*)$`)

// locate returns the line of the file that defines key, as a table header
// or as a "key = value" line, or 0 if it cannot tell. The TOML decoder does
// not report where a value came from once it decoded well, and a lab file
// is simple enough for this line-by-line reading.
func locate(data []byte, key toml.Key) int {
	want := key.String()
	var table string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "["):
			h := strings.Trim(stripComment(l), "[] \t")
			table = normalizeKey(h)
			if table == want {
				return line
			}
		case strings.Contains(l, "="):
			k := normalizeKey(l[:strings.Index(l, "=")])
			full := k
			if table != "" {
				full = table + "." + k
			}
			if full == want || strings.HasPrefix(full, want+".") {
				return line
			}
		}
	}
	return 0
}

func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

// normalizeKey removes spaces and quotes around the parts of a dotted key.
func normalizeKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
