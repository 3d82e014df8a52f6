package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteSetsModeAndReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader that opened the old file keeps reading the old content: the new one is a new inode.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(old); string(got) != "old" {
		t.Fatalf("an open reader saw %q, want the old content", got)
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Fatalf("file holds %q", got)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", info.Mode().Perm())
	}
	assertOnlyFiles(t, dir, "key.pem")
}

func TestWriteFailureLeavesTargetAndNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "busy")
	if err := os.Mkdir(target, 0o755); err != nil { // renaming a file over a directory fails
		t.Fatal(err)
	}
	if err := Write(target, []byte("x"), 0o644); err == nil {
		t.Fatal("want an error")
	}
	assertOnlyFiles(t, dir, "busy")
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.pem")
	if wrote, err := WriteIfChanged(path, []byte("a"), 0o644); err != nil || !wrote {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	if wrote, err := WriteIfChanged(path, []byte("a"), 0o644); err != nil || wrote {
		t.Fatalf("same content: %v %v", wrote, err)
	}
	if wrote, err := WriteIfChanged(path, []byte("a"), 0o600); err != nil || !wrote {
		t.Fatalf("new mode: %v %v", wrote, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode().Perm())
	}
	if wrote, err := WriteIfChanged(path, []byte("b"), 0o600); err != nil || !wrote {
		t.Fatalf("new content: %v %v", wrote, err)
	}
}

func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		t.Fatalf("directory holds %v, want %v", got, names)
	}
	for i, e := range entries {
		if e.Name() != names[i] {
			t.Fatalf("directory holds %s, want %v", e.Name(), names)
		}
	}
}
