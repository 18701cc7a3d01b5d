package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write replaces the contents whole, keeps the file's permissions, and
// leaves no temporary file behind, also when it fails.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, durable := range []bool{true, false} {
		if err := Write(path, []byte("first"), durable); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, []byte("second, longer"), durable); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != "second, longer" {
			t.Errorf("durable=%v: read %q, %v", durable, got, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("durable=%v: mode %v, %v; want 0600 kept", durable, fi.Mode().Perm(), err)
		}
		os.Remove(path)
	}
	if IsTemp("state") || IsTemp(".state") || !IsTemp(".state.tmp123") {
		t.Error("IsTemp tells Write's temporary files wrong")
	}
	// The target is a folder: the rename fails, and the temporary file goes.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("x"), true); err == nil {
		t.Error("writing over a non-empty folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in the folder: %v, want only sub", names)
	}
}
