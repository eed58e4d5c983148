package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"hires/internal/config"
	"hires/internal/token"
)

var fuzzMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodPatch, http.MethodOptions, http.MethodTrace, "PROPFIND",
}

// How FuzzDownloadRoute builds the path token from its input (pick's low
// bits); pick&pickRawPath parses the path as a client would send it
// (escapes decoded, RawPath kept) instead of using the token verbatim, and
// pick&pickIfRange sends cond as If-Range instead of If-None-Match.
const (
	pickAsGiven  = iota // tok
	pickValid           // the right token
	pickExpired         // a token whose link expired
	pickRevoked         // a token whose expiry was recorded
	pickPending         // a token of a job still processing
	pickSpliced         // the right token with tok inserted into it
	pickPrefixed        // tok, then the right token
	pickModes
	pickRawPath = 0x80
	pickIfRange = 0x40
)

// FuzzDownloadRoute drives GET/HEAD/... /v1/downloads/<token> through the
// real Echo application (routing, middleware, error handler) with a
// map-backed store, the result file in a temporary directory and a Range
// (and If-Range or If-None-Match) header. Whatever the input: no 5xx; the
// store is asked only about a 64-character alphanumeric token, the one in
// the path; the file, its headers or a 304/416 come only for the right
// token of the completed job, by GET or HEAD, and then every 200/206 body
// and Content-Range agrees with the file and is well formed; expired links
// answer 410; a download is recorded only for that GET. More seeds are in
// testdata/fuzz/FuzzDownloadRoute.
func FuzzDownloadRoute(f *testing.F) {
	for _, s := range []struct {
		tok              string
		pick, method     uint8
		rangeHdr, ifCond string
	}{
		{"", pickValid, 0, "", ""},
		{"", pickValid, 1, "bytes=0-99", ""},
		{"", pickValid, 0, "bytes=0-0,-1,10-20", ""},
		{"", pickValid, 0, "bytes=4999-", `"x"`},
		{"", pickValid | pickIfRange, 0, "bytes=0-9", `"stale"`},
		{"", pickExpired, 0, "bytes=0-99", ""},
		{"", pickRevoked, 1, "", ""},
		{"", pickPending, 0, "", ""},
		{"x", pickSpliced, 0, "", ""},
		{"", pickValid, 2, "", ""},
		{"%2e%2e%2fresults", pickAsGiven | pickRawPath, 0, "", ""},
		{tokValid[:63] + "-", pickAsGiven, 0, "", ""},
	} {
		f.Add(s.tok, s.pick, s.method, s.rangeHdr, s.ifCond)
	}
	a, content := downloadFixture(f, config.Config{})
	const prefix = "/v1/downloads/"
	f.Fuzz(func(t *testing.T, tok string, pick, method uint8, rangeHdr, ifCond string) {
		if len(tok)+len(rangeHdr)+len(ifCond) > 4096 {
			t.Skip("longer than any header or path worth trying")
		}
		switch pick % pickModes {
		case pickValid:
			tok = tokValid
		case pickExpired:
			tok = tokExpired
		case pickRevoked:
			tok = tokRevoked
		case pickPending:
			tok = tokPending
		case pickSpliced:
			i := len(tok) % (len(tokValid) + 1)
			tok = tokValid[:i] + tok + tokValid[i:]
		case pickPrefixed:
			tok += tokValid
		}
		u := &url.URL{Path: prefix + tok}
		if pick&pickRawPath != 0 {
			var err error
			if u, err = url.ParseRequestURI(prefix + tok); err != nil {
				t.Skip("not a request target")
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = fuzzMethods[int(method)%len(fuzzMethods)]
		req.URL, req.RequestURI = u, u.RequestURI()
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		if ifCond != "" {
			if pick&pickIfRange != 0 {
				req.Header.Set("If-Range", ifCond)
			} else {
				req.Header.Set("If-None-Match", ifCond)
			}
		}

		a.reset()
		rec := a.do(req, "192.0.2.1:1234")

		// What the router sees, and so the handler's token.
		routed, isDownload := strings.CutPrefix(echo.GetPath(req), prefix)
		isDownload = isDownload && !strings.Contains(routed, "/")
		getOrHead := req.Method == http.MethodGet || req.Method == http.MethodHead
		mayServe := isDownload && getOrHead && routed == tokValid
		checkDownloadAnswer(t, req, rec, content, mayServe)

		_, lookups, marked := a.store.record()
		if len(lookups) > 1 {
			t.Fatalf("%d lookups for one request", len(lookups))
		}
		if len(lookups) == 1 && (!token.IsAlnum(lookups[0], 64) || !isDownload || lookups[0] != routed) {
			t.Fatalf("store asked about %q for path %q", lookups[0], echo.GetPath(req))
		}
		if wellFormed := isDownload && getOrHead && token.IsAlnum(routed, 64); wellFormed != (len(lookups) == 1) {
			t.Fatalf("path %q, %s: %d lookups", echo.GetPath(req), req.Method, len(lookups))
		}
		if len(marked) > 0 && !(mayServe && req.Method == http.MethodGet) {
			t.Fatalf("download recorded for %s %q", req.Method, echo.GetPath(req))
		}
		if mayServe && req.Method == http.MethodGet && (rec.Code == http.StatusOK || rec.Code == http.StatusPartialContent) && len(marked) != 1 {
			t.Fatalf("served without recording the download")
		}
		if isDownload && getOrHead && (routed == tokExpired || routed == tokRevoked) && rec.Code != http.StatusGone {
			t.Fatalf("expired link answered %d", rec.Code)
		}
		if isDownload && getOrHead && routed == tokPending && rec.Code != http.StatusNotFound {
			t.Fatalf("link of an unfinished job answered %d", rec.Code)
		}
	})
}
