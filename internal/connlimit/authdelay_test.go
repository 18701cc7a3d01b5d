package connlimit

import (
	"testing"
	"time"
)

func TestAuthDelayDoublesPerSourceAndForgetsOnSuccess(t *testing.T) {
	a := NewAuthDelay(10*time.Millisecond, 50*time.Millisecond, time.Hour)
	var got []time.Duration
	for range 5 {
		got = append(got, a.Failed(tcp("192.0.2.1:1000")))
	}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	if d := a.Failed(tcp("192.0.2.2:1000")); d != 10*time.Millisecond {
		t.Errorf("another address waits %v, want the base 10ms", d)
	}
	a.Succeeded(tcp("192.0.2.1:2000"))
	if d := a.Failed(tcp("192.0.2.1:1000")); d != 10*time.Millisecond {
		t.Errorf("after a success: %v, want the base 10ms", d)
	}
}

func TestAuthDelayWindowExpires(t *testing.T) {
	a := NewAuthDelay(time.Millisecond, time.Second, time.Nanosecond)
	a.Failed(tcp("192.0.2.1:1"))
	time.Sleep(time.Millisecond)
	if d := a.Failed(tcp("192.0.2.1:1")); d != time.Millisecond {
		t.Errorf("after the window: %v, want the base", d)
	}
}
