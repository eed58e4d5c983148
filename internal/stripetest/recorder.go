// Package stripetest puts a recording proxy in front of stripe-mock that
// adds what stripe-mock lacks: Stripe's idempotency-key semantics, and a log
// of the calls that really reached "Stripe", so tests can assert that a
// retried operation had exactly one effect.
package stripetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Call is one request seen by the Recorder.
type Call struct {
	Method         string
	Path           string
	IdempotencyKey string
	// Form holds the query and form-encoded body parameters.
	Form   url.Values
	Status int
	// Replayed: answered from the idempotency store, not forwarded.
	Replayed bool
	// Forwarded: the upstream received the request and answered it, i.e. the
	// call had a real effect. False for replays, idempotency errors and
	// upstream failures.
	Forwarded bool
	At        time.Time
}

// Recorder is an http.Handler that reverse-proxies to a Stripe API upstream
// (normally stripe-mock), records every call and enforces idempotency keys
// on POST the way Stripe does:
//   - the first response for a key is stored and replayed for later requests
//     with the same key and parameters, with header Idempotent-Replayed: true;
//   - the same key with different parameters (or another endpoint) fails with
//     400 idempotency_error, without reaching the upstream;
//   - the same key while the first request is still running fails with 409
//     idempotency_error (stripe-go retries that);
//   - responses to requests that never began executing (400 validation
//     errors, 401, 429, unreachable upstream) are not stored, so a retry with
//     the same key is forwarded again.
//
// Keys never expire. Safe for concurrent use.
type Recorder struct {
	upstream *url.URL
	proxy    *httputil.ReverseProxy

	mu    sync.Mutex
	calls []Call
	keys  map[string]*keyEntry
	srv   *httptest.Server
}

// keyEntry is the idempotency record of one key.
type keyEntry struct {
	fingerprint string // method, path and canonical params
	done        bool   // false while the first request is in flight
	status      int
	header      http.Header
	body        []byte
}

// maxBody bounds the request body the Recorder buffers.
const maxBody = 10 << 20

// NewRecorder returns a Recorder forwarding to upstreamURL (e.g.
// "http://127.0.0.1:12111"). It panics on a malformed URL, which is a bug in
// the calling test.
func NewRecorder(upstreamURL string) *Recorder {
	u, err := url.Parse(upstreamURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		panic(fmt.Sprintf("stripetest: bad upstream URL %q: %v", upstreamURL, err))
	}
	r := &Recorder{upstream: u, keys: map[string]*keyEntry{}}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if st, ok := req.Context().Value(stateKey{}).(*requestState); ok {
				st.upstreamErr = err
			}
			writeStripeError(w, http.StatusBadGateway, "api_error",
				fmt.Sprintf("stripetest: upstream %s unreachable: %v", u, err))
		},
	}
	return r
}

// Start serves the Recorder on 127.0.0.1 with a free port. Idempotent.
func (r *Recorder) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv == nil {
		r.srv = httptest.NewServer(r)
	}
}

// URL is the base URL to give stripe-go (BackendConfig.URL); "" before Start.
func (r *Recorder) URL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv == nil {
		return ""
	}
	return r.srv.URL
}

// Close stops the server started by Start, waiting for in-flight requests.
func (r *Recorder) Close() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Calls returns every recorded call, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Effects returns the forwarded calls (those that reached the upstream)
// whose method matches (any if "") and whose path starts with pathPrefix.
func (r *Recorder) Effects(method, pathPrefix string) []Call {
	var out []Call
	for _, c := range r.Calls() {
		if c.Forwarded && (method == "" || strings.EqualFold(c.Method, method)) && strings.HasPrefix(c.Path, pathPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// Count is len(Effects(method, pathPrefix)).
func (r *Recorder) Count(method, pathPrefix string) int {
	return len(r.Effects(method, pathPrefix))
}

// Reset forgets all calls and stored idempotency keys.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
	r.keys = map[string]*keyEntry{}
}

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeStripeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "stripetest: reading request body: "+err.Error())
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))

	call := Call{
		Method: req.Method,
		Path:   req.URL.Path,
		Form:   requestForm(req, body),
		At:     time.Now(),
	}
	if req.Method == http.MethodPost {
		// Stripe only honours keys on POST; stripe-go trims them too.
		call.IdempotencyKey = strings.TrimSpace(req.Header.Get("Idempotency-Key"))
	}
	defer func() { r.record(call) }()

	if call.IdempotencyKey == "" {
		call.Status, _, _, call.Forwarded = r.forward(w, req)
		return
	}

	fp := req.Method + " " + req.URL.Path + "?" + call.Form.Encode()
	r.mu.Lock()
	e, seen := r.keys[call.IdempotencyKey]
	switch {
	case seen && e.fingerprint != fp:
		r.mu.Unlock()
		call.Status = http.StatusBadRequest
		writeStripeError(w, call.Status, "idempotency_error", fmt.Sprintf(
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.",
			call.IdempotencyKey))
		return
	case seen && !e.done:
		r.mu.Unlock()
		call.Status = http.StatusConflict
		writeStripeError(w, call.Status, "idempotency_error", fmt.Sprintf(
			"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): '%s'. Please try again later.",
			call.IdempotencyKey))
		return
	case seen:
		status, header, stored := e.status, e.header.Clone(), e.body
		r.mu.Unlock()
		call.Status, call.Replayed = status, true
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(status)
		_, _ = w.Write(stored)
		return
	}
	// First use: reserve the key, then forward without holding the lock.
	e = &keyEntry{fingerprint: fp}
	r.keys[call.IdempotencyKey] = e
	r.mu.Unlock()

	status, header, respBody, forwarded := r.forward(w, req)
	call.Status, call.Forwarded = status, forwarded

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[call.IdempotencyKey] != e {
		return // Reset ran meanwhile
	}
	if !forwarded || !storable(status) {
		delete(r.keys, call.IdempotencyKey)
		return
	}
	e.done, e.status, e.header, e.body = true, status, header, respBody
}

// storable reports whether Stripe would have saved the response: it saves
// results only once the endpoint began executing (500s included).
func storable(status int) bool {
	switch status {
	case http.StatusBadRequest, // parameter validation (all stripe-mock 400s)
		http.StatusUnauthorized,
		http.StatusTooManyRequests:
		return false
	}
	return true
}

func (r *Recorder) record(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

type stateKey struct{}

// requestState lets the proxy's ErrorHandler report back to ServeHTTP.
type requestState struct{ upstreamErr error }

// forward proxies req upstream, streaming the answer to w while keeping a
// copy. forwarded is false when the upstream could not be reached.
func (r *Recorder) forward(w http.ResponseWriter, req *http.Request) (status int, header http.Header, body []byte, forwarded bool) {
	st := &requestState{}
	req = req.WithContext(context.WithValue(req.Context(), stateKey{}, st))
	cw := &captureWriter{ResponseWriter: w}
	r.proxy.ServeHTTP(cw, req)
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	return cw.status, w.Header().Clone(), cw.body.Bytes(), st.upstreamErr == nil
}

// captureWriter passes a response through and keeps its status and body.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// requestForm merges query parameters with a form-encoded body.
func requestForm(req *http.Request, body []byte) url.Values {
	form := req.URL.Query()
	ct := req.Header.Get("Content-Type")
	if len(body) > 0 && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
		if bodyForm, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range bodyForm {
				form[k] = append(form[k], v...)
			}
		}
	}
	return form
}

// writeStripeError writes an error in Stripe's JSON shape, which stripe-go
// turns into a *stripe.Error.
func writeStripeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]string{"type": typ, "message": msg},
	})
}
