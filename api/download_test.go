package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/store"
	"hires/internal/token"
)

// Download tokens of the fixture's jobs.
const (
	tokValid   = "s1Qj0jOqMyFYVgbnQWn1AAxcOeRmH50p24092KIgqmIR2G1MIPgkA1GuYMpZ0xjn" // completed, link open
	tokExpired = "eFTCypxlVBdg1qMrV1gIHnbN8OoIW0c3q4rvzWDYkqJ0g9tlqhv8lWozryRQN0Zk" // completed, expiry passed
	tokRevoked = "6iRVVPNjHoKAHeUCI80Qc59sHZncMPVTmIf17n1DSKtL7beGNrfpsSSfpYR3idBq" // completed, expiry recorded (file deleted)
	tokPending = "glbdQZKD8NxCVHfYv8vBVtdm3wk4bCvRJnjFgSzPz2mwWH0NKVTWzzOAbRXKOaPk" // processing, its file stored already
)

const resultSize = 5000

// resultMarker is in the served file and nowhere else: an answer that
// carries it has served (part of) the file.
const resultMarker = "HIRES-RESULT-MARKER"

// downloadFixture is an application with four jobs holding the tokens
// above; only tokValid's file may ever be served. It returns the file.
func downloadFixture(t testing.TB, cfg config.Config) (*testApp, []byte) {
	t.Helper()
	content := make([]byte, resultSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(rng.UintN(256))
	}
	copy(content[:8], "\x89PNG\r\n\x1a\n")
	copy(content[1000:], resultMarker)
	copy(content[resultSize-len(resultMarker):], resultMarker)

	a := newTestApp(t, cfg)
	now := a.clock.now()
	sum := sha256.Sum256(content)
	job := func(id, tok string, status jobs.Status, expires time.Time) store.Job {
		key, ct, sha := "results/"+id+".png", "image/png", hex.EncodeToString(sum[:])
		j := store.Job{ID: id, Status: status, Resolution: jobs.Resolution4x, DownloadToken: &tok, DownloadExpiresAt: &expires}
		// The unfinished job has its file too (results are stored before
		// the job completes): only the status keeps it from being served.
		{
			j.ResultKey, j.ResultContentType, j.ResultSHA256 = &key, &ct, &sha
			if _, err := a.files.Put(context.Background(), key, bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
		}
		return j
	}
	revoked := job("33333333-3333-4333-8333-333333333333", tokRevoked, jobs.StatusCompleted, now.Add(time.Hour))
	expiredAt := now.Add(-time.Minute)
	revoked.DownloadExpiredAt = &expiredAt
	for _, j := range []store.Job{
		job("11111111-1111-4111-8111-111111111111", tokValid, jobs.StatusCompleted, now.Add(time.Hour)),
		job("22222222-2222-4222-8222-222222222222", tokExpired, jobs.StatusCompleted, now.Add(-time.Second)),
		revoked,
		job("44444444-4444-4444-8444-444444444444", tokPending, jobs.StatusProcessing, now.Add(time.Hour)),
	} {
		a.store.jobs[j.ID] = j
	}
	return a, content
}

const validJobID = "11111111-1111-4111-8111-111111111111"

func errorCode(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error answer %d is not JSON: %q", rec.Code, rec.Body.String())
	}
	return body.Error.Code
}

func TestDownloadRoute(t *testing.T) {
	valid := "/v1/downloads/" + tokValid
	flip := func(s string, i int) string { // changes one character, staying alphanumeric
		b := []byte(s)
		switch c := b[i]; {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		default:
			b[i] = '0' + (c-'0'+1)%10
		}
		return string(b)
	}
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		code               string // error code, for error answers
		lookup             bool   // the token reaches the store
		served             []byte // the exact body; nil for error answers
		marked             bool   // the download is recorded
	}{
		{name: "GET", method: "GET", path: valid, status: 200, lookup: true, marked: true},
		{name: "HEAD", method: "HEAD", path: valid, status: 200, lookup: true, served: []byte{}},
		{name: "first 100 bytes", method: "GET", path: valid, header: map[string]string{"Range": "bytes=0-99"}, status: 206, lookup: true, marked: true},
		{name: "suffix", method: "GET", path: valid, header: map[string]string{"Range": "bytes=-10"}, status: 206, lookup: true, marked: true},
		{name: "open end", method: "GET", path: valid, header: map[string]string{"Range": "bytes=4990-"}, status: 206, lookup: true, marked: true},
		{name: "two ranges", method: "GET", path: valid, header: map[string]string{"Range": "bytes=0-0,10-19"}, status: 206, lookup: true, marked: true},
		{name: "range past the end", method: "GET", path: valid, header: map[string]string{"Range": "bytes=5000-"}, status: 416, lookup: true, marked: true},
		{name: "zero-length suffix", method: "GET", path: valid, header: map[string]string{"Range": "bytes=-0"}, status: 416, lookup: true, marked: true},
		{name: "zero-length suffix among others", method: "GET", path: valid, header: map[string]string{"Range": "bytes=-0,0-9"}, status: 206, lookup: true, marked: true},
		{name: "other range unit", method: "GET", path: valid, header: map[string]string{"Range": "items=0-1"}, status: 416, lookup: true, marked: true},
		{name: "stale If-Range gets the whole file", method: "GET", path: valid, header: map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, status: 200, lookup: true, marked: true},
		{name: "last character changed", method: "GET", path: "/v1/downloads/" + flip(tokValid, 63), status: 404, code: "not_found", lookup: true},
		{name: "first character's case", method: "GET", path: "/v1/downloads/" + flip(tokValid, 0), status: 404, code: "not_found", lookup: true},
		{name: "all lower case", method: "GET", path: "/v1/downloads/" + strings.ToLower(tokValid), status: 404, code: "not_found", lookup: true},
		{name: "63-character prefix", method: "GET", path: "/v1/downloads/" + tokValid[:63], status: 404, code: "not_found"},
		{name: "one character more", method: "GET", path: valid + "A", status: 404, code: "not_found"},
		{name: "percent-encoded character", method: "GET", path: "/v1/downloads/%" + hex.EncodeToString([]byte{tokValid[0]}) + tokValid[1:], status: 404, code: "not_found"},
		{name: "trailing slash", method: "GET", path: valid + "/", status: 404, code: "not_found"},
		{name: "SQL in the token", method: "GET", path: "/v1/downloads/%27%20OR%20%271%27=%271", status: 404, code: "not_found"},
		{name: "empty token", method: "GET", path: "/v1/downloads/", status: 404, code: "not_found"},
		{name: "expired", method: "GET", path: "/v1/downloads/" + tokExpired, status: 410, code: "download_expired", lookup: true},
		{name: "expired, with a range", method: "GET", path: "/v1/downloads/" + tokExpired, header: map[string]string{"Range": "bytes=0-99"}, status: 410, code: "download_expired", lookup: true},
		{name: "expiry recorded", method: "GET", path: "/v1/downloads/" + tokRevoked, status: 410, code: "download_expired", lookup: true},
		{name: "expired, HEAD", method: "HEAD", path: "/v1/downloads/" + tokExpired, status: 410, lookup: true, served: []byte{}},
		{name: "not completed", method: "GET", path: "/v1/downloads/" + tokPending, status: 404, code: "not_found", lookup: true},
		{name: "POST", method: "POST", path: valid, status: 405, code: "method_not_allowed"},
		{name: "DELETE", method: "DELETE", path: valid, status: 405, code: "method_not_allowed"},
	}
	a, content := downloadFixture(t, config.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.reset()
			req := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := a.do(req, "192.0.2.1:1234")
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			mayServe := tt.path == valid && (tt.method == http.MethodGet || tt.method == http.MethodHead)
			checkDownloadAnswer(t, req, rec, content, mayServe)
			if tt.code != "" {
				if got := errorCode(t, rec); got != tt.code {
					t.Errorf("error code %q, want %q", got, tt.code)
				}
			}
			if tt.served != nil && !bytes.Equal(rec.Body.Bytes(), tt.served) {
				t.Errorf("body %q, want %q", rec.Body.Bytes(), tt.served)
			}
			_, lookups, marked := a.store.record()
			if tt.lookup != (len(lookups) == 1) || len(lookups) > 1 {
				t.Errorf("store lookups %q, want lookup=%v", lookups, tt.lookup)
			}
			if tt.marked != (len(marked) == 1) || len(marked) > 1 || tt.marked && marked[0] != validJobID {
				t.Errorf("downloads recorded %q, want marked=%v", marked, tt.marked)
			}
		})
	}
}

// checkDownloadAnswer checks what any answer of the download route must
// satisfy, given whether the file may be served (the right token of a
// completed job whose link is open): no 5xx; file bytes only when allowed;
// successful answers are attachments, not cached, not sniffed, and their
// bodies and Content-Range headers agree with the file and the Range header.
func checkDownloadAnswer(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder, content []byte, mayServe bool) {
	t.Helper()
	body, h := rec.Body.Bytes(), rec.Header()
	if rec.Code >= 500 {
		t.Fatalf("%s %s: %d: %s", req.Method, req.URL, rec.Code, body)
	}
	served := rec.Code == http.StatusOK || rec.Code == http.StatusPartialContent
	if !mayServe {
		if served || rec.Code == http.StatusNotModified || rec.Code == http.StatusRequestedRangeNotSatisfiable || rec.Code == http.StatusPreconditionFailed {
			t.Fatalf("%s %s: answered %d for a token that may not download", req.Method, req.URL, rec.Code)
		}
		if bytes.Contains(body, []byte(resultMarker)) || h.Get("Content-Disposition") != "" || h.Get("ETag") != "" {
			t.Fatalf("%s %s: %d answer carries the file or its headers: %v", req.Method, req.URL, rec.Code, h)
		}
		if req.Method != http.MethodHead && rec.Code != http.StatusNoContent && errorCodeOf(body) == "" {
			t.Fatalf("%s %s: %d answer is not an error body: %q", req.Method, req.URL, rec.Code, body)
		}
		return
	}
	switch rec.Code {
	case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusRequestedRangeNotSatisfiable, http.StatusPreconditionFailed:
	default:
		t.Fatalf("%s %s: status %d for the right token", req.Method, req.URL, rec.Code)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(h.Get("Content-Disposition"), `attachment; filename="hires-11111111-4x.png"`) {
		t.Fatalf("headers %v", h)
	}
	// ServeContent drops Cache-Control from its error answers (416, 412),
	// which are not cacheable by default anyway.
	if (served || rec.Code == http.StatusNotModified) && h.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("%d without Cache-Control: private, no-store: %v", rec.Code, h)
	}
	if req.Method == http.MethodHead || !served {
		if len(body) > 0 && rec.Code != http.StatusRequestedRangeNotSatisfiable || bytes.Contains(body, []byte(resultMarker)) {
			t.Fatalf("%s %s: %d with body %q", req.Method, req.URL, rec.Code, body)
		}
		// Go answers an unparsable Range 416 without Content-Range.
		if cr := h.Get("Content-Range"); rec.Code == http.StatusRequestedRangeNotSatisfiable && cr != "" && cr != "bytes */"+strconv.Itoa(len(content)) {
			t.Fatalf("416 with Content-Range %q", h.Get("Content-Range"))
		}
		return
	}
	if rec.Code == http.StatusOK {
		if !bytes.Equal(body, content) || h.Get("Content-Range") != "" {
			t.Fatalf("200 answer is not the whole file (%d bytes, Content-Range %q)", len(body), h.Get("Content-Range"))
		}
		return
	}
	// 206: one range, or several in a multipart/byteranges body.
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		t.Fatalf("206 Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	if mt != "multipart/byteranges" {
		checkPart(t, h.Get("Content-Range"), body, content)
		if h.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("Content-Length %q for %d bytes", h.Get("Content-Length"), len(body))
		}
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	parts := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart body: %v", err)
		}
		pb, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		checkPart(t, p.Header.Get("Content-Range"), pb, content)
		parts++
	}
	if parts < 2 {
		t.Fatalf("multipart/byteranges with %d parts", parts)
	}
}

// checkPart checks "bytes first-last/size" against the part's bytes.
func checkPart(t testing.TB, contentRange string, part, content []byte) {
	t.Helper()
	var first, last, size int
	if n, err := fmt.Sscanf(contentRange, "bytes %d-%d/%d", &first, &last, &size); n != 3 || err != nil ||
		contentRange != fmt.Sprintf("bytes %d-%d/%d", first, last, size) {
		t.Fatalf("malformed Content-Range %q", contentRange)
	}
	if size != len(content) || first < 0 || first > last || last >= size {
		t.Fatalf("Content-Range %q outside the %d-byte file", contentRange, len(content))
	}
	if !bytes.Equal(part, content[first:last+1]) {
		t.Fatalf("part for %q holds other bytes (%d bytes)", contentRange, len(part))
	}
}

func errorCodeOf(body []byte) string {
	var b errorBody
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Error.Code
}

// The link answers 410 Gone from the instant download_expires_at is reached,
// and whenever the expiry was recorded (the file is then deleted), with
// nothing of the file.
func TestDownloadGoneAfterExpiry(t *testing.T) {
	a, content := downloadFixture(t, config.Config{})
	expires := *a.store.jobs[validJobID].DownloadExpiresAt
	get := func(at time.Time) *httptest.ResponseRecorder {
		a.clock.set(at)
		a.reset()
		req := httptest.NewRequest(http.MethodGet, "/v1/downloads/"+tokValid, nil)
		rec := a.do(req, "192.0.2.1:1")
		checkDownloadAnswer(t, req, rec, content, rec.Code == http.StatusOK)
		return rec
	}
	if rec := get(expires.Add(-time.Nanosecond)); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), content) {
		t.Fatalf("just before expiry: %d, want 200 with the file", rec.Code)
	}
	for _, at := range []time.Time{expires, expires.Add(time.Nanosecond), expires.Add(30 * 24 * time.Hour)} {
		rec := get(at)
		if rec.Code != http.StatusGone || errorCode(t, rec) != "download_expired" {
			t.Fatalf("at expiry%+v: %d %q, want 410 download_expired", at.Sub(expires), rec.Code, errorCodeOf(rec.Body.Bytes()))
		}
		if _, _, marked := a.store.record(); len(marked) > 0 {
			t.Fatalf("an expired download was recorded as downloaded")
		}
	}

	// The expiry recorded by the workflow wins over a later expires_at
	// (e.g. an admin's new link being set up).
	j := a.store.jobs[validJobID]
	recorded := expires.Add(-time.Hour)
	j.DownloadExpiredAt = &recorded
	a.store.jobs[validJobID] = j
	if rec := get(expires.Add(-time.Minute)); rec.Code != http.StatusGone {
		t.Fatalf("expiry recorded: %d, want 410", rec.Code)
	}
	// A job without an expiry never serves.
	j.DownloadExpiredAt, j.DownloadExpiresAt = nil, nil
	a.store.jobs[validJobID] = j
	if rec := get(expires.Add(-time.Minute)); rec.Code != http.StatusGone {
		t.Fatalf("no expiry set: %d, want 410", rec.Code)
	}
}

// Guessing tokens is bounded per client address by the download limit
// (RATE_LIMIT_DOWNLOAD a minute, bursts of a quarter of it): past the burst
// every request is 429 without reaching the database, even one with the
// right token; a customer at another address is unaffected. Behind trusted
// proxies the address is the one the proxy saw, so forging
// X-Forwarded-For does not escape the limit.
func TestDownloadBruteForceIsRateLimited(t *testing.T) {
	const perMinute = 120 // the default
	burst := perMinute / 4
	for _, proxied := range []bool{false, true} {
		t.Run(fmt.Sprintf("proxied=%v", proxied), func(t *testing.T) {
			cfg := config.Config{RateLimitDownload: perMinute}
			if proxied {
				cfg.TrustedProxies = []string{"10.0.0.0/24"}
			}
			a, content := downloadFixture(t, cfg)
			rng := rand.New(rand.NewPCG(3, 4))
			guess := func(i int) *http.Request {
				b := make([]byte, 64)
				for j := range b {
					b[j] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(62)]
				}
				method := http.MethodGet
				if i%3 == 0 {
					method = http.MethodHead
				}
				return httptest.NewRequest(method, "/v1/downloads/"+string(b), nil)
			}
			// The attacker's requests: direct, or through the proxy at
			// 10.0.0.2 that appends the address it saw to a forged header.
			send := func(req *http.Request, i int) *httptest.ResponseRecorder {
				if !proxied {
					return a.do(req, "203.0.113.7:"+strconv.Itoa(1024+i))
				}
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d, 203.0.113.7", i%250))
				return a.do(req, "10.0.0.2:443")
			}

			a.reset()
			start := time.Now()
			first429, passedAfter := -1, 0
			for i := 0; i < burst+40; i++ {
				req := guess(i)
				rec := send(req, i)
				checkDownloadAnswer(t, req, rec, content, false)
				switch rec.Code {
				case http.StatusNotFound:
					if first429 >= 0 {
						passedAfter++
					}
				case http.StatusTooManyRequests:
					if first429 < 0 {
						first429 = i
					}
					if rec.Header().Get("Retry-After") != "60" || req.Method == http.MethodGet && errorCode(t, rec) != "rate_limited" {
						t.Fatalf("429 without Retry-After or code: %v %s", rec.Header(), rec.Body)
					}
				default:
					t.Fatalf("guess %d: status %d", i, rec.Code)
				}
			}
			// The bucket refills at perMinute/60 a second: a slow run may
			// let a guess or two more through.
			refilled := int(time.Since(start).Seconds()*perMinute/60) + 1
			if first429 < burst || first429 > burst+refilled || passedAfter > refilled {
				t.Fatalf("first 429 at guess %d, %d guesses passed after it; want the burst of %d, then 429s", first429, passedAfter, burst)
			}
			_, lookups, _ := a.store.record()
			if len(lookups) > burst+refilled {
				t.Fatalf("%d guesses reached the store, want at most %d", len(lookups), burst+refilled)
			}

			// The right token from the limited address is limited too...
			if rec := send(httptest.NewRequest(http.MethodGet, "/v1/downloads/"+tokValid, nil), 999); rec.Code != http.StatusTooManyRequests {
				t.Fatalf("limited address with the right token: %d, want 429", rec.Code)
			}
			// ...and the customer, elsewhere, downloads.
			req := httptest.NewRequest(http.MethodGet, "/v1/downloads/"+tokValid, nil)
			var rec *httptest.ResponseRecorder
			if proxied {
				req.Header.Set("X-Forwarded-For", "192.0.2.55")
				rec = a.do(req, "10.0.0.2:443")
			} else {
				rec = a.do(req, "192.0.2.55:5555")
			}
			checkDownloadAnswer(t, req, rec, content, true)
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), content) {
				t.Fatalf("customer at another address: %d, want 200 with the file", rec.Code)
			}
		})
	}
}

// Lookups reach the store only with a well-formed token, which the store
// matches exactly; no Go code compares the token (see secretcompare_test.go).
func TestDownloadLookupOnlyForWellFormedTokens(t *testing.T) {
	a, _ := downloadFixture(t, config.Config{})
	for _, tok := range []string{"", "a", tokValid[:63], tokValid + "0", tokValid[:63] + "-", tokValid[:62] + "é", strings.Repeat("%41", 64)} {
		a.reset()
		a.do(httptest.NewRequest(http.MethodGet, "/v1/downloads/"+tok, nil), "192.0.2.1:1")
		if calls, _, _ := a.store.record(); len(calls) > 0 {
			t.Errorf("token %q reached the store: %v", tok, calls)
		}
	}
	a.reset()
	a.do(httptest.NewRequest(http.MethodGet, "/v1/downloads/"+tokValid, nil), "192.0.2.1:1")
	if _, lookups, _ := a.store.record(); len(lookups) != 1 || lookups[0] != tokValid || !token.IsAlnum(lookups[0], 64) {
		t.Fatalf("lookups %q, want the token itself", lookups)
	}
}

func TestSatisfiableRanges(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"bytes=0-99", "bytes=0-99"},
		{"bytes=-10", "bytes=-10"},
		{"bytes=-0", "bytes=5000-"},
		{"bytes= -00 ", "bytes=5000-"},
		{"bytes=-+0", "bytes=5000-"},
		{"bytes=-0,", "bytes=5000-"},
		{"bytes=0-9,-0, 20-29", "bytes=0-9, 20-29"},
		{"bytes=0-0", "bytes=0-0"},
		{"bytes=-", "bytes=-"},
		{"items=-0", "items=-0"},
		{"", ""},
	} {
		if got := satisfiableRanges(tt.in, 5000); got != tt.want {
			t.Errorf("satisfiableRanges(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
