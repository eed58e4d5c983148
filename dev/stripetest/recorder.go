// Package stripetest is a stateful Stripe double for tests. Its Recorder
// sits in front of stripe-mock, which checks requests against Stripe's
// OpenAPI spec and answers with fixtures but keeps no state, and adds what
// stripe-mock lacks: idempotency keys kept for 24 hours on a clock tests can
// move, refunds that add up per PaymentIntent (charge_already_refunded,
// refusals on demand, refunds made by hand in the Dashboard), Checkout
// Session states (delayed payments, expiry), and a log of the calls that
// really reached "Stripe", so tests can assert that a retried operation had
// exactly one effect.
package stripetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
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
	// Forwarded: the upstream received the request and its answer stood,
	// i.e. the call had a real effect. False for replays, idempotency
	// errors, upstream failures and the refusals the Recorder makes itself
	// (charge_already_refunded, RefuseRefunds, expiring a closed session).
	Forwarded bool
	// At is the Recorder's clock (Now) when the request arrived.
	At time.Time
}

// Recorder is an http.Handler that reverse-proxies to a Stripe API upstream
// (normally stripe-mock), records every call and enforces idempotency keys
// on POST the way Stripe does:
//   - the first response for a key is stored and replayed for later requests
//     with the same key and parameters, with header Idempotent-Replayed: true;
//   - the same key with different parameters (or another endpoint) fails with
//     400 idempotency_error, without reaching the upstream;
//   - the same key while the first request is still running fails with 409
//     idempotency_error, code idempotency_key_in_use (stripe-go retries that);
//   - responses to requests that never began executing (400 validation
//     errors, 401, 429, unreachable upstream) are not stored, so a retry with
//     the same key is forwarded again; refusals the Recorder makes itself
//     (charge_already_refunded, RefuseRefunds, expiring a closed session)
//     are results, and are stored;
//   - a stored answer expires 24 hours (on the Recorder's clock, see
//     Advance) after the key was first used; the key is then new again.
//
// On top of that it keeps the state stripe-mock cannot: see RegisterPayment,
// RefuseRefunds, RefundByHand and CompleteSession. Safe for concurrent use;
// no lock is held while a request is forwarded.
type Recorder struct {
	upstream *url.URL
	proxy    *httputil.ReverseProxy

	mu    sync.Mutex
	calls []Call
	keys  map[string]*keyEntry
	srv   *httptest.Server
	st    state
}

// keyEntry is the idempotency record of one key.
type keyEntry struct {
	fingerprint string    // method, path and canonical params
	first       time.Time // first use, on the Recorder's clock
	done        bool      // false while the first request is in flight
	status      int
	header      http.Header
	body        []byte
}

const (
	// maxBody bounds the request body the Recorder buffers.
	maxBody = 10 << 20
	// idempotencyTTL is how long Stripe keeps a key's result ("keys may be
	// pruned after 24 hours"); the double prunes at exactly 24 h.
	idempotencyTTL = 24 * time.Hour
)

// NewRecorder returns a Recorder forwarding to upstreamURL (e.g.
// "http://127.0.0.1:12111"). It panics on a malformed URL, which is a bug in
// the calling test.
func NewRecorder(upstreamURL string) *Recorder {
	u, err := url.Parse(upstreamURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		panic(fmt.Sprintf("stripetest: bad upstream URL %q: %v", upstreamURL, err))
	}
	r := &Recorder{upstream: u, keys: map[string]*keyEntry{}, st: newState()}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if st, ok := req.Context().Value(stateKey{}).(*requestState); ok {
				st.upstreamErr = err
			}
			writeStripeError(w, http.StatusBadGateway, "api_error", "",
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

// Now is the Recorder's clock: real time plus everything Advance added. It
// times calls (Call.At), idempotency expiry and created objects.
func (r *Recorder) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nowLocked()
}

func (r *Recorder) nowLocked() time.Time { return time.Now().Add(r.st.advance) }

// Advance moves the Recorder's clock forward by d, e.g. past the 24 h after
// which Stripe forgets idempotency keys. It panics if d is negative: time
// going backwards would be a bug in the calling test.
func (r *Recorder) Advance(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("stripetest: Advance(%s): the clock only moves forward", d))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.advance += d
}

// Calls returns every recorded call, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Effects returns the calls that had an effect (Call.Forwarded) whose
// method matches (any if "") and whose path starts with pathPrefix.
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

// Reset forgets all calls, stored idempotency keys, payments, sessions and
// refusals. The clock and the default amount are kept: time does not go
// back.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
	r.keys = map[string]*keyEntry{}
	r.st.reset()
}

// answer is a complete response, buffered so that it can be patched and
// stored under an idempotency key.
type answer struct {
	status int
	header http.Header
	body   []byte
	// forwarded: the upstream answered and its answer stood (Call.Forwarded).
	forwarded bool
	// executed: Stripe's endpoint began executing, so Stripe would store the
	// result under the idempotency key.
	executed bool
}

// handler serves one endpoint the Recorder keeps state for. It forwards
// (without the lock) and then decides and patches (with it).
type handler func(req *http.Request, form url.Values, at time.Time) answer

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeStripeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", "stripetest: reading request body: "+err.Error())
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))

	call := Call{
		Method: req.Method,
		Path:   req.URL.Path,
		Form:   requestForm(req, body),
		At:     r.Now(),
	}
	if req.Method == http.MethodPost {
		// Stripe only honours keys on POST; stripe-go trims them too.
		call.IdempotencyKey = strings.TrimSpace(req.Header.Get("Idempotency-Key"))
	}
	defer func() { r.record(call) }()

	h := r.route(req.Method, req.URL.Path)
	if call.IdempotencyKey == "" {
		a := r.execute(w, req, h, call.Form, call.At)
		call.Status, call.Forwarded = a.status, a.forwarded
		return
	}

	fp := req.Method + " " + req.URL.Path + "?" + call.Form.Encode()
	r.mu.Lock()
	e, seen := r.keys[call.IdempotencyKey]
	if seen && e.done && !call.At.Before(e.first.Add(idempotencyTTL)) {
		// Pruned, as Stripe does after 24 h: the key is new again.
		delete(r.keys, call.IdempotencyKey)
		seen = false
	}
	switch {
	case seen && e.fingerprint != fp:
		r.mu.Unlock()
		call.Status = http.StatusBadRequest
		writeStripeError(w, call.Status, "idempotency_error", "", fmt.Sprintf(
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.",
			call.IdempotencyKey))
		return
	case seen && !e.done:
		r.mu.Unlock()
		call.Status = http.StatusConflict
		writeStripeError(w, call.Status, "idempotency_error", "idempotency_key_in_use", fmt.Sprintf(
			"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): '%s'. Please try again later.",
			call.IdempotencyKey))
		return
	case seen:
		stored := answer{status: e.status, header: e.header.Clone(), body: e.body}
		r.mu.Unlock()
		call.Status, call.Replayed = stored.status, true
		stored.header.Set("Idempotent-Replayed", "true")
		writeAnswer(w, stored)
		return
	}
	// First use: reserve the key, then forward without holding the lock.
	e = &keyEntry{fingerprint: fp, first: call.At}
	r.keys[call.IdempotencyKey] = e
	r.mu.Unlock()

	a := r.execute(w, req, h, call.Form, call.At)
	call.Status, call.Forwarded = a.status, a.forwarded

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[call.IdempotencyKey] != e {
		return // Reset ran meanwhile
	}
	if !a.executed {
		delete(r.keys, call.IdempotencyKey)
		return
	}
	e.done, e.status, e.header, e.body = true, a.status, a.header, a.body
}

// execute answers req: through h if the Recorder keeps state for the
// endpoint, else by streaming the upstream's answer.
func (r *Recorder) execute(w http.ResponseWriter, req *http.Request, h handler, form url.Values, at time.Time) answer {
	if h == nil {
		status, header, body, forwarded := r.forward(w, req)
		return answer{status: status, header: header, body: body, forwarded: forwarded,
			executed: forwarded && storable(status)}
	}
	a := h(req, form, at)
	writeAnswer(w, a)
	return a
}

// storable reports whether Stripe would have saved the upstream's response:
// it saves results only once the endpoint began executing (500s included).
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

// forwardBuffered proxies req upstream and returns the whole answer, for a
// handler to patch. executed is left to the handler.
func (r *Recorder) forwardBuffered(req *http.Request) answer {
	rec := httptest.NewRecorder()
	status, header, body, forwarded := r.forward(rec, req)
	return answer{status: status, header: header, body: body, forwarded: forwarded}
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

// writeAnswer writes a buffered answer, with a Content-Length that matches
// its (possibly patched) body.
func writeAnswer(w http.ResponseWriter, a answer) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// stripeError builds an error in Stripe's JSON shape, which stripe-go turns
// into a *stripe.Error. executed says whether Stripe would store it under
// the idempotency key (a refusal) or not (a validation error).
func stripeError(status int, typ, code, param, msg string, executed bool) answer {
	e := map[string]string{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	body, _ := json.Marshal(map[string]any{"error": e})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Request-Id", newID("req_"))
	return answer{status: status, header: h, body: append(body, '\n'), executed: executed}
}

// writeStripeError writes an error in Stripe's JSON shape.
func writeStripeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeAnswer(w, stripeError(status, typ, code, "", msg, false))
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns a random Stripe-looking ID with prefix (e.g. "ch_").
func newID(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return prefix + string(b)
}
