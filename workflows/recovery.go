package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

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
	w.notify(ctx, "", jobs.HookJobFailed)
	return nil
}

// refund gives a paid job's payment back, once. Stripe's idempotency key
// is derived from the job, so replays and retries cannot refund twice. A
// refund Stripe refuses is surfaced to admins (payment status
// refund_failed) and tried again every RefundRetry, for as long as it
// takes: a refund owed is never dropped. It ends early if Stripe reports
// the payment refunded by other means (charge.refunded).
func (w *job) refund(ctx workflow.Context, reason string) error {
	if w.paid == nil || w.state.PaymentStatus == jobs.PaymentRefunded {
		return nil
	}
	for {
		var r activities.RefundResult
		err := workflow.ExecuteActivity(refundOptions(ctx, w.in.Timeouts.RefundRetry), a.RefundPayment,
			activities.RefundInput{JobID: w.in.JobID, PaymentIntentID: w.paid.PaymentIntentID,
				AmountCents: w.paid.AmountCents, Reason: reason}).Get(ctx, &r)
		if err == nil {
			w.notify(ctx, jobs.EmailFailedRefunded, "")
			return w.setPaymentStatus(ctx, jobs.PaymentRefunded)
		}
		if temporal.IsCanceledError(err) {
			return err
		}
		workflow.GetLogger(ctx).Error("Refund refused; retrying later", "error", err)
		if err := workflow.ExecuteActivity(dbOptions(ctx), a.MarkRefundFailed,
			activities.MarkRefundFailedInput{JobID: w.in.JobID, Detail: err.Error()}).Get(ctx, nil); err != nil {
			return err
		}
		if err := w.setPaymentStatus(ctx, jobs.PaymentRefundFailed); err != nil {
			return err
		}
		if _, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: w.in.Timeouts.RefundRetry, TimerOptions: workflow.TimerOptions{Summary: "refund retry"}},
			func() bool { return w.refundSeen }); err != nil {
			return err
		}
	}
}

// awaitRetry keeps a failed job open for an admin's retry signal. It
// reports whether a retry was asked for, after moving the job back to pending.
func (w *job) awaitRetry(ctx workflow.Context) (bool, error) {
	w.state.RetryUntil = workflow.Now(ctx).Add(w.in.Timeouts.RetryWindow)
	w.retryRequested = nil
	asked, err := workflow.AwaitWithOptions(ctx,
		workflow.AwaitOptions{Timeout: w.in.Timeouts.RetryWindow, TimerOptions: workflow.TimerOptions{Summary: "retry window"}},
		func() bool { return w.retryRequested != nil })
	if err != nil || !asked {
		return false, err
	}
	cause := "admin_retry"
	if by := w.retryRequested.RequestedBy; by != "" {
		cause += ":" + by
	}
	w.state.Attempt++
	err = workflow.ExecuteActivity(dbOptions(ctx), a.MarkRetrying,
		activities.MarkRetryingInput{JobID: w.in.JobID, Attempt: w.state.Attempt, Cause: cause}).Get(ctx, nil)
	if err != nil {
		return false, err
	}
	w.state.FailureReason, w.state.RetryUntil, w.state.UpsamplerJobID = "", workflow.Now(ctx), ""
	return true, w.setStatus(ctx, jobs.StatusPending, jobs.AttrFailureReason.ValueUnset())
}

// settleCancelled ends a cancelled job cleanly: an unpaid job is abandoned
// (its session expired), a paid one not yet delivered fails and is
// refunded, a delivered one has its file removed now.
func (w *job) settleCancelled(ctx workflow.Context) error {
	switch w.state.Status {
	case jobs.StatusAwaitingPayment:
		paid := w.paid != nil
		if !paid && w.checkout != nil {
			var err error
			if paid, err = w.expireCheckout(ctx); err != nil {
				return err
			}
		}
		if !paid {
			return w.abandon(ctx, jobs.ReasonCancelled, jobs.PaymentExpired)
		}
		if w.state.Status == jobs.StatusAwaitingPayment { // paid, not yet recorded
			if err := w.recordPayment(ctx, w.paid.EventID, *w.paid); err != nil {
				return err
			}
		}
		fallthrough
	case jobs.StatusPending, jobs.StatusProcessing:
		if err := w.fail(ctx, jobs.ReasonCancelled, nil); err != nil {
			return err
		}
		return w.refund(ctx, jobs.ReasonCancelled)
	case jobs.StatusFailed:
		return w.refund(ctx, w.state.FailureReason)
	case jobs.StatusAbandoned:
		return w.settleLatePayment(ctx)
	case jobs.StatusCompleted:
		return w.deleteDownload(ctx)
	}
	return nil
}
