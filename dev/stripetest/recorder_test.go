package stripetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"

	"hires/dev/devstack"
	"hires/internal/payments"
)

// fakeUpstream answers every request with a fresh object id, so replays are
// recognisable. /v1/fail answers 500, /v1/invalid 400, /v1/slow waits for
// release.
type fakeUpstream struct {
	n       atomic.Int64
	release chan struct{}
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.n.Add(1)
	status := http.StatusOK
	switch r.URL.Path {
	case "/v1/fail":
		status = http.StatusInternalServerError
	case "/v1/invalid":
		status = http.StatusBadRequest
	case "/v1/slow":
		select {
		case <-f.release:
		case <-time.After(10 * time.Second):
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream-N", fmt.Sprint(n))
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"id":"obj_%d"}`, n)
}

func newTestRecorder(t *testing.T) (*Recorder, *fakeUpstream) {
	t.Helper()
	up := &fakeUpstream{release: make(chan struct{})}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	rec := NewRecorder(srv.URL)
	rec.Start()
	t.Cleanup(rec.Close)
	return rec, up
}

type result struct {
	status   int
	id       string
	errType  string
	errCode  string
	errMsg   string
	replayed bool
}

// do sends one request through rec. It reports failures with t.Errorf so
// that it is safe to call from goroutines.
func do(t *testing.T, rec *Recorder, method, path, key, form string) result {
	t.Helper()
	var body io.Reader
	target := rec.URL() + path
	if method == http.MethodPost {
		body = strings.NewReader(form)
	} else if form != "" {
		target += "?" + form
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Errorf("new request: %v", err)
		return result{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return result{}
	}
	defer resp.Body.Close()
	var payload struct {
		ID    string `json:"id"`
		Error struct{ Type, Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&payload); err != nil {
		t.Errorf("%s %s: decode: %v", method, path, err)
	}
	return result{
		status:   resp.StatusCode,
		id:       payload.ID,
		errType:  payload.Error.Type,
		errCode:  payload.Error.Code,
		errMsg:   payload.Error.Message,
		replayed: resp.Header.Get("Idempotent-Replayed") == "true",
	}
}

func TestRecorderIdempotency(t *testing.T) {
	rec, _ := newTestRecorder(t)

	// Steps share one recorder and run in order.
	steps := []struct {
		name                      string
		method, path, key, form   string
		wantStatus                int
		wantID, wantErr           string
		wantReplayed, wantForward bool
	}{
		{name: "first use is forwarded", method: "POST", path: "/v1/things", key: "k1", form: "a=1&b=2",
			wantStatus: 200, wantID: "obj_1", wantForward: true},
		{name: "same key and params replays", method: "POST", path: "/v1/things", key: "k1", form: "a=1&b=2",
			wantStatus: 200, wantID: "obj_1", wantReplayed: true},
		{name: "param order does not matter", method: "POST", path: "/v1/things", key: "k1", form: "b=2&a=1",
			wantStatus: 200, wantID: "obj_1", wantReplayed: true},
		{name: "different params is an idempotency error", method: "POST", path: "/v1/things", key: "k1", form: "a=2&b=2",
			wantStatus: 400, wantErr: "idempotency_error"},
		{name: "other endpoint is an idempotency error", method: "POST", path: "/v1/others", key: "k1", form: "a=1&b=2",
			wantStatus: 400, wantErr: "idempotency_error"},
		{name: "no key is always forwarded", method: "POST", path: "/v1/things", form: "a=1&b=2",
			wantStatus: 200, wantID: "obj_2", wantForward: true},
		{name: "keys are ignored on GET", method: "GET", path: "/v1/things", key: "k1", form: "limit=3",
			wantStatus: 200, wantID: "obj_3", wantForward: true},
		{name: "500 is stored", method: "POST", path: "/v1/fail", key: "k2",
			wantStatus: 500, wantID: "obj_4", wantForward: true},
		{name: "500 is replayed", method: "POST", path: "/v1/fail", key: "k2",
			wantStatus: 500, wantID: "obj_4", wantReplayed: true},
		{name: "validation error is not stored", method: "POST", path: "/v1/invalid", key: "k3",
			wantStatus: 400, wantID: "obj_5", wantForward: true},
		{name: "retry after validation error is forwarded", method: "POST", path: "/v1/invalid", key: "k3",
			wantStatus: 400, wantID: "obj_6", wantForward: true},
	}
	for i, s := range steps {
		got := do(t, rec, s.method, s.path, s.key, s.form)
		assert.Equal(t, s.wantStatus, got.status, s.name)
		assert.Equal(t, s.wantID, got.id, s.name)
		assert.Equal(t, s.wantErr, got.errType, s.name)
		assert.Equal(t, s.wantReplayed, got.replayed, s.name)

		calls := rec.Calls()
		require.Len(t, calls, i+1, s.name)
		c := calls[i]
		assert.Equal(t, s.method, c.Method, s.name)
		assert.Equal(t, s.path, c.Path, s.name)
		assert.Equal(t, s.wantStatus, c.Status, s.name)
		assert.Equal(t, s.wantReplayed, c.Replayed, s.name)
		assert.Equal(t, s.wantForward, c.Forwarded, s.name)
		assert.False(t, c.At.IsZero(), s.name)
		if s.method == "POST" {
			assert.Equal(t, s.key, c.IdempotencyKey, s.name)
		} else {
			assert.Empty(t, c.IdempotencyKey, "keys are not recorded for GET")
		}
		wantForm, _ := url.ParseQuery(s.form)
		assert.Equal(t, wantForm, c.Form, s.name)
	}

	assert.Equal(t, 2, rec.Count("POST", "/v1/things"))
	assert.Equal(t, 1, rec.Count("get", "/v1/things"), "method is case-insensitive")
	assert.Equal(t, 3, rec.Count("", "/v1/things"))
	assert.Equal(t, 0, rec.Count("POST", "/v1/others"))
	assert.Len(t, rec.Effects("POST", "/v1/"), 5)

	mismatch := rec.Calls()[3]
	assert.False(t, mismatch.Forwarded)
	got := do(t, rec, "POST", "/v1/things", "k1", "a=9")
	assert.Equal(t, "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'k1' if you meant to execute a different request.", got.errMsg)
}

func TestRecorderReplayKeepsHeaders(t *testing.T) {
	rec, _ := newTestRecorder(t)
	send := func() *http.Response {
		req, _ := http.NewRequest("POST", rec.URL()+"/v1/things", strings.NewReader("a=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", "hdr")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	first, second := send(), send()
	assert.Equal(t, first.Header.Get("X-Upstream-N"), second.Header.Get("X-Upstream-N"))
	assert.Equal(t, "application/json", second.Header.Get("Content-Type"))
	assert.Empty(t, first.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, "true", second.Header.Get("Idempotent-Replayed"))
}

// A second request with a key whose first request is still running gets a
// 409 and is not forwarded; once the first finishes, the key replays.
func TestRecorderConcurrentSameKey(t *testing.T) {
	rec, up := newTestRecorder(t)

	first := make(chan result, 1)
	go func() { first <- do(t, rec, "POST", "/v1/slow", "busy", "a=1") }()
	require.Eventually(t, func() bool { return up.n.Load() == 1 }, 5*time.Second, 5*time.Millisecond, "first request reaches upstream")

	got := do(t, rec, "POST", "/v1/slow", "busy", "a=1")
	assert.Equal(t, http.StatusConflict, got.status)
	assert.Equal(t, "idempotency_error", got.errType)
	assert.Equal(t, "idempotency_key_in_use", got.errCode, "the code payments.Retryable retries on")

	close(up.release)
	select {
	case r := <-first:
		assert.Equal(t, 200, r.status)
		assert.Equal(t, "obj_1", r.id)
	case <-time.After(10 * time.Second):
		t.Fatal("first request did not finish")
	}
	again := do(t, rec, "POST", "/v1/slow", "busy", "a=1")
	assert.True(t, again.replayed)
	assert.Equal(t, "obj_1", again.id)
	assert.Equal(t, 1, rec.Count("POST", "/v1/slow"))
}

// Many clients retrying the same keys concurrently: each key has exactly
// one effect (run with -race).
func TestRecorderConcurrentClients(t *testing.T) {
	rec, _ := newTestRecorder(t)
	const keys, tries = 8, 5
	var wg sync.WaitGroup
	for k := range keys {
		for range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Retry on 409 like stripe-go does, boundedly.
				for range 100 {
					if r := do(t, rec, "POST", "/v1/things", fmt.Sprint("key-", k), "k="+fmt.Sprint(k)); r.status != http.StatusConflict {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				t.Errorf("key %d: still conflicting after 100 tries", k)
			}()
		}
	}
	wg.Wait()
	assert.Equal(t, keys, rec.Count("POST", "/v1/things"))
	replayed := 0
	for _, c := range rec.Calls() {
		if c.Replayed {
			replayed++
		}
	}
	assert.Equal(t, keys*(tries-1), replayed)
}

func TestRecorderReset(t *testing.T) {
	rec, _ := newTestRecorder(t)
	do(t, rec, "POST", "/v1/things", "k", "a=1")
	rec.Reset()
	assert.Empty(t, rec.Calls())
	got := do(t, rec, "POST", "/v1/things", "k", "a=2")
	assert.Equal(t, 200, got.status, "keys are forgotten too")
	assert.Equal(t, 1, rec.Count("POST", ""))
}

func TestRecorderUpstreamDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	rec := NewRecorder(deadURL)
	rec.Start()
	defer rec.Close()
	got := do(t, rec, "POST", "/v1/things", "k", "a=1")
	assert.Equal(t, http.StatusBadGateway, got.status)
	assert.Equal(t, "api_error", got.errType)
	calls := rec.Calls()
	require.Len(t, calls, 1)
	assert.False(t, calls[0].Forwarded)
	assert.Zero(t, rec.Count("", ""))

	got = do(t, rec, "POST", "/v1/things", "k", "a=1")
	assert.False(t, got.replayed, "an unreachable upstream is not stored")
}

func TestNewRecorderBadURL(t *testing.T) {
	assert.Panics(t, func() { NewRecorder("not a url") })
}

// Against the real stripe-mock through stripe-go: a repeated
// CheckoutSessions.New with the same key reaches stripe-mock once.
func TestRecorderWithStripeMock(t *testing.T) {
	bin, err := devstack.ToolPath("stripe-mock")
	if err != nil {
		t.Skipf("stripe-mock binary absent (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sm, err := devstack.StartStripeMock(ctx, devstack.StripeMockOptions{Bin: bin})
	require.NoError(t, err)
	defer func() { require.NoError(t, sm.Stop()) }()

	rec := NewRecorder(sm.URL)
	rec.Start()
	defer rec.Close()
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(rec.URL()),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	})
	sc := stripeclient.New(devstack.StripeMockAPIKey, &stripe.Backends{API: b, Connect: b, Uploads: b})

	params := func(amount int64) *stripe.CheckoutSessionParams {
		p := &stripe.CheckoutSessionParams{
			Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
			ClientReferenceID: stripe.String("job_1"),
			SuccessURL:        stripe.String("http://127.0.0.1/jobs/job_1"),
			LineItems: []*stripe.CheckoutSessionLineItemParams{{
				Quantity: stripe.Int64(1),
				PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
					Currency:    stripe.String("usd"),
					UnitAmount:  stripe.Int64(amount),
					ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("4x")},
				},
			}},
		}
		p.AddMetadata("job_id", "job_1")
		p.SetIdempotencyKey("checkout:job_1")
		return p
	}

	s1, err := sc.CheckoutSessions.New(params(499))
	require.NoError(t, err)
	s2, err := sc.CheckoutSessions.New(params(499))
	require.NoError(t, err)
	assert.Equal(t, s1.ID, s2.ID)
	assert.Equal(t, "true", s2.LastResponse.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, 1, rec.Count("POST", "/v1/checkout/sessions"), "exactly one forwarded POST")

	_, err = sc.CheckoutSessions.New(params(999))
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, stripe.ErrorTypeIdempotency, se.Type)
	assert.Equal(t, http.StatusBadRequest, se.HTTPStatusCode)
	assert.Equal(t, 1, rec.Count("POST", "/v1/checkout/sessions"))

	calls := rec.Calls()
	require.Len(t, calls, 3)
	assert.Equal(t, "job_1", calls[0].Form.Get("metadata[job_id]"))
	assert.Equal(t, "499", calls[0].Form.Get("line_items[0][price_data][unit_amount]"))
}

// stripe-go parses the PaymentIntent the Recorder builds even when the
// upstream gives nothing of the shape (the fake answers {"id": …} only).
func TestRecorderPaymentIntentWithStripeGo(t *testing.T) {
	rec, _ := newTestRecorder(t)
	rec.RegisterPayment("pi_3Go", 499, "usd")
	req, err := http.NewRequest("POST", rec.URL()+"/v1/refunds", strings.NewReader("payment_intent=pi_3Go&amount=99"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	sc := stripeClient(rec)
	params := &stripe.PaymentIntentParams{}
	params.AddExpand("latest_charge")
	pi, err := sc.PaymentIntents.Get("pi_3Go", params)
	require.NoError(t, err)
	assert.Equal(t, "pi_3Go", pi.ID)
	assert.Equal(t, int64(499), pi.Amount)
	assert.Equal(t, stripe.PaymentIntentStatusSucceeded, pi.Status)
	require.NotNil(t, pi.LatestCharge)
	ch, _ := rec.Payment("pi_3Go")
	assert.Equal(t, ch.ID, pi.LatestCharge.ID)
	assert.Equal(t, int64(499), pi.LatestCharge.Amount)
	assert.Equal(t, int64(99), pi.LatestCharge.AmountRefunded)
	assert.False(t, pi.LatestCharge.Refunded)
	assert.Equal(t, "pi_3Go", pi.LatestCharge.PaymentIntent.ID)

	rf, err := sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String("pi_3Go")})
	require.NoError(t, err)
	assert.Equal(t, int64(400), rf.Amount, "what was left")
	assert.Equal(t, ch.ID, rf.Charge.ID)
	assert.Equal(t, stripe.RefundStatusSucceeded, rf.Status)

	pi, err = sc.PaymentIntents.Get("pi_3Go", params)
	require.NoError(t, err)
	assert.True(t, pi.LatestCharge.Refunded)
	assert.Equal(t, int64(499), pi.LatestCharge.AmountRefunded)
}

// The stateful double over the real stripe-mock, through the service's
// client: stripe-mock's fixtures validate the requests and give the shape,
// the Recorder the state, and stripe-go parses the patched answers.
func TestRecorderStatefulWithStripeMock(t *testing.T) {
	bin, err := devstack.ToolPath("stripe-mock")
	if err != nil {
		t.Skipf("stripe-mock binary absent (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sm, err := devstack.StartStripeMock(ctx, devstack.StripeMockOptions{Bin: bin})
	require.NoError(t, err)
	defer func() { require.NoError(t, sm.Stop()) }()

	rec := NewRecorder(sm.URL)
	rec.Start()
	defer rec.Close()
	c, err := payments.New(devstack.StripeMockAPIKey, rec.URL())
	require.NoError(t, err)

	s, err := c.CreateCheckout(ctx, payments.CheckoutParams{
		JobID: "job_sm", AmountCents: 499, Currency: "usd", ProductName: "4x",
		SuccessURL: "https://hires.example/ok", CancelURL: "https://hires.example/cancel",
		ExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	assert.Equal(t, "open", s.Status)
	assert.Equal(t, int64(499), s.AmountTotal)
	assert.Empty(t, s.PaymentIntentID)

	const pi = "pi_3StripeMock"
	rec.CompleteSession(s.ID, true, pi, 0)
	got, err := c.GetSession(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, "complete", got.Status)
	assert.Equal(t, "paid", got.PaymentStatus)
	assert.Equal(t, pi, got.PaymentIntentID, "expanded PaymentIntent patched over the fixture")
	assert.Equal(t, int64(499), got.AmountTotal)
	_, err = c.ExpireSession(ctx, s.ID, "job_sm")
	require.ErrorIs(t, err, payments.ErrSessionNotOpen)

	rec.RefuseRefunds(pi, "charge_disputed", "")
	_, err = c.Refund(ctx, payments.RefundParams{JobID: "job_sm", PaymentIntentID: pi, Reason: "upscale_failed"})
	require.ErrorIs(t, err, payments.ErrRefundRefused)
	st, err := c.PaymentState(ctx, pi)
	require.NoError(t, err)
	assert.Equal(t, payments.PaymentState{PaymentIntentID: pi, Status: "succeeded", AmountCents: 499,
		ChargeID: mustCharge(t, rec, pi), Currency: "usd"}, st)

	rec.AllowRefunds(pi)
	r, err := c.Refund(ctx, payments.RefundParams{JobID: "job_sm", PaymentIntentID: pi, Reason: "upscale_failed", Attempt: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(499), r.AmountCents)
	assert.Equal(t, "succeeded", r.Status)
	assert.Equal(t, "job_sm", r.JobID)
	st, err = c.PaymentState(ctx, pi)
	require.NoError(t, err)
	assert.Equal(t, int64(499), st.AmountRefundedCents)
	assert.True(t, st.FullyRefunded())

	rec.RegisterPayment("pi_3ByHand", 700, "usd")
	_, err = rec.RefundByHand("pi_3ByHand")
	require.NoError(t, err)
	_, err = c.Refund(ctx, payments.RefundParams{JobID: "job_hand", PaymentIntentID: "pi_3ByHand", Reason: "upscale_failed"})
	require.ErrorIs(t, err, payments.ErrAlreadyRefunded)

	// stripe-mock's own validation errors pass as they are, unstored, and
	// change nothing.
	for range 2 {
		req, err := http.NewRequest("POST", rec.URL()+"/v1/refunds", strings.NewReader("payment_intent=pi_3Other&amount=abc"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+devstack.StripeMockAPIKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", "refund:invalid")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Idempotent-Replayed"))
	}
	assert.Zero(t, rec.RefundsCreated("pi_3Other"))
	assert.Equal(t, 2, rec.RefundCalls("pi_3Other", time.Time{}))
}
