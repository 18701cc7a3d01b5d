package ftpwire

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"127,0,0,1,156,72", "127.0.0.1:40008"},
		{"192,168,1,2,0,21", "192.168.1.2:21"},
		{" 10, 0,0,1 ,255,255", "10.0.0.1:65535"},
		{"010,0,0,1,0,1", "10.0.0.1:1"},
		{"127,0,0,1,156", ""},
		{"127,0,0,1,156,72,1", ""},
		{"256,0,0,1,1,1", ""},
		{"127,0,0,-1,1,1", ""},
		{"127,0,0,1,1,1000", ""},
		{"127,0,0,1,1,", ""},
		{"a,b,c,d,e,f", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseHostPort(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseHostPort(%q) = %v, %v; want a syntax error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseHostPort(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	ap := netip.MustParseAddrPort("127.0.0.1:40008")
	if s := FormatHostPort(ap); s != "127,0,0,1,156,72" {
		t.Errorf("FormatHostPort = %q", s)
	}
	if s := FormatHostPort(netip.MustParseAddrPort("[::ffff:10.1.2.3]:21")); s != "10,1,2,3,0,21" {
		t.Errorf("FormatHostPort(mapped) = %q", s)
	}
	if s := FormatHostPort(netip.MustParseAddrPort("[::1]:21")); s != "" {
		t.Errorf("FormatHostPort(IPv6) = %q, want empty", s)
	}
}

func TestParsePASVReply(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Entering Passive Mode (127,0,0,1,156,72).", "127.0.0.1:40008"},
		{"Entering Passive Mode 127,0,0,1,156,72", "127.0.0.1:40008"},
		{"=127,0,0,1,156,72", "127.0.0.1:40008"},
		{"Passive 1,2 then (10,0,0,5,4,1)", "10.0.0.5:1025"},
		{"Entering Passive Mode (1270,0,0,1,156,72)", ""},
		{"Entering Passive Mode", ""},
	}
	for _, tt := range tests {
		got, err := ParsePASVReply(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParsePASVReply(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParsePASVReply(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	ap := netip.MustParseAddrPort("192.0.2.7:30001")
	if got, err := ParsePASVReply(FormatPASVReply(ap)); err != nil || got != ap {
		t.Errorf("PASV round trip: %v %v", got, err)
	}
}

func TestParseEPRT(t *testing.T) {
	tests := []struct {
		in, want string
		unknown  bool
	}{
		{"|1|132.235.1.2|6275|", "132.235.1.2:6275", false},
		{"|2|1080::8:800:200C:417A|5282|", "[1080::8:800:200c:417a]:5282", false},
		{"!2!::1!21!", "[::1]:21", false},
		{"|1|::1|21|", "", false},
		{"|2|127.0.0.1|21|", "", false},
		{"|3|127.0.0.1|21|", "", true},
		{"|1|127.0.0.1|0|", "", false},
		{"|1|127.0.0.1|65536|", "", false},
		{"|1|127.0.0.1|+21|", "", false},
		{"|1|127.0.0.1|21", "", false},
		{"|1|127.0.0.1|21|x", "", false},
		{"1|127.0.0.1|21|1", "", false},
		{"|2|fe80::1%eth0|21|", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ParseEPRT(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseEPRT(%q) = %v, want an error", tt.in, got)
			} else if tt.unknown != errors.Is(err, ErrUnknownNet) {
				t.Errorf("ParseEPRT(%q) error %v; unknown network %v", tt.in, err, tt.unknown)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseEPRT(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, s := range []string{"127.0.0.1:1", "[::1]:65535", "[2001:db8::1]:2121"} {
		ap := netip.MustParseAddrPort(s)
		if got, err := ParseEPRT(FormatEPRT(ap)); err != nil || got != ap {
			t.Errorf("EPRT round trip of %v: %q -> %v, %v", ap, FormatEPRT(ap), got, err)
		}
	}
	if s := FormatEPRT(netip.MustParseAddrPort("[::ffff:127.0.0.1]:21")); s != "|1|127.0.0.1|21|" {
		t.Errorf("FormatEPRT(mapped) = %q", s)
	}
}

func TestParseEPSVReply(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"Entering Extended Passive Mode (|||6446|)", 6446},
		{"Entering Extended Passive Mode (!!!6446!)", 6446},
		{"(x) then (|||21|).", 21},
		{"Entering Extended Passive Mode (|||0|)", 0},
		{"Entering Extended Passive Mode (|||65536|)", 0},
		{"Entering Extended Passive Mode (||6446|)", 0},
		{"Entering Extended Passive Mode (|||6446|", 0},
		{"Entering Extended Passive Mode (1112)", 0},
		{"(", 0},
	}
	for _, tt := range tests {
		got, err := ParseEPSVReply(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("ParseEPSVReply(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseEPSVReply(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if p, err := ParseEPSVReply(FormatEPSVReply(30000)); err != nil || p != 30000 {
		t.Errorf("EPSV round trip: %d %v", p, err)
	}
}
