package proxy

import (
	"strings"
	"testing"
)

func TestParseCacheControl(t *testing.T) {
	d := ParseCacheControl([]string{`max-age=60, no-cache="Set-Cookie, X-A", Private`, `s-maxage="30" ,max-age=5`})
	if d["max-age"] != "60" || d["no-cache"] != "Set-Cookie, X-A" || !d.Has("private") || d["s-maxage"] != "30" {
		t.Errorf("%v", d)
	}
	if v, ok, valid := d.Seconds("max-age"); !ok || !valid || v.Seconds() != 60 {
		t.Errorf("max-age %v %v %v", v, ok, valid)
	}
	if _, ok, valid := (Directives{"max-age": "-1"}).Seconds("max-age"); !ok || valid {
		t.Error("negative max-age accepted")
	}
	if v, _, _ := (Directives{"max-age": "99999999999999999999"}).Seconds("max-age"); v.Seconds() != maxDelta {
		t.Errorf("overflow: %v", v)
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a,b", private`, `s-maxage="1`, "=,=,", `a="\`, "max-age = 5 , no-store"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl([]string{s})
		if len(d) > 65 {
			t.Fatalf("%d directives", len(d))
		}
		for name := range d {
			if name == "" || name != strings.ToLower(name) {
				t.Fatalf("bad name %q", name)
			}
			d.Seconds(name)
		}
	})
}
