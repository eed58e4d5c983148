package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/internal/jobs"
)

// cancelled ends a job an admin cancelled, in a context the cancellation
// does not reach, and ends the workflow as Canceled.
func (w *job) cancelled(ctx workflow.Context) error {
	settleCtx, _ := workflow.NewDisconnectedContext(ctx)
	if err := w.settleCancelled(settleCtx); err != nil {
		return err
	}
	return temporal.NewCanceledError("job cancelled; settled as " + string(w.state.Status))
}

// settleCancelled ends a cancelled job cleanly: an unpaid job is abandoned
// (its session expired), a paid one not yet delivered fails and is
// refunded, a delivered one has its file removed now.
func (w *job) settleCancelled(ctx workflow.Context) error {
	switch w.state.Status {
	case jobs.StatusAwaitingPayment:
		cause := ""
		if w.paid != nil {
			cause = w.paid.EventID
		} else {
			// The customer may have paid without our hearing of it: ask
			// Stripe, closing the session. A payment found is recorded and
			// refunded; the image is not sent for upscaling.
			res, err := w.expireCheckout(ctx)
			if err != nil {
				return err
			}
			if res.Paid {
				w.paid, cause = &res.Payment, "stripe:"+res.Payment.SessionID
			}
		}
		if w.paid == nil {
			return w.abandon(ctx, jobs.ReasonCancelled, jobs.PaymentExpired)
		}
		if cause == "" {
			cause = w.paid.EventID
		}
		if err := w.recordPayment(ctx, cause, *w.paid); err != nil {
			return err
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
