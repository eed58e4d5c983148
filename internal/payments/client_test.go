package payments

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, key, base string
		ok              bool
	}{
		{"secret key", "sk_test_123", "http://127.0.0.1:12111", true},
		{"restricted key", "rk_live_123", "https://api.stripe.com", true},
		{"empty key", "", "https://api.stripe.com", false},
		{"publishable key", "pk_live_secretish", "https://api.stripe.com", false},
		{"key with newline", "sk_live_abc\n", "https://api.stripe.com", false},
		{"relative base", "sk_live_abc", "api.stripe.com", false},
		{"ftp base", "sk_live_abc", "ftp://api.stripe.com", false},
		{"no host", "sk_live_abc", "https://", false},
		{"empty base", "sk_live_abc", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.key, tc.base)
			if tc.ok {
				require.NoError(t, err)
				assert.NotNil(t, c)
				return
			}
			require.ErrorIs(t, err, ErrInvalidInput)
			assert.False(t, Retryable(err))
			if tc.key != "" {
				assert.NotContains(t, err.Error(), tc.key)
			}
		})
	}
}

func validParams() CheckoutParams {
	return CheckoutParams{
		JobID:         "job_1",
		AmountCents:   499,
		Currency:      "usd",
		ProductName:   "4x AI upscale",
		Description:   "1024x768 to 4096x3072",
		CustomerEmail: "ada@example.com",
		SuccessURL:    "https://hires.example/jobs/job_1?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:     "https://hires.example/jobs/job_1/cancel",
		ExpiresAt:     time.Now().Add(time.Hour),
	}
}

// fakeStripe answers every request with status and body, counting requests.
func fakeStripe(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_fake")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newTestClient(t *testing.T, key, base string) *Client {
	t.Helper()
	c, err := newClient(key, base, 0) // no stripe-go retries: keep tests fast and counts exact
	require.NoError(t, err)
	return c
}

func TestCreateCheckoutValidation(t *testing.T) {
	srv, requests := fakeStripe(t, 200, `{}`)
	c := newTestClient(t, "sk_test_123", srv.URL)

	tests := []struct {
		name   string
		mutate func(*CheckoutParams)
	}{
		{"no job", func(p *CheckoutParams) { p.JobID = "" }},
		{"job too long", func(p *CheckoutParams) { p.JobID = string(make([]byte, 201)) }},
		{"amount below minimum", func(p *CheckoutParams) { p.AmountCents = 49 }},
		{"negative amount", func(p *CheckoutParams) { p.AmountCents = -500 }},
		{"uppercase currency", func(p *CheckoutParams) { p.Currency = "USD" }},
		{"no currency", func(p *CheckoutParams) { p.Currency = "" }},
		{"no product name", func(p *CheckoutParams) { p.ProductName = "" }},
		{"relative success URL", func(p *CheckoutParams) { p.SuccessURL = "/jobs/job_1" }},
		{"cancel URL not http", func(p *CheckoutParams) { p.CancelURL = "javascript:alert(1)" }},
		{"no expiry", func(p *CheckoutParams) { p.ExpiresAt = time.Time{} }},
		{"expiry in the past", func(p *CheckoutParams) { p.ExpiresAt = time.Now().Add(-time.Minute) }},
		{"expiry under 30 minutes", func(p *CheckoutParams) { p.ExpiresAt = time.Now().Add(29 * time.Minute) }},
		{"expiry over 24 hours", func(p *CheckoutParams) { p.ExpiresAt = time.Now().Add(24*time.Hour + time.Minute) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validParams()
			tc.mutate(&p)
			_, err := c.CreateCheckout(context.Background(), p)
			require.ErrorIs(t, err, ErrInvalidInput)
			assert.False(t, Retryable(err))
			assert.Contains(t, err.Error(), "payments: create checkout for job ")
		})
	}
	assert.Zero(t, requests.Load(), "invalid input must not reach Stripe")

	_, err := c.GetSession(context.Background(), "")
	assert.ErrorIs(t, err, ErrInvalidInput)
	_, err = c.ExpireSession(context.Background(), "cs_1", "")
	assert.ErrorIs(t, err, ErrInvalidInput)
	assert.Zero(t, requests.Load())
}

func TestExpiresAtWindowEdges(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := validParams()
	p.ExpiresAt = now.Add(minCheckoutTTL)
	assert.NoError(t, p.validate(now))
	p.ExpiresAt = now.Add(maxCheckoutTTL)
	assert.NoError(t, p.validate(now))
	p.ExpiresAt = now.Add(minCheckoutTTL - time.Second)
	assert.ErrorIs(t, p.validate(now), ErrInvalidInput)
}

// Real Stripe's answer to expiring a session that is no longer open.
const notOpenBody = `{"error":{"message":"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of ` + "`complete`" + `.","type":"invalid_request_error","request_log_url":"https://dashboard.stripe.com/test/logs/req_fake"}}`

func TestExpireSessionNotOpen(t *testing.T) {
	srv, _ := fakeStripe(t, 400, notOpenBody)
	c := newTestClient(t, "sk_test_123", srv.URL)

	_, err := c.ExpireSession(context.Background(), "cs_test_1", "job_1")
	require.ErrorIs(t, err, ErrSessionNotOpen)
	assert.False(t, Retryable(err))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 400, apiErr.HTTPStatus)
	assert.Equal(t, "req_fake", apiErr.RequestID)
	assert.Contains(t, err.Error(), "payments: expire session cs_test_1 for job job_1: checkout session is not open: stripe: 400 invalid_request_error request_id=req_fake")
}

func TestExpireSessionOtherErrorsAreNotNotOpen(t *testing.T) {
	srv, _ := fakeStripe(t, 404, `{"error":{"code":"resource_missing","message":"No such checkout.session: 'cs_x'","param":"session","type":"invalid_request_error"}}`)
	c := newTestClient(t, "sk_test_123", srv.URL)
	_, err := c.ExpireSession(context.Background(), "cs_x", "job_1")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrSessionNotOpen)
	assert.False(t, Retryable(err))
}

// stripe-go must turn each Stripe answer into an *APIError that Retryable
// classifies, keeping type, code, status and request ID but never the key.
func TestStripeErrorsClassified(t *testing.T) {
	const key = "sk_test_leakme"
	tests := []struct {
		name      string
		status    int
		body      string
		retryable bool
		wantCode  string
	}{
		{"500", 500, `{"error":{"type":"api_error","message":"Something went wrong"}}`, true, ""},
		{"429 lock_timeout", 429, `{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"busy"}}`, true, "lock_timeout"},
		{"429 rate_limit", 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}`, true, "rate_limit"},
		{"402 card", 402, `{"error":{"type":"card_error","code":"card_declined","message":"declined"}}`, false, "card_declined"},
		{"400 idempotency", 400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}`, false, ""},
		{"401 echoes key", 401, `{"error":{"type":"invalid_request_error","message":"Authorization was 'Bearer ` + key + `'."}}`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeStripe(t, tc.status, tc.body)
			c := newTestClient(t, key, srv.URL)
			_, err := c.CreateCheckout(context.Background(), validParams())
			require.Error(t, err)
			assert.Equal(t, tc.retryable, Retryable(err))

			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.HTTPStatus)
			assert.Equal(t, tc.wantCode, apiErr.Code)
			assert.Equal(t, "req_fake", apiErr.RequestID)
			assert.Contains(t, err.Error(), "payments: create checkout for job job_1: stripe: ")
			assert.NotContains(t, err.Error(), key)
			var raw *stripe.Error
			assert.False(t, errors.As(err, &raw), "the raw stripe.Error would print the unredacted message")
		})
	}
}

func TestNetworkErrorsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more

	c := newTestClient(t, "sk_test_123", base)
	_, err := c.GetSession(context.Background(), "cs_1")
	require.Error(t, err)
	assert.True(t, Retryable(err), "%v", err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.GetSession(ctx, "cs_1")
	require.Error(t, err)
	assert.False(t, Retryable(err), "a canceled activity should not be retried: %v", err)
}

func TestSessionFrom(t *testing.T) {
	cs := &stripe.CheckoutSession{
		ID: "cs_1", URL: "https://checkout.stripe.com/x", Status: "complete", PaymentStatus: "paid",
		PaymentIntent: &stripe.PaymentIntent{ID: "pi_1"}, AmountTotal: 499, Currency: "usd",
		CustomerEmail: "prefill@example.com", CustomerDetails: &stripe.CheckoutSessionCustomerDetails{Email: "typed@example.com"},
		ClientReferenceID: "job_ref", Metadata: map[string]string{"job_id": "job_meta"}, ExpiresAt: 1_800_000_000,
	}
	assert.Equal(t, Session{
		ID: "cs_1", URL: "https://checkout.stripe.com/x", Status: "complete", PaymentStatus: "paid",
		PaymentIntentID: "pi_1", AmountTotal: 499, Currency: "usd", CustomerEmail: "typed@example.com",
		JobID: "job_meta", ClientReferenceID: "job_ref", ExpiresAt: time.Unix(1_800_000_000, 0).UTC(),
	}, sessionFrom(cs))

	// Fallbacks: customer_email without customer_details, client_reference_id without metadata.
	got := sessionFrom(&stripe.CheckoutSession{ID: "cs_2", CustomerEmail: "prefill@example.com", ClientReferenceID: "job_ref"})
	assert.Equal(t, "prefill@example.com", got.CustomerEmail)
	assert.Equal(t, "job_ref", got.JobID)
	assert.True(t, got.ExpiresAt.IsZero())
}
