package payments

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stripe/stripe-go/v76"
)

func TestRetryable(t *testing.T) {
	apiErr := func(status int, typ, code string) error {
		return fmt.Errorf("payments: create checkout for job j: %w",
			&APIError{HTTPStatus: status, Type: typ, Code: code, RequestID: "req_1"})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", &url.Error{Op: "Post", URL: "http://127.0.0.1:1/v1/checkout/sessions", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, true},
		{"client timeout", &url.Error{Op: "Post", URL: "https://api.stripe.com", Err: context.DeadlineExceeded}, true},
		{"undecodable proxy body", errors.New("Couldn't deserialize JSON (response status: 502, body sample: '<html>')"), true},
		{"context canceled", fmt.Errorf("payments: get session cs_1: %w", &url.Error{Op: "Get", Err: context.Canceled}), false},
		{"500 api_error", apiErr(500, "api_error", ""), true},
		{"503", apiErr(503, "api_error", ""), true},
		{"429 rate limit", apiErr(429, "invalid_request_error", "rate_limit"), true},
		{"429 lock_timeout", apiErr(429, "invalid_request_error", "lock_timeout"), true},
		{"409 idempotency_key_in_use", apiErr(409, "invalid_request_error", "idempotency_key_in_use"), true},
		{"400 invalid request", apiErr(400, "invalid_request_error", "parameter_unknown"), false},
		{"401 authentication", apiErr(401, "invalid_request_error", ""), false},
		{"402 card_error", apiErr(402, "card_error", "card_declined"), false},
		{"400 idempotency_error", apiErr(400, "idempotency_error", ""), false},
		{"404 resource_missing", apiErr(404, "invalid_request_error", "resource_missing"), false},
		{"raw stripe.Error 500", &stripe.Error{HTTPStatusCode: 500, Type: stripe.ErrorTypeAPI}, true},
		{"raw stripe.Error 400", &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeInvalidRequest}, false},
		{"validation", fmt.Errorf("payments: create checkout for job : %w: job ID is empty", ErrInvalidInput), false},
		{"session not open", fmt.Errorf("payments: expire: %w: %w", ErrSessionNotOpen, &APIError{HTTPStatus: 400, Type: "invalid_request_error"}), false},
		{"webhook bad signature", fmt.Errorf("payments: parse webhook: %w", ErrInvalidSignature), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Retryable(tc.err))
		})
	}
}

func TestAPIErrorMessage(t *testing.T) {
	err := &APIError{HTTPStatus: 400, Type: "invalid_request_error", Code: "parameter_unknown", Param: "foo", RequestID: "req_9", Message: "Received unknown parameter: foo"}
	assert.Equal(t, "stripe: 400 invalid_request_error code=parameter_unknown param=foo request_id=req_9: Received unknown parameter: foo", err.Error())
	assert.Equal(t, "stripe: 500 api_error", (&APIError{HTTPStatus: 500, Type: "api_error"}).Error())
}

func TestAPIErrorRedactsKeys(t *testing.T) {
	c := &Client{key: "sk_custom"}
	err := c.apiError(&stripe.Error{
		HTTPStatusCode: 401, Type: stripe.ErrorTypeInvalidRequest,
		Msg: "Authorization was 'Bearer sk_test_a_b', also sk_live_XyZ_1 and sk_custom.",
	})
	assert.Equal(t, "stripe: 401 invalid_request_error: Authorization was 'Bearer [REDACTED]', also [REDACTED] and [REDACTED].", err.Error())

	plain := errors.New("dial tcp: connection refused")
	assert.Same(t, plain, c.apiError(plain))
}
