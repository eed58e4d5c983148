package activities

import (
	"context"
	"errors"

	"hires/internal/payments"
	"hires/internal/store"
)

// RefundInput is a payment to give back in full.
type RefundInput struct {
	JobID           string
	PaymentIntentID string
	AmountCents     int64  // what was paid, recorded if Stripe says it is already refunded
	Reason          string // the failure reason, kept in the refund's metadata
}

// RefundResult is the refund Stripe made.
type RefundResult struct {
	RefundID    string
	AmountCents int64
	Status      string
}

// RefundPayment refunds the job's payment and records it. The idempotency
// key is derived from the job, so a retried or replayed refund can never
// refund twice; a payment already refunded (say, from the Stripe dashboard)
// counts as refunded.
func (a *Activities) RefundPayment(ctx context.Context, in RefundInput) (RefundResult, error) {
	r, err := a.Payments.Refund(ctx, payments.RefundParams{
		JobID: in.JobID, PaymentIntentID: in.PaymentIntentID, Reason: in.Reason,
	})
	switch {
	case errors.Is(err, payments.ErrAlreadyRefunded):
		r = payments.Refund{AmountCents: in.AmountCents, Status: "succeeded"}
	case err != nil:
		return RefundResult{}, stripeErr(err)
	}
	if err := a.Store.MarkRefunded(ctx, store.Refund{
		JobID: in.JobID, RefundID: r.ID, AmountCents: r.AmountCents, Status: r.Status,
	}); err != nil {
		return RefundResult{}, storeErr(err)
	}
	a.Metrics.Refunded(r.AmountCents)
	return RefundResult{RefundID: r.ID, AmountCents: r.AmountCents, Status: r.Status}, nil
}

// MarkRefundFailedInput records a refused refund.
type MarkRefundFailedInput struct {
	JobID  string
	Detail string
}

// MarkRefundFailed surfaces a refused refund to admins (payment status
// refund_failed); the workflow keeps retrying it.
func (a *Activities) MarkRefundFailed(ctx context.Context, in MarkRefundFailedInput) error {
	return storeErr(a.Store.MarkRefundFailed(ctx, in.JobID, in.Detail))
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

// MarkRetryingInput starts another attempt at a failed job.
type MarkRetryingInput struct {
	JobID   string
	Attempt int
	Cause   string
}

// MarkRetrying moves a failed job back to pending for an admin retry.
func (a *Activities) MarkRetrying(ctx context.Context, in MarkRetryingInput) error {
	return storeErr(a.Store.MarkRetrying(ctx, in.JobID, in.Attempt, in.Cause))
}
