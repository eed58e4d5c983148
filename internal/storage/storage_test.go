package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// s3Backend makes an S3 store on an empty bucket of a real S3-compatible
// server; it is set by the integration build's TestMain
// (s3_integration_test.go) and nil otherwise.
var s3Backend func(t *testing.T) Store

type backend struct {
	name string
	new  func(t *testing.T) Store
}

func backends() []backend {
	bs := []backend{{"local", func(t *testing.T) Store {
		l, err := NewLocal(t.TempDir())
		require.NoError(t, err)
		return l
	}}}
	if s3Backend != nil {
		bs = append(bs, backend{"s3", s3Backend})
	}
	return bs
}

// eachBackend runs fn once per backend, each on a fresh, empty store.
func eachBackend(t *testing.T, fn func(t *testing.T, st Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.new(t)) })
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// randomBytes is deterministic noise, so failures are reproducible.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides Len, Seek and ReadAt, so a backend cannot learn the size
// up front: the upload has to stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, st Store, key string, body []byte) Written {
	t.Helper()
	w, err := st.Put(t.Context(), key, onlyReader{bytes.NewReader(body)})
	require.NoError(t, err)
	return w
}

func open(t *testing.T, st Store, key string) Object {
	t.Helper()
	o, err := st.Open(t.Context(), key)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func TestStoragePutOpen(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		sha  string
	}{
		{name: "empty", body: []byte{}, sha: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{name: "hello", body: []byte("hello"), sha: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{name: "1 MiB", body: randomBytes(1<<20, 1)},
	}
	eachBackend(t, func(t *testing.T, st Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key := "results/" + strings.ReplaceAll(tt.name, " ", "_") + ".png"
				before := time.Now()
				w := put(t, st, key, tt.body)
				want := tt.sha
				if want == "" {
					want = sum(tt.body)
				}
				assert.Equal(t, Written{Bytes: int64(len(tt.body)), SHA256: want}, w)

				o := open(t, st, key)
				assert.Equal(t, int64(len(tt.body)), o.Size())
				// S3 keeps whole seconds; allow for that and clock skew.
				assert.WithinRange(t, o.ModTime(), before.Add(-2*time.Second), time.Now().Add(2*time.Second))
				got, err := io.ReadAll(o)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(tt.body, got), "read back %d bytes, want %d", len(got), len(tt.body))
			})
		}
	})
}

func TestStorageReadAtSeek(t *testing.T) {
	body := randomBytes(100_000, 2)
	size := int64(len(body))
	eachBackend(t, func(t *testing.T, st Store) {
		put(t, st, "results/seek.png", body)
		o := open(t, st, "results/seek.png")

		t.Run("ReadAt", func(t *testing.T) {
			for _, tt := range []struct {
				name    string
				off     int64
				n       int
				wantN   int
				wantEOF bool
			}{
				{name: "head", off: 0, n: 512, wantN: 512},
				{name: "middle", off: 4096, n: 10_000, wantN: 10_000},
				{name: "tail", off: size - 12, n: 12, wantN: 12},
				{name: "across the end", off: size - 5, n: 12, wantN: 5, wantEOF: true},
				{name: "at the end", off: size, n: 4, wantN: 0, wantEOF: true},
				{name: "past the end", off: size + 100, n: 4, wantN: 0, wantEOF: true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					p := make([]byte, tt.n)
					n, err := o.ReadAt(p, tt.off)
					require.Equal(t, tt.wantN, n)
					if tt.wantEOF {
						require.ErrorIs(t, err, io.EOF)
					} else {
						// Stricter than io.ReaderAt, which allows EOF with a
						// full read at the end: callers check err alone.
						require.NoError(t, err)
					}
					if n > 0 {
						assert.True(t, bytes.Equal(body[tt.off:tt.off+int64(n)], p[:n]))
					}
				})
			}
		})

		t.Run("Seek and Read", func(t *testing.T) {
			for _, tt := range []struct {
				name   string
				off    int64
				whence int
				want   int64 // position after Seek
			}{
				{name: "start", off: 1000, whence: io.SeekStart, want: 1000},
				{name: "current", off: 24, whence: io.SeekCurrent, want: 1024 + 16}, // after reading 16 at 1000
				{name: "end", off: -12, whence: io.SeekEnd, want: size - 12},
				{name: "back to start", off: 0, whence: io.SeekStart, want: 0},
			} {
				pos, err := o.Seek(tt.off, tt.whence)
				require.NoError(t, err, tt.name)
				require.Equal(t, tt.want, pos, tt.name)
				p := make([]byte, 16)
				n, err := io.ReadFull(o, p)
				if pos+16 > size {
					require.ErrorIs(t, err, io.ErrUnexpectedEOF, tt.name)
				} else {
					require.NoError(t, err, tt.name)
				}
				assert.True(t, bytes.Equal(body[pos:pos+int64(n)], p[:n]), tt.name)
			}
		})

		t.Run("Read then ReadAt of the tail", func(t *testing.T) {
			// What the result check does: decode the header, then look at the end.
			fresh := open(t, st, "results/seek.png")
			head := make([]byte, 100)
			_, err := io.ReadFull(fresh, head)
			require.NoError(t, err)
			tail := make([]byte, 12)
			n, err := fresh.ReadAt(tail, fresh.Size()-12)
			require.NoError(t, err)
			require.Equal(t, 12, n)
			assert.Equal(t, body[size-12:], tail)
		})

		t.Run("ReadAt leaves the Read position alone", func(t *testing.T) {
			_, err := o.Seek(50, io.SeekStart)
			require.NoError(t, err)
			p := make([]byte, 10)
			_, err = o.ReadAt(p, 90_000)
			require.NoError(t, err)
			_, err = io.ReadFull(o, p)
			require.NoError(t, err)
			assert.Equal(t, body[50:60], p)
		})

		t.Run("ServeContent with a Range", func(t *testing.T) {
			// What the download handler does with an Object.
			fresh := open(t, st, "results/seek.png")
			req := httptest.NewRequest(http.MethodGet, "/download", nil)
			req.Header.Set("Range", "bytes=99990-")
			rec := httptest.NewRecorder()
			http.ServeContent(rec, req, "seek.png", fresh.ModTime(), fresh)
			assert.Equal(t, http.StatusPartialContent, rec.Code)
			assert.Equal(t, "bytes 99990-99999/100000", rec.Header().Get("Content-Range"))
			assert.Equal(t, body[99_990:], rec.Body.Bytes())

			whole := open(t, st, "results/seek.png")
			rec = httptest.NewRecorder()
			http.ServeContent(rec, httptest.NewRequest(http.MethodGet, "/download", nil), "seek.png", whole.ModTime(), whole)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.True(t, bytes.Equal(body, rec.Body.Bytes()))
		})
	})
}

func TestStorageOverwrite(t *testing.T) {
	first, second := randomBytes(300_000, 3), []byte("shorter")
	eachBackend(t, func(t *testing.T, st Store) {
		put(t, st, "results/job.png", first)
		w := put(t, st, "results/job.png", second)
		assert.Equal(t, Written{Bytes: 7, SHA256: sum(second)}, w)
		o := open(t, st, "results/job.png")
		assert.Equal(t, int64(7), o.Size())
		got, err := io.ReadAll(o)
		require.NoError(t, err)
		assert.Equal(t, second, got)
	})
}

// errReader yields some bytes, then fails, as a broken download would.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestStorageFailedPutKeepsPrevious(t *testing.T) {
	old := []byte("the previous result")
	// io.ErrUnexpectedEOF is what a cut-off HTTP body returns.
	for _, broken := range []error{errors.New("connection reset"), io.ErrUnexpectedEOF} {
		t.Run(broken.Error(), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, st Store) {
				put(t, st, "results/job.png", old)
				_, err := st.Put(t.Context(), "results/job.png", &errReader{r: bytes.NewReader(randomBytes(1<<20, 4)), err: broken})
				require.ErrorIs(t, err, broken)
				_, err = st.Put(t.Context(), "results/new.png", &errReader{r: strings.NewReader("partial"), err: broken})
				require.ErrorIs(t, err, broken)

				got, err := io.ReadAll(open(t, st, "results/job.png"))
				require.NoError(t, err)
				assert.Equal(t, old, got, "a failed Put leaves the previous object")
				_, err = st.Open(t.Context(), "results/new.png")
				require.ErrorIs(t, err, ErrNotFound, "a failed Put leaves no object")
			})
		})
	}
}

func TestStorageCancelledContext(t *testing.T) {
	eachBackend(t, func(t *testing.T, st Store) {
		put(t, st, "results/job.png", []byte("x"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := st.Put(ctx, "results/other.png", strings.NewReader("y"))
		require.ErrorIs(t, err, context.Canceled)
		_, err = st.Open(ctx, "results/job.png")
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, st.Delete(ctx, "results/job.png"), context.Canceled)
		_, err = st.Open(t.Context(), "results/other.png")
		require.ErrorIs(t, err, ErrNotFound)
	})
}

func TestStorageDeleteAndNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		_, err := st.Open(ctx, "results/never.png")
		require.ErrorIs(t, err, ErrNotFound)
		assert.Contains(t, err.Error(), "results/never.png")
		require.NoError(t, st.Delete(ctx, "results/never.png"), "deleting a missing key")

		put(t, st, "results/job.png", []byte("hello"))
		put(t, st, "results/keep.png", []byte("kept"))
		for range 2 { // idempotent
			require.NoError(t, st.Delete(ctx, "results/job.png"))
		}
		_, err = st.Open(ctx, "results/job.png")
		require.ErrorIs(t, err, ErrNotFound)
		got, err := io.ReadAll(open(t, st, "results/keep.png"))
		require.NoError(t, err)
		assert.Equal(t, "kept", string(got), "other keys untouched")
	})
}

func TestStorageKeyValidation(t *testing.T) {
	bad := []string{
		"", "results", "results/", "/abs", "../etc/passwd", "results/../../x", "results/a/b",
		"results/..", "results/.", "Results/x.png", "results/x y.png", "results/x\x00.png",
		"results/" + strings.Repeat("a", 201), "a/b/c", `results\x.png`, "results/ü.png",
	}
	good := []string{"results/job.png", "results/0b7c-4e1f_a.v2.webp", "tmp/.hidden", "results/" + strings.Repeat("a", 200)}
	for _, k := range bad {
		assert.Error(t, ValidateKey(k), "ValidateKey(%q)", k)
	}
	for _, k := range good {
		assert.NoError(t, ValidateKey(k), "ValidateKey(%q)", k)
	}
	eachBackend(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		for _, k := range bad {
			_, err := st.Put(ctx, k, strings.NewReader("x"))
			require.ErrorContains(t, err, "invalid key", "Put(%q)", k)
			_, err = st.Open(ctx, k)
			require.ErrorContains(t, err, "invalid key", "Open(%q)", k)
			require.NotErrorIs(t, err, ErrNotFound)
			require.ErrorContains(t, st.Delete(ctx, k), "invalid key", "Delete(%q)", k)
		}
		for _, k := range good {
			put(t, st, k, []byte(k))
			got, err := io.ReadAll(open(t, st, k))
			require.NoError(t, err)
			assert.Equal(t, k, string(got))
		}
	})
}

// A 20 MiB result streams in without its size being known, and reads back
// intact, including across the S3 backend's 16 MiB part boundary.
func TestStorageLargeStreamedPut(t *testing.T) {
	const size = 20 << 20
	body := randomBytes(size, 5)
	eachBackend(t, func(t *testing.T, st Store) {
		w := put(t, st, "results/large.png", body)
		assert.Equal(t, Written{Bytes: size, SHA256: sum(body)}, w)

		o := open(t, st, "results/large.png")
		require.Equal(t, int64(size), o.Size())
		h := sha256.New()
		n, err := io.Copy(h, o)
		require.NoError(t, err)
		assert.Equal(t, int64(size), n)
		assert.Equal(t, sum(body), hex.EncodeToString(h.Sum(nil)))

		p := make([]byte, 64)
		_, err = o.ReadAt(p, DefaultS3PartSize-32)
		require.NoError(t, err)
		assert.Equal(t, body[DefaultS3PartSize-32:DefaultS3PartSize+32], p)
	})
}

func TestStorageLocalLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir)
	require.NoError(t, err)
	put(t, l, "results/ok.png", []byte("ok"))
	_, err = l.Put(t.Context(), "results/bad.png", &errReader{r: strings.NewReader("partial"), err: errors.New("boom")})
	require.Error(t, err)
	entries, err := os.ReadDir(dir + "/results")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"ok.png"}, names)
}

func TestStorageNewSelectsBackend(t *testing.T) {
	dir := t.TempDir()
	st, err := New(Options{Dir: dir})
	require.NoError(t, err)
	assert.IsType(t, &Local{}, st)

	st, err = New(Options{Dir: dir, S3: S3Options{
		Endpoint: "http://127.0.0.1:9", Bucket: "hires-results", AccessKeyID: "AKID", SecretAccessKey: "s3cr3t-value",
	}})
	require.NoError(t, err)
	require.IsType(t, &S3{}, st)
	assert.Equal(t, "S3 bucket hires-results at http://127.0.0.1:9", st.(*S3).String())

	_, err = New(Options{})
	require.Error(t, err)
}
