package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/store"
)

// ExpireCheckoutInput names the session to close.
type ExpireCheckoutInput struct {
	JobID     string
	SessionID string
}

// ExpireCheckoutResult tells whether the customer had in fact paid.
type ExpireCheckoutResult struct {
	Paid bool
	// Processing: the session was completed with a delayed payment method
	// that Stripe has not decided on yet.
	Processing bool
	Payment    jobs.StripeEvent // set when Paid or Processing
}

// ExpireCheckout closes the session when the payment window ends, so the
// customer can no longer pay for a job we gave up on. If Stripe says the
// session was already completed and paid, the payment is reported instead;
// the customer's email Stripe reports is recorded here, not returned.
func (a *Activities) ExpireCheckout(ctx context.Context, in ExpireCheckoutInput) (ExpireCheckoutResult, error) {
	s, err := a.Payments.ExpireSession(ctx, in.SessionID, in.JobID)
	if errors.Is(err, payments.ErrSessionNotOpen) {
		s, err = a.Payments.GetSession(ctx, in.SessionID)
	}
	if err != nil {
		return ExpireCheckoutResult{}, stripeErr(err)
	}
	if s.Status == "complete" {
		if err := a.Store.SetCustomerEmail(ctx, in.JobID, s.CustomerEmail); err != nil {
			return ExpireCheckoutResult{}, err // retried: the row must have it before the payment is recorded
		}
		return ExpireCheckoutResult{Paid: s.PaymentStatus == "paid", Processing: s.PaymentStatus == "unpaid", Payment: jobs.StripeEvent{
			Type:            "checkout.session.retrieved",
			SessionID:       s.ID,
			PaymentStatus:   s.PaymentStatus,
			PaymentIntentID: s.PaymentIntentID,
			AmountCents:     s.AmountTotal,
			Currency:        s.Currency,
		}}, nil
	}
	return ExpireCheckoutResult{}, nil
}

func stripeErr(err error) error {
	if payments.Retryable(err) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeStripeRejected, err)
}

// RecordPaymentInput is a confirmed payment. It carries no customer
// email: the webhook (or ExpireCheckout) has recorded it in the job's row.
type RecordPaymentInput struct {
	JobID   string
	Cause   string // Stripe event ID, or how the payment was learned
	Payment jobs.StripeEvent
}

// RecordPayment moves the job to pending with its payment details.
func (a *Activities) RecordPayment(ctx context.Context, in RecordPaymentInput) error {
	if err := a.Store.MarkPaid(ctx, in.record()); err != nil {
		return storeErr(err)
	}
	a.Metrics.Paid(in.Payment.AmountCents)
	return nil
}

func (in RecordPaymentInput) record() store.Payment {
	return store.Payment{
		JobID:           in.JobID,
		Cause:           in.Cause,
		PaymentIntentID: in.Payment.PaymentIntentID,
		AmountCents:     in.Payment.AmountCents,
		Currency:        in.Payment.Currency,
	}
}

// MarkPaymentProcessingInput is a Checkout completed with a delayed method.
type MarkPaymentProcessingInput struct {
	JobID string
	Cause string // the Stripe event ID
}

// MarkPaymentProcessing records that the customer's delayed payment is
// being processed by their bank.
func (a *Activities) MarkPaymentProcessing(ctx context.Context, in MarkPaymentProcessingInput) error {
	return storeErr(a.Store.MarkPaymentProcessing(ctx, in.JobID, in.Cause))
}

// RecordAbandonedInput closes an unpaid job.
type RecordAbandonedInput struct {
	JobID         string
	Cause         string
	PaymentStatus jobs.PaymentStatus
}

// RecordAbandoned marks the job abandoned.
func (a *Activities) RecordAbandoned(ctx context.Context, in RecordAbandonedInput) error {
	if err := a.Store.MarkAbandoned(ctx, in.JobID, in.Cause, in.PaymentStatus); err != nil {
		return storeErr(err)
	}
	a.Metrics.JobFinished(metrics.JobAbandoned)
	return nil
}

// RecordLatePayment records a payment that arrived after the job was
// abandoned, before it is refunded.
func (a *Activities) RecordLatePayment(ctx context.Context, in RecordPaymentInput) error {
	if err := a.Store.RecordLatePayment(ctx, in.record()); err != nil {
		return storeErr(err)
	}
	a.Metrics.Paid(in.Payment.AmountCents) // money received, refunded next
	return nil
}
