package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// failAndRefund ends the job failed, with its reason, and refunds its
// payment.
func (w *job) failAndRefund(ctx workflow.Context, f *failure) error {
	if err := w.fail(ctx, f.reason, f.err); err != nil {
		return err
	}
	return w.refund(ctx, f.reason)
}

// fail ends the job in failed with a machine-readable reason.
func (w *job) fail(ctx workflow.Context, reason string, cause error) error {
	detail := ""
	if cause != nil {
		detail = cause.Error()
	}
	err := workflow.ExecuteActivity(dbOptions(ctx), a.FailJob,
		activities.FailJobInput{JobID: w.in.JobID, Reason: reason, Detail: detail}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.FailureReason = reason
	workflow.GetLogger(ctx).Warn("Job failed", "reason", reason, "detail", detail)
	if err := w.setStatus(ctx, jobs.StatusFailed, jobs.AttrFailureReason.ValueSet(reason)); err != nil {
		return err
	}
	return nil
}

// refund gives a paid job's payment back, once. Each attempt first reads
// what Stripe holds, so a refund made by hand (or by an earlier attempt)
// ends the loop without another call; so does Stripe's charge.refunded or
// an admin's word. Within an attempt every retry reuses one idempotency
// key: a lost answer can never refund twice. Stripe replays a refusal under
// its key for 24 hours, so a refused attempt is followed, RefundRetry
// later, by one under a new key: no refund exists then (Stripe refused,
// and the next attempt checks again before sending). After
// RefundAttention of refusals the job is handed to an admin
// (refund_needs_attention); the loop, and the history, end there.
func (w *job) refund(ctx workflow.Context, reason string) error {
	if w.paid == nil || w.state.PaymentStatus == jobs.PaymentRefunded ||
		w.state.PaymentStatus == jobs.PaymentRefundNeedsAttention { // people own it now
		return nil
	}
	t := w.in.Timeouts
	since := w.refusedSince // set when this refund was taken over from another workflow
	if since.IsZero() {
		since = workflow.Now(ctx)
	}
	giveUp := since.Add(t.RefundAttention)
	for {
		if w.refundSeen {
			return w.refundConfirmed(ctx)
		}
		var r activities.RefundResult
		err := workflow.ExecuteActivity(refundOptions(ctx, t.RefundRetry), a.RefundPayment,
			activities.RefundInput{JobID: w.in.JobID, PaymentIntentID: w.paid.PaymentIntentID,
				AmountCents: w.paid.AmountCents, Reason: reason, Attempt: w.refundAttempt}).Get(ctx, &r)
		if err == nil {
			return w.refundConfirmed(ctx)
		}
		if temporal.IsCanceledError(err) {
			return err
		}
		if isType(err, activities.ErrTypeRefundRefused) {
			w.refundAttempt++ // its key holds the refusal now
		}
		workflow.GetLogger(ctx).Error("Refund refused; retrying later", "error", err, "attempt", w.refundAttempt)
		if !workflow.Now(ctx).Before(giveUp) {
			return w.refundNeedsAttention(ctx, err)
		}
		if err := workflow.ExecuteActivity(dbOptions(ctx), a.MarkRefundFailed, activities.MarkRefundFailedInput{
			JobID: w.in.JobID, Detail: err.Error(), NextAttempt: w.refundAttempt}).Get(ctx, nil); err != nil {
			return err
		}
		if err := w.setPaymentStatus(ctx, jobs.PaymentRefundFailed); err != nil {
			return err
		}
		wait := min(t.RefundRetry, giveUp.Sub(workflow.Now(ctx))) // positive: giveUp is ahead
		if _, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "refund retry"}},
			func() bool { return w.refundSeen }); err != nil {
			return err
		}
	}
}

// refundConfirmed mirrors a refund already recorded in the job's row.
func (w *job) refundConfirmed(ctx workflow.Context) error {
	return w.setPaymentStatus(ctx, jobs.PaymentRefunded)
}

// refundNeedsAttention stops retrying a refund Stripe keeps refusing and
// tells the admins, who refund by hand or mark it settled.
func (w *job) refundNeedsAttention(ctx workflow.Context, cause error) error {
	var moved bool
	err := workflow.ExecuteActivity(dbOptions(ctx), a.MarkRefundNeedsAttention,
		activities.MarkRefundFailedInput{JobID: w.in.JobID, Detail: cause.Error()}).Get(ctx, &moved)
	if err != nil {
		return err
	}
	if !moved { // refunded meanwhile, by hand or by an admin's word
		return w.refundConfirmed(ctx)
	}
	workflow.GetLogger(ctx).Error("Refund needs an admin's attention", "attempts", w.refundAttempt)
	return w.setPaymentStatus(ctx, jobs.PaymentRefundNeedsAttention)
}

// refundSettledLate: a refund handed to the admins was settled since (by
// hand at Stripe, or by an admin's word).
func (w *job) refundSettledLate() bool {
	return w.refundSeen && w.state.PaymentStatus == jobs.PaymentRefundNeedsAttention
}

// awaitRetry keeps a failed job open for an admin's retry signal. It
// reports whether a retry was asked for, after moving the job back to pending.
func (w *job) awaitRetry(ctx workflow.Context) (bool, error) {
	w.state.RetryUntil = workflow.Now(ctx).Add(w.in.Timeouts.RetryWindow)
	// A retry asked for while the refund was still being tried is kept.
	for w.retryRequested == nil {
		left := w.state.RetryUntil.Sub(workflow.Now(ctx))
		if left <= 0 {
			return false, nil
		}
		_, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: left, TimerOptions: workflow.TimerOptions{Summary: "retry window"}},
			func() bool { return w.retryRequested != nil || w.refundSettledLate() })
		if err != nil {
			return false, err
		}
		if w.refundSettledLate() {
			if err := w.setPaymentStatus(ctx, jobs.PaymentRefunded); err != nil {
				return false, err
			}
		}
	}
	cause := "admin_retry"
	if by := w.retryRequested.RequestedBy; by != "" {
		cause += ":" + by
	}
	w.state.Attempt++
	err := workflow.ExecuteActivity(dbOptions(ctx), a.MarkRetrying,
		activities.MarkRetryingInput{JobID: w.in.JobID, Attempt: w.state.Attempt, Cause: cause}).Get(ctx, nil)
	if err != nil {
		return false, err
	}
	w.retryRequested = nil
	w.state.FailureReason, w.state.RetryUntil, w.state.UpsamplerJobID = "", workflow.Now(ctx), ""
	return true, w.setStatus(ctx, jobs.StatusPending, jobs.AttrFailureReason.ValueUnset())
}
