package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
)

const (
	metadataReason = "reason"
	// Stripe's limits: metadata values up to 500 characters, object IDs and
	// idempotency keys up to 255.
	maxMetadataValueLen = 500
	maxStripeIDLen      = 255
)

// RefundParams describes the full refund of one job's payment.
type RefundParams struct {
	JobID           string
	PaymentIntentID string // pi_…, from the checkout session
	// Reason is our machine-readable failure reason (e.g. upscale_failed),
	// stored in the refund's metadata[reason]. It must be fixed for the job
	// (computed once, in the workflow): a retry with another reason under the
	// same idempotency key is rejected by Stripe with 400 idempotency_error.
	Reason string
	// Attempt numbers the refund attempts of the job; the idempotency key is
	// refund:<jobID> for attempt 0 (the key refunds made before attempts
	// existed carry) and refund:<jobID>:<attempt> after. Within one attempt
	// every retry must reuse the key, so a lost answer can never refund
	// twice. Move to a new attempt only after Stripe gave a definite refusal
	// (the error wraps ErrRefundRefused: no refund was created) AND
	// PaymentState shows nothing refunded: anything else (timeouts, 5xx, 409,
	// 429) may have refunded, and a new key would then refund again.
	Attempt int
}

// idempotencyKey is the key of this attempt; see Attempt.
func (p RefundParams) idempotencyKey() string {
	if p.Attempt == 0 {
		return "refund:" + p.JobID
	}
	return "refund:" + p.JobID + ":" + strconv.Itoa(p.Attempt)
}

func (p RefundParams) validate() error {
	switch {
	case p.JobID == "":
		return fmt.Errorf("%w: job ID is empty", ErrInvalidInput)
	case len(p.JobID) > maxJobIDLen:
		return fmt.Errorf("%w: job ID is longer than %d bytes", ErrInvalidInput, maxJobIDLen)
	case p.Attempt < 0:
		return fmt.Errorf("%w: refund attempt %d is negative", ErrInvalidInput, p.Attempt)
	}
	if err := validatePaymentIntentID(p.PaymentIntentID); err != nil {
		return err
	}
	switch {
	case p.Reason == "":
		// An empty metadata value would unset the key at Stripe.
		return fmt.Errorf("%w: refund reason is empty", ErrInvalidInput)
	case len(p.Reason) > maxMetadataValueLen:
		return fmt.Errorf("%w: refund reason is longer than %d bytes", ErrInvalidInput, maxMetadataValueLen)
	}
	return nil
}

// validatePaymentIntentID checks the shape of a pi_ ID. The ID is never
// echoed: it may be something else (a key, say) pasted in the wrong place.
func validatePaymentIntentID(id string) error {
	switch {
	case !strings.HasPrefix(id, "pi_") || len(id) == len("pi_"):
		return fmt.Errorf("%w: payment intent ID must start with pi_", ErrInvalidInput)
	case len(id) > maxStripeIDLen:
		return fmt.Errorf("%w: payment intent ID is longer than %d bytes", ErrInvalidInput, maxStripeIDLen)
	case strings.ContainsFunc(id, isSpaceOrControl):
		return fmt.Errorf("%w: payment intent ID contains whitespace or control characters", ErrInvalidInput)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// ErrRefundRefused is wrapped (alongside the *APIError) by Refund when Stripe
// definitely refused the refund for a business reason, so no refund was
// created: a card_error, or an invalid_request_error with one of
// refusalCodes (charge_disputed, balance_insufficient, …). It is final for
// this attempt. Ambiguous failures (network errors, timeouts, 5xx, 409, 429)
// never wrap it: the refund may have been made. charge_already_refunded
// wraps ErrAlreadyRefunded instead.
var ErrRefundRefused = errors.New("refund refused")

// refusalCodes are the invalid_request_error codes by which Stripe refuses a
// refund that was otherwise well-formed.
var refusalCodes = map[string]bool{
	string(stripe.ErrorCodeChargeDisputed):        true,
	"charge_expired_for_refund":                   true, // not among v76's constants
	string(stripe.ErrorCodeChargeNotRefundable):   true,
	string(stripe.ErrorCodeBalanceInsufficient):   true,
	string(stripe.ErrorCodeInsufficientFunds):     true,
	string(stripe.ErrorCodeRefundDisputedPayment): true,
	string(stripe.ErrorCodeAmountTooLarge):        true,
}

// refused reports whether e is a definite business refusal of a refund.
func (e *APIError) refused() bool {
	if e.HTTPStatus != http.StatusBadRequest && e.HTTPStatus != http.StatusPaymentRequired {
		return false
	}
	switch e.Type {
	case string(stripe.ErrorTypeCard):
		return true
	case string(stripe.ErrorTypeInvalidRequest):
		return refusalCodes[e.Code]
	}
	return false
}

// Refund is the part of a Stripe refund the service uses.
type Refund struct {
	ID              string
	PaymentIntentID string
	ChargeID        string
	Status          string // pending, requires_action, succeeded, failed, canceled
	AmountCents     int64
	Currency        string
	Created         time.Time
	// JobID is metadata.job_id, which Client.Refund sets.
	JobID string
	// FailureReason is set when Status is failed, e.g. expired_or_canceled_card.
	FailureReason string
}

func refundFrom(r *stripe.Refund) Refund {
	out := Refund{
		ID:            r.ID,
		Status:        string(r.Status),
		AmountCents:   r.Amount,
		Currency:      string(r.Currency),
		JobID:         r.Metadata[metadataJobID],
		FailureReason: string(r.FailureReason),
	}
	if r.PaymentIntent != nil {
		out.PaymentIntentID = r.PaymentIntent.ID
	}
	if r.Charge != nil {
		out.ChargeID = r.Charge.ID
	}
	if r.Created != 0 {
		out.Created = time.Unix(r.Created, 0).UTC()
	}
	return out
}

// Charge is the part of a Stripe charge the service uses, as carried by
// charge.refunded events.
type Charge struct {
	ID                  string
	PaymentIntentID     string
	AmountCents         int64
	AmountRefundedCents int64 // cumulative over all refunds of the charge
	Currency            string
	Refunded            bool // true once fully refunded
	// RefundIDs lists charge.refunds.data[].id. Since API 2022-11-15 Stripe
	// does not include charge.refunds unless expanded, so on 2023-10-16
	// deliveries this is normally empty: rely on AmountRefundedCents and
	// Refunded instead.
	RefundIDs []string
	JobID     string // metadata.job_id, if present
}

func chargeFrom(c *stripe.Charge) Charge {
	out := Charge{
		ID:                  c.ID,
		AmountCents:         c.Amount,
		AmountRefundedCents: c.AmountRefunded,
		Currency:            string(c.Currency),
		Refunded:            c.Refunded,
		JobID:               c.Metadata[metadataJobID],
	}
	if c.PaymentIntent != nil {
		out.PaymentIntentID = c.PaymentIntent.ID
	}
	if c.Refunds != nil {
		for _, r := range c.Refunds.Data {
			if r != nil && r.ID != "" {
				out.RefundIDs = append(out.RefundIDs, r.ID)
			}
		}
	}
	return out
}

// Refund refunds the full amount (whatever is left of it) of the job's
// payment intent, with reason requested_by_customer and the job ID and our
// reason in the refund's metadata. The idempotency key is derived from the
// job and p.Attempt, so a retried or replayed refund returns the first
// refund instead of refunding twice.
//
// If the charge has nothing left to refund (refunded earlier, e.g. in the
// Dashboard, or by this job after Stripe's 24 h idempotency window), the
// error wraps ErrAlreadyRefunded and is not retryable. If Stripe refused
// the refund (disputed charge, short balance, …) the error wraps
// ErrRefundRefused and is not retryable either; see RefundParams.Attempt for
// when another attempt is safe.
//
// The returned Status is often final (succeeded) for cards, but may be
// pending; a later change arrives as a charge.refund.updated event.
func (c *Client) Refund(ctx context.Context, p RefundParams) (Refund, error) {
	if err := p.validate(); err != nil {
		return Refund{}, fmt.Errorf("payments: refund for job %s: %w", p.JobID, err)
	}

	params := &stripe.RefundParams{
		PaymentIntent: stripe.String(p.PaymentIntentID),
		// Never fraudulent: that adds the card and email to Radar block lists.
		Reason: stripe.String(string(stripe.RefundReasonRequestedByCustomer)),
	}
	params.AddMetadata(metadataJobID, p.JobID)
	params.AddMetadata(metadataReason, p.Reason)
	params.SetIdempotencyKey(p.idempotencyKey())
	params.Context = ctx

	r, err := c.api.Refunds.New(params)
	if err != nil {
		err = c.apiError(err)
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			switch {
			case apiErr.Code == string(stripe.ErrorCodeChargeAlreadyRefunded):
				err = fmt.Errorf("%w: %w", ErrAlreadyRefunded, err)
			case apiErr.refused():
				err = fmt.Errorf("%w: %w", ErrRefundRefused, err)
			}
		}
		return Refund{}, fmt.Errorf("payments: refund %s for job %s: %w", p.PaymentIntentID, p.JobID, err)
	}
	return refundFrom(r), nil
}
