package origin

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAccessLogBuffered: lines from many goroutines all arrive whole,
// within the flush interval, and at close.
func TestAccessLogBuffered(t *testing.T) {
	out := &syncBuf{}
	l := newAccessLog(out)
	r := httptest.NewRequest("GET", "/x", nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 { // more than one buffer's worth
				l.log(r, "", 200, 10, time.Now())
			}
		})
	}
	wg.Wait()
	l.log(r, "", 404, 0, time.Now())
	for i := 0; i < 400 && !strings.Contains(out.String(), `" 404 - `); i++ {
		time.Sleep(10 * time.Millisecond) // the timer writes it within a second
	}
	l.close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4001 {
		t.Fatalf("%d lines, want 4001", len(lines))
	}
	for _, ln := range lines {
		if !strings.HasPrefix(ln, "192.0.2.1 - - [") || !strings.Contains(ln, `"GET /x HTTP/1.1"`) {
			t.Fatalf("line %q", ln)
		}
	}
	if !strings.Contains(lines[4000], `" 404 - `) {
		t.Errorf("last line %q", lines[4000])
	}
}
