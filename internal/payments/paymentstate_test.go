package payments

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
)

// A PaymentIntent as Stripe returns it on 2023-10-16 with
// expand[]=latest_charge, after a partial refund.
const paymentIntentBody = `{
  "id": "pi_3Abc",
  "object": "payment_intent",
  "amount": 499,
  "amount_received": 499,
  "currency": "usd",
  "status": "succeeded",
  "latest_charge": {
    "id": "ch_3Abc",
    "object": "charge",
    "amount": 499,
    "amount_captured": 499,
    "amount_refunded": 200,
    "currency": "usd",
    "payment_intent": "pi_3Abc",
    "refunded": false,
    "status": "succeeded"
  },
  "metadata": {"job_id": "job_1"}
}`

func TestPaymentStateRequestAndResponse(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []seenRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Stripe-Version"), r.URL.Query()})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(paymentIntentBody))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, "sk_test_123", srv.URL)

	got, err := c.PaymentState(context.Background(), "pi_3Abc")
	require.NoError(t, err)
	assert.Equal(t, PaymentState{
		PaymentIntentID: "pi_3Abc", Status: "succeeded", AmountCents: 499, AmountRefundedCents: 200,
		ChargeID: "ch_3Abc", Refunded: false, Currency: "usd",
	}, got)
	assert.False(t, got.FullyRefunded())

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 1)
	assert.Equal(t, http.MethodGet, seen[0].method)
	assert.Equal(t, "/v1/payment_intents/pi_3Abc", seen[0].path)
	assert.Empty(t, seen[0].idempotencyKey, "a read carries no key")
	assert.Equal(t, stripe.APIVersion, seen[0].stripeVersion)
	assert.Equal(t, url.Values{"expand[0]": {"latest_charge"}}, seen[0].form)
}

func TestPaymentStateShapes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want PaymentState
	}{
		{"fully refunded",
			`{"id":"pi_1","object":"payment_intent","amount":499,"currency":"usd","status":"succeeded",
			  "latest_charge":{"id":"ch_1","object":"charge","amount":499,"amount_refunded":499,"refunded":true,"currency":"usd"}}`,
			PaymentState{PaymentIntentID: "pi_1", Status: "succeeded", AmountCents: 499, AmountRefundedCents: 499, ChargeID: "ch_1", Refunded: true, Currency: "usd"}},
		{"latest_charge not expanded",
			`{"id":"pi_1","object":"payment_intent","amount":499,"currency":"eur","status":"succeeded","latest_charge":"ch_1"}`,
			PaymentState{PaymentIntentID: "pi_1", Status: "succeeded", AmountCents: 499, ChargeID: "ch_1", Currency: "eur"}},
		{"no charge yet",
			`{"id":"pi_1","object":"payment_intent","amount":499,"currency":"usd","status":"requires_payment_method","latest_charge":null}`,
			PaymentState{PaymentIntentID: "pi_1", Status: "requires_payment_method", AmountCents: 499, Currency: "usd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeStripe(t, 200, tc.body)
			c := newTestClient(t, "sk_test_123", srv.URL)
			got, err := c.PaymentState(context.Background(), "pi_1")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestPaymentStateFullyRefunded(t *testing.T) {
	tests := []struct {
		name string
		s    PaymentState
		want bool
	}{
		{"nothing refunded", PaymentState{AmountCents: 499}, false},
		{"partly refunded", PaymentState{AmountCents: 499, AmountRefundedCents: 498}, false},
		{"amount refunded", PaymentState{AmountCents: 499, AmountRefundedCents: 499}, true},
		{"refunded flag", PaymentState{AmountCents: 499, Refunded: true}, true},
		{"more than paid", PaymentState{AmountCents: 499, AmountRefundedCents: 500}, true},
		{"unknown amount", PaymentState{}, false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.s.FullyRefunded(), tc.name)
	}
}

func TestPaymentStateValidation(t *testing.T) {
	srv, requests := fakeStripe(t, 200, paymentIntentBody)
	c := newTestClient(t, "sk_test_123", srv.URL)
	for _, id := range []string{"", "pi_", "ch_3Abc", "PI_3Abc", "pi_3Abc def", "pi_3Abc\n", "pi_" + strings.Repeat("a", 253), "sk_live_leak"} {
		_, err := c.PaymentState(context.Background(), id)
		require.ErrorIs(t, err, ErrInvalidInput, "%q", id)
		assert.False(t, Retryable(err))
		assert.Contains(t, err.Error(), "payments: payment state: ")
		if len(id) > len("pi_") {
			assert.NotContains(t, err.Error(), id, "the ID is not echoed")
		}
	}
	assert.Zero(t, requests.Load(), "invalid input must not reach Stripe")
}

func TestPaymentStateErrorsClassified(t *testing.T) {
	const key = "sk_test_leakme"
	tests := []struct {
		name      string
		status    int
		body      string
		retryable bool
	}{
		{"404 resource_missing", 404, `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"intent","message":"No such payment_intent: 'pi_3Abc'"}}`, false},
		{"401 echoes key", 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: ` + key + `"}}`, false},
		{"429 rate_limit", 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}`, true},
		{"500 api_error", 500, `{"error":{"type":"api_error","message":"Something went wrong with ` + key + `"}}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := fakeStripe(t, tc.status, tc.body)
			c := newTestClient(t, key, srv.URL)
			_, err := c.PaymentState(context.Background(), "pi_3Abc")
			require.Error(t, err)
			assert.Equal(t, tc.retryable, Retryable(err), "%v", err)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.HTTPStatus)
			assert.Contains(t, err.Error(), "payments: payment state of pi_3Abc: stripe: ")
			assert.NotContains(t, err.Error(), key)
			var raw *stripe.Error
			assert.False(t, errors.As(err, &raw))
		})
	}

	// Network failure: retryable.
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c := newTestClient(t, "sk_test_123", base)
	_, err := c.PaymentState(context.Background(), "pi_3Abc")
	require.Error(t, err)
	assert.True(t, Retryable(err), "%v", err)
}
