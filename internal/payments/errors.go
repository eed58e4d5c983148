package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

var (
	// ErrInvalidInput marks our own validation failures, caught before any
	// request is sent. Retrying cannot fix them.
	ErrInvalidInput = errors.New("invalid input")

	// ErrSessionNotOpen is wrapped by ExpireSession when Stripe refuses to
	// expire a session that is already complete or expired.
	ErrSessionNotOpen = errors.New("checkout session is not open")

	// ErrAlreadyRefunded is wrapped by Refund when Stripe answers
	// charge_already_refunded: the charge has nothing left to refund.
	ErrAlreadyRefunded = errors.New("charge already refunded")
)

// APIError is an error answered by the Stripe API, reduced to fields that
// are safe to log: the secret key is redacted from Stripe's message.
type APIError struct {
	HTTPStatus int
	Type       string // invalid_request_error, card_error, api_error, idempotency_error
	Code       string // e.g. resource_missing, lock_timeout; often empty
	Param      string
	RequestID  string // quote it to Stripe support
	Message    string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe: %d %s", e.HTTPStatus, e.Type)
	if e.Code != "" {
		fmt.Fprintf(&b, " code=%s", e.Code)
	}
	if e.Param != "" {
		fmt.Fprintf(&b, " param=%s", e.Param)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " request_id=%s", e.RequestID)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// retryable: server-side trouble and throttling are worth retrying; any
// other 4xx will be answered the same way again.
func (e *APIError) retryable() bool {
	switch {
	case e.HTTPStatus >= 500, e.HTTPStatus == http.StatusTooManyRequests:
		return true
	case e.Code == string(stripe.ErrorCodeLockTimeout), e.Code == "rate_limit":
		return true
	case e.Code == string(stripe.ErrorCodeIdempotencyKeyInUse):
		// 409: a concurrent request with the same key (an earlier attempt
		// of the same activity) is still running.
		return true
	}
	return false
}

// notOpen reports whether an error from the expire endpoint means the
// session is no longer open. Real Stripe answers 400 invalid_request_error,
// no code, message `Only Checkout Sessions with a status in ["open"] can be
// expired. This Checkout Session has a status of `complete`.`. We send no
// parameters and an unknown ID is a 404, so any 400 invalid_request_error
// there is taken to be this case; the caller re-reads the session anyway.
func (e *APIError) notOpen() bool {
	return e.HTTPStatus == http.StatusBadRequest && e.Type == string(stripe.ErrorTypeInvalidRequest)
}

// keyRE matches anything shaped like a Stripe secret or restricted key.
// stripe-mock, for one, echoes the Authorization header in its 401 message.
var keyRE = regexp.MustCompile(`\b(sk|rk)_(test|live)_[A-Za-z0-9_]+`)

const redacted = "[REDACTED]"

// apiError converts a *stripe.Error into an *APIError; other errors
// (network, timeouts, undecodable bodies) are returned unchanged.
// The *stripe.Error itself is dropped: its Error() prints the raw message.
func (c *Client) apiError(err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return err
	}
	msg := keyRE.ReplaceAllString(se.Msg, redacted)
	if c.key != "" {
		msg = strings.ReplaceAll(msg, c.key, redacted)
	}
	return &APIError{
		HTTPStatus: se.HTTPStatusCode,
		Type:       string(se.Type),
		Code:       string(se.Code),
		Param:      se.Param,
		RequestID:  se.RequestID,
		Message:    msg,
	}
}

// nonRetryable are this package's errors that no retry can fix.
var nonRetryable = []error{
	ErrInvalidInput, ErrSessionNotOpen, ErrAlreadyRefunded, ErrRefundRefused,
	ErrMissingSignature, ErrInvalidSignature, ErrSignatureTooOld, ErrMalformedEvent, ErrAPIVersionMismatch,
}

// Retryable tells a Temporal activity whether err is worth another attempt:
// true for network errors, timeouts, 5xx, 429, lock_timeout and rate_limit;
// false for other 4xx (invalid request, authentication, card errors,
// idempotency_error, charge_already_refunded), for validation errors and for
// cancellation.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range nonRetryable {
		if errors.Is(err, target) {
			return false
		}
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.retryable()
	}
	var se *stripe.Error
	if errors.As(err, &se) {
		return (&APIError{HTTPStatus: se.HTTPStatusCode, Code: string(se.Code)}).retryable()
	}
	// The rest failed below the API: connection refused or reset, TLS,
	// timeouts, an unreadable body from a proxy. The idempotency keys make a
	// retry safe.
	return true
}
