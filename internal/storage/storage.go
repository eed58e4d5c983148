// Package storage keeps result images on the local disk under DATA_DIR.
// Writes are atomic (temp file, fsync, rename), so a crash never leaves a
// half-written file under a final name, and deletes are idempotent.
package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Local stores files in a directory.
type Local struct {
	dir string
}

// validKey keeps keys to a flat, predictable shape: no traversal possible.
var validKey = regexp.MustCompile(`^[a-z]+/[A-Za-z0-9._-]{1,200}$`)

// NewLocal creates dir if needed.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", abs, err)
	}
	return &Local{dir: abs}, nil
}

func (l *Local) path(key string) (string, error) {
	if !validKey.MatchString(key) || filepath.Base(key) == ".." {
		return "", fmt.Errorf("storage: invalid key %q", key)
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

// Written describes a stored file.
type Written struct {
	Bytes  int64
	SHA256 string
}

// Put writes r under key, replacing any previous content atomically.
func (l *Local) Put(key string, r io.Reader) (Written, error) {
	dst, err := l.path(key)
	if err != nil {
		return Written{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return Written{}, fmt.Errorf("storage: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".put-*")
	if err != nil {
		return Written{}, fmt.Errorf("storage: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Written{}, fmt.Errorf("storage: write %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Written{}, fmt.Errorf("storage: %w", err)
	}
	return Written{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ErrNotFound is returned by Open for a missing key.
var ErrNotFound = errors.New("storage: not found")

// Open opens key for reading; the caller closes it.
func (l *Local) Open(key string) (*os.File, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return f, nil
}

// Delete removes key; deleting a missing key is not an error.
func (l *Local) Delete(key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}
