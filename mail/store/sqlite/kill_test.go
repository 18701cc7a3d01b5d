package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"appnet/mail/store"
	"appnet/mail/store/sqlite"
)

func killMsg(w, i int) []byte {
	return fmt.Appendf(nil, "Subject: kill %d.%d\r\n\r\n%s", w, i, bytes.Repeat([]byte{byte('a' + i%26), 0xe9, '\r', '\n'}, 200+i))
}

// TestKill9 kills a process with -9 while four goroutines in it append to
// one mailbox, and checks that every append it had reported committed is
// there after a reopen, byte for byte: what Append returned nil for is on
// disk, not in a buffer of the process.
func TestKill9(t *testing.T) {
	if path := os.Getenv("APPNET_KILL9_CHILD"); path != "" {
		kill9Child(path)
		return
	}
	path := filepath.Join(t.TempDir(), "mail.db")
	ctx := context.Background()
	b, err := sqlite.Open(ctx, path, store.Options{WeakPasswordHash: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddUser(ctx, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	b.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "APPNET_KILL9_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct{ w, i int }
	uids := map[store.UID]ack{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		var uid store.UID
		var a ack
		if _, err := fmt.Sscanf(sc.Text(), "ok %d %d %d", &uid, &a.w, &a.i); err != nil {
			continue
		}
		uids[uid] = a
		if len(uids) == 60 && !killed {
			cmd.Process.Kill() // SIGKILL, by its PID
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child ended before 60 appends (%d)", len(uids))
	}

	b, err = sqlite.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := b.OpenSession(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := s.Select(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for uid, a := range uids {
		m, err := mb.Fetch(ctx, uid)
		if err != nil {
			t.Fatalf("uid %d (%d.%d), reported committed: %v", uid, a.w, a.i, err)
		}
		if !bytes.Equal(m.Body, killMsg(a.w, a.i)) {
			t.Fatalf("uid %d differs", uid)
		}
	}
	st, _ := mb.Status(ctx)
	t.Logf("%d appends reported before and around the kill; %d messages in the store, UIDNEXT %d", len(uids), st.Messages, st.UIDNext)
	if r, err := s.Append(ctx, "INBOX", killMsg(9, 9), nil, time.Time{}); err != nil || r.UID < st.UIDNext {
		t.Errorf("append after the kill: %+v %v", r, err)
	}
}

func kill9Child(path string) {
	ctx := context.Background()
	b, err := sqlite.Open(ctx, path, store.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := b.OpenSession(ctx, "bob")
			if err != nil {
				return
			}
			for i := range 100000 { // killed long before
				r, err := s.Append(ctx, "INBOX", killMsg(w, i), nil, time.Time{})
				if err != nil {
					return
				}
				mu.Lock()
				fmt.Printf("ok %d %d %d\n", r.UID, w, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}
