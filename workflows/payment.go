package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// awaitPayment waits for the payment, at most the payment window, and
// records what came of it: paid (the job is pending) or abandoned. A
// Checkout completed with a delayed method (a bank debit) stops the payment
// window: the job then waits up to AsyncPayment for Stripe's word.
func (w *job) awaitPayment(ctx workflow.Context) (paid bool, err error) {
	decided, err := workflow.AwaitWithOptions(ctx,
		workflow.AwaitOptions{Timeout: w.in.Timeouts.Payment, TimerOptions: workflow.TimerOptions{Summary: "payment window"}},
		func() bool { return w.paid != nil || w.closedByEvent != nil || w.delayed != nil })
	if err != nil {
		return false, err
	}
	cause := ""
	if !decided {
		res, err := w.expireCheckout(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case res.Paid:
			w.paid, cause = &res.Payment, "stripe:"+res.Payment.SessionID
		case res.Processing && w.delayed == nil:
			w.delayed = &res.Payment
		}
	}
	if w.paid == nil && w.closedByEvent == nil && w.delayed != nil {
		if err := w.awaitDelayedPayment(ctx); err != nil {
			return false, err
		}
	}
	switch {
	case w.paid != nil:
		if cause == "" {
			cause = w.paid.EventID
		}
		return true, w.recordPayment(ctx, cause, *w.paid)
	case w.closedByEvent != nil:
		ps := jobs.PaymentExpired
		if w.closedByEvent.Type == jobs.EventCheckoutAsyncFailed {
			ps = jobs.PaymentFailed
		}
		return false, w.abandon(ctx, w.closedByEvent.EventID, ps)
	case w.delayed != nil:
		return false, w.abandon(ctx, "async_payment_timeout", jobs.PaymentFailed)
	}
	return false, w.abandon(ctx, "payment_timeout", jobs.PaymentExpired)
}

// awaitDelayedPayment records that the customer's bank payment is being
// processed, tells them, and waits for Stripe's verdict within AsyncPayment.
func (w *job) awaitDelayedPayment(ctx workflow.Context) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.MarkPaymentProcessing,
		activities.MarkPaymentProcessingInput{JobID: w.in.JobID, Cause: w.delayed.EventID}).Get(ctx, nil)
	if err != nil {
		return err
	}
	if err := w.setPaymentStatus(ctx, jobs.PaymentProcessing); err != nil {
		return err
	}
	_, err = workflow.AwaitWithOptions(ctx,
		workflow.AwaitOptions{Timeout: w.in.Timeouts.AsyncPayment, TimerOptions: workflow.TimerOptions{Summary: "delayed payment"}},
		func() bool { return w.paid != nil || w.closedByEvent != nil })
	return err
}

// expireCheckout closes the session at Stripe when the window closes with
// no news. Stripe may answer that the customer did pay, or completed
// Checkout with a delayed method: the caller decides what that means.
func (w *job) expireCheckout(ctx workflow.Context) (activities.ExpireCheckoutResult, error) {
	var res activities.ExpireCheckoutResult
	err := workflow.ExecuteActivity(stripeOptions(ctx, time.Hour), a.ExpireCheckout,
		activities.ExpireCheckoutInput{JobID: w.in.JobID, SessionID: w.in.Checkout.SessionID}).Get(ctx, &res)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return res, err
		}
		workflow.GetLogger(ctx).Error("Expiring the Checkout Session failed", "error", err)
	}
	if w.paid != nil { // a payment signal raced the expiry
		res.Paid = false
	}
	return res, nil
}

// recordPayment moves the job to pending with its payment. It runs inline
// (a local activity), so that Upsampler gets the image in the same
// workflow task: the customer has paid, and the upscale is what they wait
// for. The search attributes follow with the next status (processing, in
// that same task; or failed): one upsert, not two. Until then the Web UI
// shows the job awaiting payment, for as long as the submission takes.
func (w *job) recordPayment(ctx workflow.Context, cause string, p jobs.StripeEvent) error {
	err := workflow.ExecuteLocalActivity(dbLocalOptions(ctx), a.RecordPayment,
		activities.RecordPaymentInput{JobID: w.in.JobID, Cause: cause, Payment: p}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.PaymentStatus = jobs.PaymentPaid
	w.advance(jobs.StatusPending)
	return nil
}

func (w *job) abandon(ctx workflow.Context, cause string, ps jobs.PaymentStatus) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.RecordAbandoned,
		activities.RecordAbandonedInput{JobID: w.in.JobID, Cause: cause, PaymentStatus: ps}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.PaymentStatus = ps
	return w.setStatus(ctx, jobs.StatusAbandoned, jobs.AttrPaymentStatus.ValueSet(string(ps)))
}

// closeUnpaid ends an abandoned job. A payment can still reach the
// workflow while it winds down, in the very workflow task that would
// complete it: the workflow ends only once it has refunded every payment
// it accepted; a payment that comes after it ended is refunded by
// LatePaymentRefund.
func (w *job) closeUnpaid(ctx workflow.Context) error {
	for {
		if w.unrefundedPayment() {
			if err := w.settleLatePayment(ctx); err != nil {
				return err
			}
		}
		if err := yield(ctx); err != nil {
			return err
		}
		if !w.unrefundedPayment() {
			return nil
		}
	}
}

// unrefundedPayment: a payment reached the workflow and is neither
// refunded nor handed to an admin (who owns it then: no second refund loop).
func (w *job) unrefundedPayment() bool {
	return (w.latePaid != nil || w.paid != nil) &&
		w.state.PaymentStatus != jobs.PaymentRefunded && w.state.PaymentStatus != jobs.PaymentRefundNeedsAttention
}

// settleLatePayment refunds a payment that arrived once the job was
// abandoned (the session completed just before it was expired, or its
// event came late). A payment arriving after the workflow has ended is
// refunded by LatePaymentRefund instead, started by the webhook.
func (w *job) settleLatePayment(ctx workflow.Context) error {
	late := w.latePaid
	if late == nil {
		late = w.paid // arrived while the abandonment was being recorded
	}
	if late == nil {
		return nil
	}
	err := workflow.ExecuteActivity(dbOptions(ctx), a.RecordLatePayment,
		activities.RecordPaymentInput{JobID: w.in.JobID, Cause: late.EventID, Payment: *late}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.paid = late
	if err := w.setPaymentStatus(ctx, jobs.PaymentPaid); err != nil {
		return err
	}
	return w.refund(ctx, jobs.ReasonLatePayment)
}
