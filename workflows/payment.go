package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// createCheckout takes the session the API made before starting the job;
// workflows started before it did so make their own.
func (w *job) createCheckout(ctx workflow.Context) error {
	if w.in.Checkout != nil {
		w.checkout = w.in.Checkout
		w.notify(ctx, "", jobs.HookJobCreated)
		return nil
	}
	in := w.in
	var c jobs.Checkout
	// The activity reads the email and makes the return links from the
	// job's row; the deprecated fields are passed on for the old jobs whose
	// workflows alone carry them (empty for any workflow started now).
	err := workflow.ExecuteActivity(stripeOptions(ctx, min(in.Timeouts.Payment, 10*time.Minute)),
		a.CreateCheckout, activities.CreateCheckoutInput{
			JobID:         in.JobID,
			AmountCents:   in.PriceCents,
			Currency:      in.Currency,
			Resolution:    in.Resolution,
			ImageWidth:    in.ImageWidth,
			ImageHeight:   in.ImageHeight,
			CustomerEmail: in.Email,
			SuccessURL:    in.SuccessURL,
			CancelURL:     in.CancelURL,
			ExpiresAt:     in.CheckoutExpiresAt,
		}).Get(ctx, &c)
	if err != nil {
		w.checkoutErr = temporal.NewApplicationError("checkout could not be created", jobs.ReasonCheckoutFailed)
		return err
	}
	w.checkout = &c
	w.notify(ctx, "", jobs.HookJobCreated)
	return nil
}

// awaitPayment waits for the payment or the end of the payment window.
// It reports whether the job was paid; an unpaid job ends abandoned. A
// Checkout completed with a delayed method (a bank debit) stops the
// payment window: the job then waits up to AsyncPayment for Stripe's word.
func (w *job) awaitPayment(ctx workflow.Context) (bool, error) {
	decided, err := workflow.AwaitWithOptions(ctx,
		workflow.AwaitOptions{Timeout: w.in.Timeouts.Payment, TimerOptions: workflow.TimerOptions{Summary: "payment window"}},
		func() bool { return w.paid != nil || w.closedByEvent != nil || w.delayed != nil })
	if err != nil {
		return false, err
	}
	if !decided {
		res, err := w.expireCheckout(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case res.Paid:
			w.paid = &res.Payment
			return true, w.payAndSubmit(ctx, "stripe:"+res.Payment.SessionID, res.Payment)
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
		return true, w.payAndSubmit(ctx, w.paid.EventID, *w.paid)
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
	w.notify(ctx, jobs.EmailPaymentProcessing, "")
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
		activities.ExpireCheckoutInput{JobID: w.in.JobID, SessionID: w.checkout.SessionID}).Get(ctx, &res)
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

// payAndSubmit records the payment while Upsampler already gets the image:
// the customer has paid, and the upscale is what they wait for. The
// submission runs inline, as a local activity, sparing it a task hop.
func (w *job) payAndSubmit(ctx workflow.Context, cause string, p jobs.StripeEvent) error {
	if workflow.GetVersion(ctx, "submit-with-payment", workflow.DefaultVersion, 1) >= 1 {
		w.submission = w.submit(ctx, true)
	}
	return w.recordPayment(ctx, cause, p)
}

func (w *job) recordPayment(ctx workflow.Context, cause string, p jobs.StripeEvent) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.RecordPayment,
		activities.RecordPaymentInput{JobID: w.in.JobID, Cause: cause, Payment: p}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.PaymentStatus = jobs.PaymentPaid
	attrs := []temporal.SearchAttributeUpdate{jobs.AttrPaymentStatus.ValueSet(string(jobs.PaymentPaid))}
	// Only payments recorded in histories of older versions carry an email
	// (the webhook and ExpireCheckout store it in the job's row now), so
	// only their replays upsert CustomerEmail, as they did when recorded.
	// Nothing new sets it: no GetVersion needed.
	if p.CustomerEmail != "" {
		attrs = append(attrs, jobs.AttrCustomerEmail.ValueSet(p.CustomerEmail))
	}
	if err := w.setStatus(ctx, jobs.StatusPending, attrs...); err != nil {
		return err
	}
	w.notify(ctx, jobs.EmailPaymentReceived, jobs.HookPaymentCompleted)
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
