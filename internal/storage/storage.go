// Package storage keeps result images, either on the local disk under
// DATA_DIR (Local) or in an S3-compatible bucket (S3). Both implement Store:
// a write is all or nothing (a crash or a failed upload never leaves a
// half-written object under its final key), and deletes are idempotent.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"time"

	"hires/internal/config"
)

// Store keeps files under keys such as "results/<job-id>.png".
type Store interface {
	// Put stores everything r yields under key, replacing any previous
	// content. The object appears whole or not at all.
	Put(ctx context.Context, key string, r io.Reader) (Written, error)
	// Open opens key for reading; the caller closes it. A missing key is
	// ErrNotFound (test with errors.Is).
	Open(ctx context.Context, key string) (Object, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Object is an open stored file. Reads may be sequential (Read, Seek) or
// at offsets (ReadAt); ReadAt does not move the Read position, and a ReadAt
// that fills its buffer returns a nil error, also at the end of the object.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	// Size is the object's length in bytes when it was opened.
	Size() int64
	// ModTime is when the object was last written.
	ModTime() time.Time
}

// Written describes a stored file.
type Written struct {
	Bytes  int64
	SHA256 string
}

// ErrNotFound is returned by Open for a missing key.
var ErrNotFound = errors.New("storage: not found")

// validKey keeps keys to a flat, predictable shape: no traversal possible,
// and the same names on disk and in a bucket.
var validKey = regexp.MustCompile(`^[a-z]+/[A-Za-z0-9._-]{1,200}$`)

// ValidateKey reports whether key has the shape every backend accepts:
// "<lowercase prefix>/<name>", the name of letters, digits, '.', '_' and
// '-', and neither "." nor "..".
func ValidateKey(key string) error {
	if !validKey.MatchString(key) {
		return fmt.Errorf("storage: invalid key %q", key)
	}
	if name := path.Base(key); name == "." || name == ".." {
		return fmt.Errorf("storage: invalid key %q", key)
	}
	return nil
}

// Options selects and configures a backend: S3 when S3.Bucket is set,
// Local in Dir otherwise.
type Options struct {
	Dir string
	S3  S3Options
}

// New builds the backend Options select. It does not contact the network.
func New(o Options) (Store, error) {
	if o.S3.Bucket != "" {
		return NewS3(o.S3)
	}
	if o.Dir == "" {
		return nil, errors.New("storage: no directory and no bucket configured")
	}
	return NewLocal(o.Dir)
}

// FromConfig builds the backend the configuration selects: S3 when
// S3_BUCKET is set, DATA_DIR otherwise.
func FromConfig(cfg config.Config) (Store, error) {
	st, err := New(Options{
		Dir: cfg.DataDir,
		S3: S3Options{
			Endpoint:        cfg.S3Endpoint,
			Bucket:          cfg.S3Bucket,
			Region:          cfg.S3Region,
			AccessKeyID:     cfg.S3AccessKeyID,
			SecretAccessKey: cfg.S3SecretAccessKey,
		},
	})
	if err != nil && cfg.S3Bucket != "" {
		return nil, fmt.Errorf("S3_* settings: %w", err)
	}
	return st, err
}

// Local stores files in a directory. Writes are atomic (temp file, fsync,
// rename).
type Local struct {
	dir string
}

var _ Store = (*Local)(nil)

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

// String names the backend for logs.
func (l *Local) String() string { return "local directory " + l.dir }

func (l *Local) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

// Put writes r under key, replacing any previous content atomically.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (Written, error) {
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
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx: ctx, r: r})
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

// Open opens key for reading; the caller closes it.
func (l *Local) Open(ctx context.Context, key string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", key, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: %w", err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: not a regular file", key)
	}
	return &localObject{f: f, size: info.Size(), modTime: info.ModTime()}, nil
}

// Delete removes key; deleting a missing key is not an error.
func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}

// localObject is an open file with the size and time it had when opened.
type localObject struct {
	f       *os.File
	size    int64
	modTime time.Time
}

func (o *localObject) Read(p []byte) (int, error)                { return o.f.Read(p) }
func (o *localObject) ReadAt(p []byte, off int64) (int, error)   { return o.f.ReadAt(p, off) }
func (o *localObject) Seek(off int64, whence int) (int64, error) { return o.f.Seek(off, whence) }
func (o *localObject) Close() error                              { return o.f.Close() }
func (o *localObject) Size() int64                               { return o.size }
func (o *localObject) ModTime() time.Time                        { return o.modTime }

// ctxReader stops a copy once ctx ends, so a cancelled caller does not keep
// a slow upload going.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
