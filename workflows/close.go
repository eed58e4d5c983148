package workflows

import (
	"go.temporal.io/sdk/workflow"

	"hires/internal/jobs"
)

// settleAtCloseVersion marks the change that makes an unpaid job's
// workflow refund every payment that reaches it before it ends, not only
// one that came before the abandonment was recorded.
const settleAtCloseVersion = "settle-payments-at-close"

// closeUnpaid ends a job that was not paid in time (abandoned) or never
// got a payment page (checkout failed). A payment can still reach the
// workflow while it winds down: during the notifications flush waits for,
// or in the very workflow task that would complete it. The workflow ends
// only once it has refunded every payment it accepted; a payment that
// comes after it ended is refunded by LatePaymentRefund.
func (w *job) closeUnpaid(ctx workflow.Context, abandoned bool) error {
	if workflow.GetVersion(ctx, settleAtCloseVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		if abandoned {
			return w.settleLatePayment(ctx)
		}
		return nil
	}
	for {
		if w.unrefundedPayment() {
			if err := w.settleLatePayment(ctx); err != nil {
				return err
			}
		}
		w.flush(ctx)
		if err := yield(ctx); err != nil {
			return err
		}
		if !w.unrefundedPayment() {
			return nil
		}
	}
}

// unrefundedPayment: a payment reached the workflow and is not refunded.
func (w *job) unrefundedPayment() bool {
	return (w.latePaid != nil || w.paid != nil) && w.state.PaymentStatus != jobs.PaymentRefunded
}

// yield lets every other coroutine of the workflow run until it blocks, so
// that a signal delivered in the current workflow task is handled before
// the main flow decides on what it knows. (Coroutines run in creation
// order; the main one is first.) It issues no command.
func yield(ctx workflow.Context) error {
	done := false
	workflow.Go(ctx, func(workflow.Context) { done = true })
	return workflow.Await(ctx, func() bool { return done })
}
