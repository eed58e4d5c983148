package activities_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/storage"
	"hires/internal/token"
	"hires/internal/urlguard"
)

// noisy returns a w x h image of random pixels, which compresses badly, so
// that its encoding is a predictable few bytes per pixel.
func noisy(w, h int) *image.RGBA {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
		}
	}
	return img
}

func encodePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, noisy(w, h)))
	return buf.Bytes()
}

func encodeJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, noisy(w, h), &jpeg.Options{Quality: 90}))
	return buf.Bytes()
}

func encodeGIF(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, gif.Encode(&buf, noisy(w, h), nil))
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// resultServer serves one response and counts the requests it receives.
type resultServer struct {
	*httptest.Server
	requests atomic.Int32
}

func newResultServer(t *testing.T, h http.HandlerFunc) *resultServer {
	t.Helper()
	rs := &resultServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.requests.Add(1)
		h(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

// serve answers with body, declaring its length or (chunked) not.
func serve(status int, contentType string, body []byte, withLength bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(status)
			w.Write(body) //nolint:errcheck
			return
		}
		// Flushing before the body commits the headers without a length:
		// the client sees ContentLength -1 and must count for itself.
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
		for len(body) > 0 {
			n := min(len(body), 1000)
			w.Write(body[:n]) //nolint:errcheck
			w.(http.Flusher).Flush()
			body = body[n:]
		}
	}
}

// newActivities returns Activities storing under a fresh directory and
// fetching only from the given host:port entries.
func newActivities(t *testing.T, maxBytes int64, allowed ...string) (*activities.Activities, string) {
	t.Helper()
	dir := t.TempDir()
	files, err := storage.NewLocal(dir)
	require.NoError(t, err)
	policy, err := urlguard.New(allowed)
	require.NoError(t, err)
	return &activities.Activities{
		Store:          newRecords(""),
		Files:          files,
		ResultClient:   policy.HTTPClient(10 * time.Second),
		MaxResultBytes: maxBytes,
	}, dir
}

// hostOf returns the host:port of an httptest server's URL.
func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return u.Host
}

// storeResult runs the activity the way a worker would.
func storeResult(t *testing.T, acts *activities.Activities, in activities.StoreResultInput) (activities.StoredResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.StoreResult, in)
	var res activities.StoredResult
	if err == nil {
		// What the job record was given.
		rec := acts.Store.(*records)
		require.NotEmpty(t, rec.completed)
		c := rec.completed[len(rec.completed)-1]
		require.Equal(t, in.JobID, c.JobID)
		require.Len(t, c.DownloadToken, token.DownloadLength)
		res = activities.StoredResult{Key: c.ResultKey, ContentType: c.ContentType, Bytes: c.Bytes,
			SHA256: c.SHA256, Width: c.Width, Height: c.Height}
	}
	return res, err
}

// filesIn lists every file under dir (temporary ones included), relative, with slashes.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

type errKind int

const (
	stored       errKind = iota
	invalid              // non-retryable ResultInvalid
	gone                 // non-retryable ResultGone
	retryable            // may be retried
	notRequested         // refused before any request reached the server
)

func requireAppError(t *testing.T, err error, typ string) {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an ApplicationError, got %T: %v", err, err)
	assert.Equal(t, typ, appErr.Type(), "error: %v", err)
	assert.True(t, appErr.NonRetryable(), "%s must not be retried: %v", typ, err)
}

func requireRetryable(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		assert.False(t, appErr.NonRetryable(), "want a retryable error, got %v", err)
		assert.NotEqual(t, activities.ErrTypeResultInvalid, appErr.Type())
		assert.NotEqual(t, activities.ErrTypeResultGone, appErr.Type())
	}
}

func TestStoreResult(t *testing.T) {
	const w, h = 160, 120
	pngBody := encodePNG(t, w, h)
	jpegBody := encodeJPEG(t, w, h)
	require.Greater(t, len(pngBody), 4096, "test image must be larger than one buffer")

	tests := []struct {
		name     string
		handler  http.HandlerFunc
		maxBytes int64 // 0: 10 MiB
		wantW    int   // expected size; 0: w, h
		wantH    int
		kind     errKind
		// for stored results
		body        []byte
		contentType string
		ext         string
	}{
		{name: "PNG", handler: serve(200, "image/png", pngBody, true),
			body: pngBody, contentType: "image/png", ext: "png"},
		{name: "JPEG", handler: serve(200, "image/jpeg", jpegBody, true),
			body: jpegBody, contentType: "image/jpeg", ext: "jpg"},
		{name: "PNG without Content-Length", handler: serve(200, "image/png", pngBody, false),
			body: pngBody, contentType: "image/png", ext: "png"},
		{name: "type is sniffed, not trusted", handler: serve(200, "text/plain", jpegBody, true),
			body: jpegBody, contentType: "image/jpeg", ext: "jpg"},
		{name: "PNG exactly at the limit", handler: serve(200, "image/png", pngBody, false),
			maxBytes: int64(len(pngBody)),
			body:     pngBody, contentType: "image/png", ext: "png"},
		{name: "upscaler rounding within tolerance", handler: serve(200, "image/png", pngBody, true),
			wantW: w + 2, wantH: h - 2,
			body: pngBody, contentType: "image/png", ext: "png"},

		{name: "wrong width", handler: serve(200, "image/png", pngBody, true), wantW: w + 3, wantH: h, kind: invalid},
		{name: "wrong height", handler: serve(200, "image/png", pngBody, true), wantW: w, wantH: 4 * h, kind: invalid},
		{name: "JPEG of the input size, not upscaled", handler: serve(200, "image/jpeg", jpegBody, true), wantW: 4 * w, wantH: 4 * h, kind: invalid},
		{name: "plain text", handler: serve(200, "image/png", []byte("sorry, not an image"), true), kind: invalid},
		{name: "HTML error page", handler: serve(200, "text/html",
			[]byte("<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>"), true), kind: invalid},
		{name: "HTML without Content-Length", handler: serve(200, "image/png",
			[]byte("<html><body>"+strings.Repeat("x", 20000)+"</body></html>"), false), kind: invalid},
		{name: "empty body", handler: serve(200, "image/png", nil, true), kind: invalid},
		{name: "GIF", handler: serve(200, "image/gif", encodeGIF(t, w, h), true), kind: invalid},
		{name: "PNG cut inside its header", handler: serve(200, "image/png", pngBody[:20], true), kind: invalid},
		{name: "PNG cut after its header", handler: serve(200, "image/png", pngBody[:len(pngBody)/2], true), kind: invalid},
		{name: "JPEG cut short", handler: serve(200, "image/jpeg", jpegBody[:len(jpegBody)-10], true), kind: invalid},
		{name: "over the limit with Content-Length", handler: serve(200, "image/png", pngBody, true),
			maxBytes: int64(len(pngBody)) - 1, kind: invalid},
		{name: "over the limit without Content-Length", handler: serve(200, "image/png", pngBody, false),
			maxBytes: int64(len(pngBody)) - 1, kind: invalid},
		{name: "far over the limit without Content-Length", handler: serve(200, "image/png", pngBody, false),
			maxBytes: 1000, kind: invalid},
		{name: "403", handler: serve(403, "text/plain", []byte("AccessDenied"), true), kind: invalid},

		{name: "404", handler: serve(404, "text/plain", []byte("not found"), true), kind: gone},
		{name: "410", handler: serve(410, "text/plain", []byte("gone"), true), kind: gone},

		{name: "500", handler: serve(500, "text/plain", []byte("oops"), true), kind: retryable},
		{name: "503", handler: serve(503, "text/plain", []byte("busy"), true), kind: retryable},
		{name: "429", handler: serve(429, "text/plain", []byte("slow down"), true), kind: retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newResultServer(t, tt.handler)
			maxBytes := tt.maxBytes
			if maxBytes == 0 {
				maxBytes = 10 << 20
			}
			acts, dir := newActivities(t, maxBytes, hostOf(t, srv.URL))
			wantW, wantH := w, h
			if tt.wantW != 0 {
				wantW, wantH = tt.wantW, tt.wantH
			}
			jobID := uuid.NewString()
			res, err := storeResult(t, acts, activities.StoreResultInput{
				JobID: jobID, ResultURL: srv.URL + "/outputs/" + jobID + "?sig=abc",
				ExpectedWidth: wantW, ExpectedHeight: wantH,
			})
			assert.Equal(t, int32(1), srv.requests.Load(), "requests received")

			switch tt.kind {
			case stored:
				require.NoError(t, err)
				key := "results/" + jobID + "." + tt.ext
				assert.Equal(t, activities.StoredResult{
					Key: key, ContentType: tt.contentType, Bytes: int64(len(tt.body)),
					SHA256: sha(tt.body), Width: w, Height: h,
				}, res)
				assert.Equal(t, []string{key}, filesIn(t, dir))
				got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(tt.body, got), "stored bytes differ from the served ones")
				f, err := acts.Files.Open(t.Context(), key)
				require.NoError(t, err)
				f.Close()
				return
			case invalid:
				requireAppError(t, err, activities.ErrTypeResultInvalid)
			case gone:
				requireAppError(t, err, activities.ErrTypeResultGone)
			case retryable:
				requireRetryable(t, err)
			}
			assert.Empty(t, filesIn(t, dir), "nothing may be left behind")
		})
	}
}

func TestStoreResultOnlyFetchesAllowedHosts(t *testing.T) {
	const w, h = 40, 30
	pngBody := encodePNG(t, w, h)

	tests := []struct {
		name string
		// url builds the result URL from the allowed server and another one.
		url func(allowed, other *resultServer) string
		// redirect, if set, makes the allowed server redirect there.
		redirect func(allowed, other *resultServer) string
		// Requests each server must have received.
		wantAllowed, wantOther int32
	}{
		{
			name:        "another port on the same address",
			url:         func(_, other *resultServer) string { return other.URL + "/a.png" },
			wantAllowed: 0, wantOther: 0,
		},
		{
			name: "the allowed server under another name",
			url: func(allowed, _ *resultServer) string {
				return strings.Replace(allowed.URL, "127.0.0.1", "localhost", 1) + "/a.png"
			},
			wantAllowed: 0, wantOther: 0,
		},
		{
			name: "credentials in the URL",
			url: func(allowed, _ *resultServer) string {
				return strings.Replace(allowed.URL, "http://", "http://user:pw@", 1) + "/a.png"
			},
			wantAllowed: 0, wantOther: 0,
		},
		{
			name:        "redirect to a host not on the list",
			url:         func(allowed, _ *resultServer) string { return allowed.URL + "/redirect" },
			redirect:    func(_, other *resultServer) string { return other.URL + "/a.png" },
			wantAllowed: 1, wantOther: 0,
		},
		{
			name: "not http",
			url: func(allowed, _ *resultServer) string {
				return strings.Replace(allowed.URL, "http://", "file://", 1) + "/etc/passwd"
			},
			wantAllowed: 0, wantOther: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := newResultServer(t, serve(200, "image/png", pngBody, true))
			var allowed *resultServer
			allowed = newResultServer(t, func(rw http.ResponseWriter, r *http.Request) {
				if tt.redirect != nil {
					http.Redirect(rw, r, tt.redirect(allowed, other), http.StatusFound)
					return
				}
				serve(200, "image/png", pngBody, true)(rw, r)
			})
			acts, dir := newActivities(t, 10<<20, hostOf(t, allowed.URL))

			_, err := storeResult(t, acts, activities.StoreResultInput{
				JobID: uuid.NewString(), ResultURL: tt.url(allowed, other), ExpectedWidth: w, ExpectedHeight: h,
			})
			require.Error(t, err)
			assert.Equal(t, tt.wantAllowed, allowed.requests.Load(), "requests to the allowed server")
			assert.Equal(t, tt.wantOther, other.requests.Load(), "requests to the server not on the list")
			assert.Empty(t, filesIn(t, dir))
		})
	}

	// The same fetch from an allowed URL succeeds, so the refusals above are
	// the policy's doing.
	t.Run("control: allowed URL", func(t *testing.T) {
		srv := newResultServer(t, serve(200, "image/png", pngBody, true))
		acts, _ := newActivities(t, 10<<20, hostOf(t, srv.URL))
		res, err := storeResult(t, acts, activities.StoreResultInput{
			JobID: uuid.NewString(), ResultURL: srv.URL + "/a.png", ExpectedWidth: w, ExpectedHeight: h,
		})
		require.NoError(t, err)
		assert.Equal(t, sha(pngBody), res.SHA256)
		assert.Equal(t, int32(1), srv.requests.Load())
	})
}

// A retry after the job was completed (its answer lost) fetches nothing
// and changes nothing; one after a crash before the record was written
// fetches again and replaces the earlier file under the same key.
func TestStoreResultRetries(t *testing.T) {
	const w, h = 40, 30
	first, second := encodePNG(t, w, h), encodePNG(t, w+1, h)
	var calls atomic.Int32
	srv := newResultServer(t, func(rw http.ResponseWriter, r *http.Request) {
		body := first
		if calls.Add(1) > 1 {
			body = second
		}
		serve(200, "image/png", body, true)(rw, r)
	})
	acts, dir := newActivities(t, 10<<20, hostOf(t, srv.URL))
	rec := acts.Store.(*records)
	in := activities.StoreResultInput{JobID: uuid.NewString(), ResultURL: srv.URL + "/a.png", ExpectedWidth: w, ExpectedHeight: h}

	res1, err := storeResult(t, acts, in)
	require.NoError(t, err)
	_, err = storeResult(t, acts, in)
	require.NoError(t, err)
	assert.Equal(t, int32(1), calls.Load(), "completed: not fetched again")
	assert.Len(t, rec.completed, 1, "completed once, with one token")

	rec.job.Status = jobs.StatusProcessing // as if the first try died before its record
	res2, err := storeResult(t, acts, in)
	require.NoError(t, err)
	assert.Equal(t, res1.Key, res2.Key)
	assert.Equal(t, sha(second), res2.SHA256)
	assert.Equal(t, w+1, res2.Width)
	assert.Equal(t, []string{res1.Key}, filesIn(t, dir))
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(res2.Key)))
	require.NoError(t, err)
	assert.Equal(t, sha(second), sha(got))
}
