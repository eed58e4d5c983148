package storage

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPutOpenDelete(t *testing.T) {
	l, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := l.Put("results/job.png", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Bytes != 5 || w.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("got %+v", w)
	}
	if _, err := l.Put("results/job.png", strings.NewReader("bye")); err != nil {
		t.Fatal(err)
	}
	f, err := l.Open("results/job.png")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "bye" {
		t.Fatalf("read %q", b)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := l.Delete("results/job.png"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Open("results/job.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestRejectsUnsafeKeys(t *testing.T) {
	l, _ := NewLocal(t.TempDir())
	for _, k := range []string{"../etc/passwd", "results/../../x", "/abs", "results/a/b", "", "results/.."} {
		if _, err := l.Put(k, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
	}
}
