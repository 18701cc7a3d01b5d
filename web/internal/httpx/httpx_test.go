package httpx

import (
	"net/http"
	"testing"
	"time"
)

func TestCombined(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.RemoteAddr = "127.0.0.9:4242"
	r.RequestURI = `/a"b\c` + "\n"
	r.Proto = "HTTP/1.1"
	r.Header.Set("User-Agent", "curl/8")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -5*3600))
	got := Combined(r, "al ice", 200, 17, at)
	want := `127.0.0.9 - al\x20ice [02/Jan/2026:03:04:05 -0500] "GET /a\"b\\c\x0a HTTP/1.1" 200 17 "-" "curl/8"` + "\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := Combined(r, "", 304, 0, at); got[:len("127.0.0.9 - - [")] != "127.0.0.9 - - [" || got[len(got)-len(`304 - "-" "curl/8"`)-1:] != `304 - "-" "curl/8"`+"\n" {
		t.Errorf("no user, no body: %q", got)
	}
}
