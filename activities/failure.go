package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/store"
)

// FailJobInput ends a job that cannot be delivered.
type FailJobInput struct {
	JobID  string
	Reason string // one of the jobs.Reason* values
	Detail string
}

// FailJob marks the job failed with its reason.
func (a *Activities) FailJob(ctx context.Context, in FailJobInput) error {
	if err := a.Store.MarkFailed(ctx, in.JobID, in.Reason, in.Detail); err != nil {
		return storeErr(err)
	}
	a.Metrics.JobFinished(metrics.JobFailed)
	a.Metrics.JobFailedBecause(in.Reason)
	return nil
}

// RefundInput is a payment to give back in full.
type RefundInput struct {
	JobID           string
	PaymentIntentID string
	AmountCents     int64  // what was paid, recorded if Stripe says it is already refunded
	Reason          string // the failure reason, kept in the refund's metadata
	// Attempt numbers the idempotency key (refund:<job>, then
	// refund:<job>:<n>). The workflow moves to the next one only after a
	// definite refusal, which Stripe would replay under the same key for 24 h.
	Attempt int
}

// RefundResult is the refund Stripe made.
type RefundResult struct {
	RefundID    string
	AmountCents int64
	Status      string
}

// ErrTypeRefundRefused: Stripe refused the refund for good under this
// attempt's key (no refund was made); the workflow tries a new key later.
const ErrTypeRefundRefused = "RefundRefused"

// RefundPayment refunds the job's payment and records it. It first reads
// what Stripe holds: a payment refunded already (by an earlier attempt, or
// by hand in the Stripe Dashboard) is recorded as refunded and nothing is
// sent. The idempotency key is derived from the job and the attempt, so a
// retried or replayed call can never refund twice.
func (a *Activities) RefundPayment(ctx context.Context, in RefundInput) (RefundResult, error) {
	state, err := a.Payments.PaymentState(ctx, in.PaymentIntentID)
	if err != nil {
		return RefundResult{}, stripeErr(err)
	}
	var r payments.Refund
	if state.FullyRefunded() {
		r = payments.Refund{AmountCents: state.AmountRefundedCents, Status: "succeeded"}
	} else {
		r, err = a.Payments.Refund(ctx, payments.RefundParams{
			JobID: in.JobID, PaymentIntentID: in.PaymentIntentID, Reason: in.Reason, Attempt: in.Attempt,
		})
	}
	switch {
	case errors.Is(err, payments.ErrAlreadyRefunded):
		r = payments.Refund{AmountCents: in.AmountCents, Status: "succeeded"}
	case errors.Is(err, payments.ErrRefundRefused):
		return RefundResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRefundRefused, err)
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
	// NextAttempt is the number of the refund's next idempotency key.
	NextAttempt int
}

// MarkRefundFailed surfaces a refused refund to admins (payment status
// refund_failed); the workflow keeps retrying it.
func (a *Activities) MarkRefundFailed(ctx context.Context, in MarkRefundFailedInput) error {
	if err := a.Store.MarkRefundFailed(ctx, in.JobID, in.Detail, in.NextAttempt); err != nil {
		return storeErr(err)
	}
	a.Metrics.RefundFailed()
	return nil
}

// MarkRefundNeedsAttention hands a refund Stripe kept refusing to the
// admins (payment status refund_needs_attention). It reports whether the
// job was moved: false when the refund was confirmed meanwhile.
func (a *Activities) MarkRefundNeedsAttention(ctx context.Context, in MarkRefundFailedInput) (bool, error) {
	moved, err := a.Store.MarkRefundNeedsAttention(ctx, in.JobID, in.Detail)
	if err != nil {
		return false, storeErr(err)
	}
	if moved {
		a.Metrics.RefundNeedsAttention()
	}
	return moved, nil
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
