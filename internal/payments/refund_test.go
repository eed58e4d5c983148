package payments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
)

func validRefundParams() RefundParams {
	return RefundParams{JobID: "job_1", PaymentIntentID: "pi_3Abc", Reason: "upscale_failed"}
}

func TestRefundValidation(t *testing.T) {
	srv, requests := fakeStripe(t, 200, `{}`)
	c := newTestClient(t, "sk_test_123", srv.URL)

	tests := []struct {
		name   string
		mutate func(*RefundParams)
		secret string // must not be echoed in the error
	}{
		{"no job", func(p *RefundParams) { p.JobID = "" }, ""},
		{"job too long", func(p *RefundParams) { p.JobID = strings.Repeat("j", 201) }, ""},
		{"no payment intent", func(p *RefundParams) { p.PaymentIntentID = "" }, ""},
		{"bare prefix", func(p *RefundParams) { p.PaymentIntentID = "pi_" }, ""},
		{"charge ID", func(p *RefundParams) { p.PaymentIntentID = "ch_3Abc" }, ""},
		{"checkout session ID", func(p *RefundParams) { p.PaymentIntentID = "cs_test_a1" }, ""},
		{"uppercase prefix", func(p *RefundParams) { p.PaymentIntentID = "PI_3Abc" }, ""},
		{"secret key pasted", func(p *RefundParams) { p.PaymentIntentID = "sk_live_leak" }, "sk_live_leak"},
		{"payment intent with space", func(p *RefundParams) { p.PaymentIntentID = "pi_3Abc def" }, ""},
		{"payment intent with newline", func(p *RefundParams) { p.PaymentIntentID = "pi_3Abc\n" }, ""},
		{"payment intent too long", func(p *RefundParams) { p.PaymentIntentID = "pi_" + strings.Repeat("a", 253) }, ""},
		{"no reason", func(p *RefundParams) { p.Reason = "" }, ""},
		{"reason too long", func(p *RefundParams) { p.Reason = strings.Repeat("r", 501) }, ""},
		{"negative attempt", func(p *RefundParams) { p.Attempt = -1 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validRefundParams()
			tc.mutate(&p)
			_, err := c.Refund(context.Background(), p)
			require.ErrorIs(t, err, ErrInvalidInput)
			assert.NotErrorIs(t, err, ErrAlreadyRefunded)
			assert.NotErrorIs(t, err, ErrRefundRefused)
			assert.False(t, Retryable(err))
			assert.Contains(t, err.Error(), "payments: refund for job ")
			if tc.secret != "" {
				assert.NotContains(t, err.Error(), tc.secret)
			}
		})
	}
	assert.Zero(t, requests.Load(), "invalid input must not reach Stripe")

	// Limits are inclusive.
	p := validRefundParams()
	p.JobID = strings.Repeat("j", maxJobIDLen)
	p.PaymentIntentID = "pi_" + strings.Repeat("a", maxStripeIDLen-3)
	p.Reason = strings.Repeat("r", maxMetadataValueLen)
	p.Attempt = 1 << 30
	assert.NoError(t, p.validate())
	assert.LessOrEqual(t, len(p.idempotencyKey()), maxStripeIDLen, "Stripe's key limit")
}

// Attempt 0 keeps the key refunds always had; later attempts get their own.
func TestRefundIdempotencyKeyPerAttempt(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(refundBody))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, "sk_test_123", srv.URL)

	tests := []struct {
		attempt int
		want    string
	}{
		{0, "refund:job_1"},
		{1, "refund:job_1:1"},
		{12, "refund:job_1:12"},
	}
	for _, tc := range tests {
		p := validRefundParams()
		p.Attempt = tc.attempt
		assert.Equal(t, tc.want, p.idempotencyKey())
		// Twice: a retry within one attempt reuses its key.
		for range 2 {
			_, err := c.Refund(context.Background(), p)
			require.NoError(t, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{
		"refund:job_1", "refund:job_1", "refund:job_1:1", "refund:job_1:1", "refund:job_1:12", "refund:job_1:12",
	}, keys)
}

// A refund as Stripe returns it from POST /v1/refunds on API 2023-10-16.
const refundBody = `{
  "id": "re_3Abc",
  "object": "refund",
  "amount": 499,
  "balance_transaction": "txn_3Abc",
  "charge": "ch_3Abc",
  "created": 1700000000,
  "currency": "usd",
  "destination_details": {"card": {"reference": "123", "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}, "type": "card"},
  "metadata": {"job_id": "job_1", "reason": "upscale_failed"},
  "payment_intent": "pi_3Abc",
  "reason": "requested_by_customer",
  "receipt_number": null,
  "source_transfer_reversal": null,
  "status": "pending",
  "transfer_reversal": null
}`

type seenRequest struct {
	method, path, idempotencyKey, stripeVersion string
	form                                        url.Values
}

func TestRefundRequestAndResponse(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []seenRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Stripe-Version"), form})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(refundBody))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, "sk_test_123", srv.URL)

	// Twice, as a retried activity would: the request must not change.
	for range 2 {
		got, err := c.Refund(context.Background(), validRefundParams())
		require.NoError(t, err)
		assert.Equal(t, Refund{
			ID: "re_3Abc", PaymentIntentID: "pi_3Abc", ChargeID: "ch_3Abc", Status: "pending",
			AmountCents: 499, Currency: "usd", Created: time.Unix(1_700_000_000, 0).UTC(), JobID: "job_1",
		}, got)
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	for _, r := range seen {
		assert.Equal(t, http.MethodPost, r.method)
		assert.Equal(t, "/v1/refunds", r.path)
		assert.Equal(t, "refund:job_1", r.idempotencyKey)
		assert.Equal(t, stripe.APIVersion, r.stripeVersion)
		assert.Equal(t, url.Values{
			"payment_intent":   {"pi_3Abc"},
			"reason":           {"requested_by_customer"},
			"metadata[job_id]": {"job_1"},
			"metadata[reason]": {"upscale_failed"},
		}, r.form, "a full refund: no amount")
	}
}

// Stripe's answers to POST /v1/refunds must be classified: an already
// refunded charge is recognisable and final; a business refusal is
// recognisable (ErrRefundRefused) and final; other 4xx are final without
// being refusals; 409, 429 and 5xx are retried and never refusals, since
// the refund may have been made; the key never shows.
func TestRefundErrorsClassified(t *testing.T) {
	const key = "sk_test_leakme"
	tests := []struct {
		name            string
		status          int
		body            string
		retryable       bool
		alreadyRefunded bool
		refused         bool
		wantCode        string
	}{
		{"400 charge_already_refunded", 400, `{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_3Abc has already been refunded.","request_log_url":"https://dashboard.stripe.com/test/logs/req_fake"}}`, false, true, false, "charge_already_refunded"},
		{"400 charge_disputed", 400, `{"error":{"type":"invalid_request_error","code":"charge_disputed","message":"Charge ch_3Abc has been charged back; cannot issue a refund."}}`, false, false, true, "charge_disputed"},
		{"400 charge_expired_for_refund", 400, `{"error":{"type":"invalid_request_error","code":"charge_expired_for_refund","message":"The charge ch_3Abc is too old to be refunded."}}`, false, false, true, "charge_expired_for_refund"},
		{"400 balance_insufficient", 400, `{"error":{"type":"invalid_request_error","code":"balance_insufficient","message":"You have insufficient funds in your Stripe account."}}`, false, false, true, "balance_insufficient"},
		{"400 refund_disputed_payment", 400, `{"error":{"type":"invalid_request_error","code":"refund_disputed_payment","message":"disputed"}}`, false, false, true, "refund_disputed_payment"},
		{"400 amount_too_large", 400, `{"error":{"type":"invalid_request_error","code":"amount_too_large","param":"amount","message":"Refund amount is greater than unrefunded amount on charge"}}`, false, false, true, "amount_too_large"},
		{"402 card_error", 402, `{"error":{"type":"card_error","code":"card_declined","message":"declined"}}`, false, false, true, "card_declined"},
		{"400 card_error", 400, `{"error":{"type":"card_error","code":"expired_card","message":"expired"}}`, false, false, true, "expired_card"},
		{"400 validation, no code", 400, `{"error":{"type":"invalid_request_error","message":"Received unknown parameter: amout"}}`, false, false, false, ""},
		{"400 other code", 400, `{"error":{"type":"invalid_request_error","code":"parameter_invalid_integer","param":"amount","message":"Invalid integer"}}`, false, false, false, "parameter_invalid_integer"},
		{"400 idempotency_error", 400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}`, false, false, false, ""},
		{"402 api_error", 402, `{"error":{"type":"api_error","code":"charge_disputed","message":"odd"}}`, false, false, false, "charge_disputed"},
		{"404 resource_missing", 404, `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"payment_intent","message":"No such payment_intent: 'pi_3Abc'"}}`, false, false, false, "resource_missing"},
		{"401 echoes key", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: ` + key + `"}}`, false, false, false, ""},
		{"409 idempotency_key_in_use", 409, `{"error":{"type":"idempotency_error","code":"idempotency_key_in_use","message":"There is currently another in-progress request using this Idempotent Key"}}`, true, false, false, "idempotency_key_in_use"},
		{"429 rate_limit", 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}`, true, false, false, "rate_limit"},
		{"429 lock_timeout", 429, `{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"busy"}}`, true, false, false, "lock_timeout"},
		{"500 api_error", 500, `{"error":{"type":"api_error","message":"Something went wrong with ` + key + `"}}`, true, false, false, ""},
		{"500 with a refusal code", 500, `{"error":{"type":"invalid_request_error","code":"charge_disputed","message":"odd"}}`, true, false, false, "charge_disputed"},
		{"503 api_error", 503, `{"error":{"type":"api_error","message":"unavailable"}}`, true, false, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, requests := fakeStripe(t, tc.status, tc.body)
			c := newTestClient(t, key, srv.URL)
			got, err := c.Refund(context.Background(), validRefundParams())
			require.Error(t, err)
			assert.Equal(t, Refund{}, got)
			assert.Equal(t, int32(1), requests.Load())
			assert.Equal(t, tc.retryable, Retryable(err), "%v", err)
			assert.Equal(t, tc.alreadyRefunded, errors.Is(err, ErrAlreadyRefunded), "%v", err)
			assert.Equal(t, tc.refused, errors.Is(err, ErrRefundRefused), "%v", err)
			assert.NotErrorIs(t, err, ErrInvalidInput)

			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.HTTPStatus)
			assert.Equal(t, tc.wantCode, apiErr.Code)
			assert.Equal(t, "req_fake", apiErr.RequestID)
			assert.Contains(t, err.Error(), "payments: refund pi_3Abc for job job_1: ")
			assert.NotContains(t, err.Error(), key)
			var raw *stripe.Error
			assert.False(t, errors.As(err, &raw), "the raw stripe.Error would print the unredacted message")
		})
	}
}

func TestRefundAlreadyRefundedMessage(t *testing.T) {
	srv, _ := fakeStripe(t, 400, `{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_3Abc has already been refunded."}}`)
	c := newTestClient(t, "sk_test_123", srv.URL)
	_, err := c.Refund(context.Background(), validRefundParams())
	assert.EqualError(t, err, "payments: refund pi_3Abc for job job_1: charge already refunded: "+
		"stripe: 400 invalid_request_error code=charge_already_refunded request_id=req_fake: Charge ch_3Abc has already been refunded.")
}

func TestRefundRefusedMessage(t *testing.T) {
	srv, _ := fakeStripe(t, 400, `{"error":{"type":"invalid_request_error","code":"charge_disputed","message":"Charge ch_3Abc has been charged back; cannot issue a refund."}}`)
	c := newTestClient(t, "sk_test_123", srv.URL)
	p := validRefundParams()
	p.Attempt = 2
	_, err := c.Refund(context.Background(), p)
	assert.EqualError(t, err, "payments: refund pi_3Abc for job job_1: refund refused: "+
		"stripe: 400 invalid_request_error code=charge_disputed request_id=req_fake: Charge ch_3Abc has been charged back; cannot issue a refund.")
}

func TestRefundNetworkErrorsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens any more

	c := newTestClient(t, "sk_test_123", base)
	_, err := c.Refund(context.Background(), validRefundParams())
	require.Error(t, err)
	assert.True(t, Retryable(err), "%v", err)
	assert.NotErrorIs(t, err, ErrAlreadyRefunded)
	assert.NotErrorIs(t, err, ErrRefundRefused, "a lost answer is not a refusal")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Refund(ctx, validRefundParams())
	require.Error(t, err)
	assert.False(t, Retryable(err), "a canceled activity should not be retried: %v", err)
}

func TestRetryableAlreadyRefunded(t *testing.T) {
	// Even if it were ever paired with a status that is otherwise retried.
	err := fmt.Errorf("payments: refund: %w: %w", ErrAlreadyRefunded, &APIError{HTTPStatus: 500, Type: "api_error"})
	assert.False(t, Retryable(err))
	err = fmt.Errorf("payments: refund: %w: %w", ErrRefundRefused, &APIError{HTTPStatus: 500, Type: "api_error"})
	assert.False(t, Retryable(err))
}

func TestRefundFrom(t *testing.T) {
	got := refundFrom(&stripe.Refund{
		ID: "re_1", Amount: 499, Currency: "usd", Status: stripe.RefundStatusFailed,
		FailureReason: stripe.RefundFailureReasonExpiredOrCanceledCard,
		Charge:        &stripe.Charge{ID: "ch_1"}, PaymentIntent: &stripe.PaymentIntent{ID: "pi_1"},
		Metadata: map[string]string{"job_id": "job_1", "reason": "x"}, Created: 1_700_000_000,
	})
	assert.Equal(t, Refund{
		ID: "re_1", PaymentIntentID: "pi_1", ChargeID: "ch_1", Status: "failed", AmountCents: 499, Currency: "usd",
		Created: time.Unix(1_700_000_000, 0).UTC(), JobID: "job_1", FailureReason: "expired_or_canceled_card",
	}, got)
	assert.Equal(t, Refund{ID: "re_2"}, refundFrom(&stripe.Refund{ID: "re_2"}))
}

func TestChargeFrom(t *testing.T) {
	got := chargeFrom(&stripe.Charge{
		ID: "ch_1", Amount: 499, AmountRefunded: 499, Currency: "usd", Refunded: true,
		PaymentIntent: &stripe.PaymentIntent{ID: "pi_1"}, Metadata: map[string]string{"job_id": "job_1"},
		Refunds: &stripe.RefundList{Data: []*stripe.Refund{{ID: "re_2"}, nil, {ID: "re_1"}}},
	})
	assert.Equal(t, Charge{
		ID: "ch_1", PaymentIntentID: "pi_1", AmountCents: 499, AmountRefundedCents: 499, Currency: "usd",
		Refunded: true, RefundIDs: []string{"re_2", "re_1"}, JobID: "job_1",
	}, got)
	assert.Equal(t, Charge{ID: "ch_2"}, chargeFrom(&stripe.Charge{ID: "ch_2"}))
}
