// Package workflows holds the job workflow: one per job, from checkout to
// the download link's expiry. It is deterministic: all I/O, time and
// randomness go through activities and the SDK.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/upsampler"
)

// a is only used to name activity methods; the worker registers the real one.
var a *activities.Activities

// job is the workflow's state. Message handlers only record what arrived;
// the main flow decides what it means.
type job struct {
	in    jobs.WorkflowInput
	state jobs.State

	checkout    *jobs.Checkout
	checkoutErr error

	seenEvents    map[string]bool
	paid          *jobs.StripeEvent // the payment that moved the job on
	closedByEvent *jobs.StripeEvent // expired or async payment failed
	hints         int               // Upsampler callbacks received
}

// ImageJob runs one job's whole life.
func ImageJob(ctx workflow.Context, in jobs.WorkflowInput) (jobs.State, error) {
	w := &job{
		in:         in,
		state:      jobs.State{JobID: in.JobID, Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending},
		seenEvents: map[string]bool{},
	}
	if err := w.handleMessages(ctx); err != nil {
		return w.state, err
	}
	err := w.run(ctx)
	return w.state, err
}

func (w *job) handleMessages(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, jobs.QueryState, func() (jobs.State, error) {
		return w.state, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, jobs.UpdateCheckout, func(ctx workflow.Context) (jobs.Checkout, error) {
		if err := workflow.Await(ctx, func() bool { return w.checkout != nil || w.checkoutErr != nil }); err != nil {
			return jobs.Checkout{}, err
		}
		if w.checkoutErr != nil {
			return jobs.Checkout{}, w.checkoutErr
		}
		return *w.checkout, nil
	}); err != nil {
		return err
	}
	stripeCh := workflow.GetSignalChannel(ctx, jobs.SignalStripeEvent)
	upsamplerCh := workflow.GetSignalChannel(ctx, jobs.SignalUpsamplerCallback)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var e jobs.StripeEvent
			stripeCh.Receive(ctx, &e)
			w.onStripeEvent(ctx, e)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var cb jobs.UpsamplerCallback
			upsamplerCh.Receive(ctx, &cb)
			w.hints++
		}
	})
	return nil
}

// onStripeEvent records what a Stripe event means for the payment phase.
// Duplicates, and anything arriving after the phase is decided, change
// nothing: a status never goes backwards.
func (w *job) onStripeEvent(ctx workflow.Context, e jobs.StripeEvent) {
	log := workflow.GetLogger(ctx)
	if e.EventID != "" && w.seenEvents[e.EventID] {
		log.Info("Duplicate Stripe event ignored", "event_id", e.EventID)
		return
	}
	w.seenEvents[e.EventID] = true
	if w.paid != nil || w.closedByEvent != nil {
		log.Info("Stripe event after the payment phase ignored", "event_id", e.EventID, "type", e.Type)
		return
	}
	switch e.Type {
	case jobs.EventCheckoutCompleted, jobs.EventCheckoutAsyncSucceeded:
		if e.PaymentStatus == "paid" {
			w.paid = &e
		} // completed but unpaid: a delayed method, wait for async_payment_*
	case jobs.EventCheckoutAsyncFailed, jobs.EventCheckoutExpired:
		w.closedByEvent = &e
	default:
		log.Info("Stripe event type ignored", "event_id", e.EventID, "type", e.Type)
	}
}

func (w *job) run(ctx workflow.Context) error {
	if err := w.createCheckout(ctx); err != nil {
		return w.fail(ctx, jobs.ReasonCheckoutFailed, err)
	}
	paid, err := w.awaitPayment(ctx)
	if err != nil || !paid {
		return err
	}
	st, reason, err := w.upscale(ctx)
	if err != nil {
		return w.fail(ctx, reason, err)
	}
	if err := w.deliver(ctx, st); err != nil {
		return err
	}
	return w.expireDownload(ctx)
}

func (w *job) createCheckout(ctx workflow.Context) error {
	in := w.in
	var c jobs.Checkout
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
	return nil
}

// awaitPayment waits for the payment or the end of the payment window.
// It reports whether the job was paid; an unpaid job ends abandoned.
func (w *job) awaitPayment(ctx workflow.Context) (bool, error) {
	decided, err := workflow.AwaitWithOptions(ctx,
		workflow.AwaitOptions{Timeout: w.in.Timeouts.Payment, TimerOptions: workflow.TimerOptions{Summary: "payment window"}},
		func() bool { return w.paid != nil || w.closedByEvent != nil })
	if err != nil {
		return false, err
	}
	switch {
	case w.paid != nil:
		return true, w.recordPayment(ctx, w.paid.EventID, *w.paid)
	case decided:
		ps := jobs.PaymentExpired
		if w.closedByEvent.Type == jobs.EventCheckoutAsyncFailed {
			ps = jobs.PaymentFailed
		}
		return false, w.abandon(ctx, w.closedByEvent.EventID, ps)
	}

	// The window closed with no news: close the session at Stripe, unless
	// Stripe says the customer did pay, in which case the job goes on.
	var res activities.ExpireCheckoutResult
	err = workflow.ExecuteActivity(stripeOptions(ctx, time.Hour), a.ExpireCheckout,
		activities.ExpireCheckoutInput{JobID: w.in.JobID, SessionID: w.checkout.SessionID}).Get(ctx, &res)
	if err != nil {
		workflow.GetLogger(ctx).Error("Expiring the Checkout Session failed", "error", err)
	}
	if w.paid != nil { // a payment signal raced the expiry
		return true, w.recordPayment(ctx, w.paid.EventID, *w.paid)
	}
	if res.Paid {
		w.paid = &res.Payment
		return true, w.recordPayment(ctx, "stripe:"+res.Payment.SessionID, res.Payment)
	}
	return false, w.abandon(ctx, "payment_timeout", jobs.PaymentExpired)
}

func (w *job) recordPayment(ctx workflow.Context, cause string, p jobs.StripeEvent) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.RecordPayment,
		activities.RecordPaymentInput{JobID: w.in.JobID, Cause: cause, Payment: p}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.PaymentStatus = jobs.PaymentPaid
	attrs := []temporal.SearchAttributeUpdate{jobs.AttrPaymentStatus.ValueSet(string(jobs.PaymentPaid))}
	if p.CustomerEmail != "" {
		attrs = append(attrs, jobs.AttrCustomerEmail.ValueSet(p.CustomerEmail))
	}
	return w.setStatus(ctx, jobs.StatusPending, attrs...)
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

// upscale submits the image and waits for Upsampler's verdict, woken by a
// callback or by the poll interval, within the processing deadline. On
// failure it returns the failure reason with the error.
func (w *job) upscale(ctx workflow.Context) (activities.UpscaleStatus, string, error) {
	t := w.in.Timeouts
	deadline := workflow.Now(ctx).Add(t.Processing)
	remaining := func() time.Duration { return deadline.Sub(workflow.Now(ctx)) }

	var st activities.UpscaleStatus
	err := workflow.ExecuteActivity(upsamplerOptions(ctx, t.Processing), a.SubmitUpscale,
		activities.SubmitUpscaleInput{JobID: w.in.JobID, ImageURL: w.in.ImageURL, Factor: w.in.Resolution.Factor()}).Get(ctx, &st)
	if err != nil {
		if isType(err, activities.ErrTypeUpsamplerRejected) {
			return st, jobs.ReasonUpsamplerRejected, err
		}
		return st, jobs.ReasonUpsamplerSubmitErr, err
	}
	w.state.UpsamplerJobID = st.UpsamplerJobID
	err = workflow.ExecuteActivity(dbOptions(ctx), a.MarkProcessing,
		activities.MarkProcessingInput{JobID: w.in.JobID, UpsamplerJobID: st.UpsamplerJobID}).Get(ctx, nil)
	if err == nil {
		err = w.setStatus(ctx, jobs.StatusProcessing)
	}
	if err != nil {
		return st, "", err
	}

	seen := w.hints
	for st.Status != upsampler.StatusSuccess && st.Status != upsampler.StatusFailed {
		left := remaining()
		if left <= 0 {
			return st, jobs.ReasonUpsamplerTimeout, fmt.Errorf("no result from Upsampler within %s", t.Processing)
		}
		if _, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: min(t.PollInterval, left), TimerOptions: workflow.TimerOptions{Summary: "poll Upsampler"}},
			func() bool { return w.hints != seen }); err != nil {
			return st, "", err
		}
		seen = w.hints
		if remaining() <= 0 {
			continue
		}
		var next activities.UpscaleStatus
		err := workflow.ExecuteActivity(upsamplerOptions(ctx, min(max(t.PollInterval, time.Minute), remaining())),
			a.CheckUpscale, activities.CheckUpscaleInput{UpsamplerJobID: st.UpsamplerJobID}).Get(ctx, &next)
		switch {
		case isType(err, activities.ErrTypeUpsamplerUnknown):
			return st, jobs.ReasonUpsamplerFailed, err
		case err != nil: // transient trouble past its retries: try again at the next poll
			workflow.GetLogger(ctx).Warn("Upsampler status check failed", "error", err)
		default:
			st = next
		}
	}
	if st.Status == upsampler.StatusFailed {
		return st, jobs.ReasonUpsamplerFailed, errors.New("Upsampler failed: " + st.Error)
	}
	if st.ResultURL == "" {
		return st, jobs.ReasonUpsamplerNoOutput, errors.New("Upsampler reported success without an output URL")
	}
	return st, "", nil
}

// deliver stores the result and hands out the download link.
func (w *job) deliver(ctx workflow.Context, st activities.UpscaleStatus) error {
	f := w.in.Resolution.Factor()
	var res activities.StoredResult
	err := workflow.ExecuteActivity(resultOptions(ctx, w.in.Timeouts.Processing), a.StoreResult,
		activities.StoreResultInput{
			JobID: w.in.JobID, ResultURL: st.ResultURL,
			ExpectedWidth: w.in.ImageWidth * f, ExpectedHeight: w.in.ImageHeight * f,
		}).Get(ctx, &res)
	if err != nil {
		reason := jobs.ReasonResultFetchFailed
		if isType(err, activities.ErrTypeResultInvalid) {
			reason = jobs.ReasonResultInvalid
		}
		return w.fail(ctx, reason, err)
	}
	expires := workflow.Now(ctx).Add(w.in.Timeouts.DownloadTTL)
	err = workflow.ExecuteActivity(dbOptions(ctx), a.CompleteJob, activities.CompleteJobInput{
		JobID: w.in.JobID, UpsamplerJobID: st.UpsamplerJobID, CreditCost: st.CreditCost,
		Result: res, ExpiresAt: expires,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.DownloadExpiry = expires
	return w.setStatus(ctx, jobs.StatusCompleted)
}

// expireDownload sleeps until the link expires, then deletes the file.
func (w *job) expireDownload(ctx workflow.Context) error {
	if err := workflow.Sleep(ctx, w.state.DownloadExpiry.Sub(workflow.Now(ctx))); err != nil {
		return err
	}
	return workflow.ExecuteActivity(dbOptions(ctx), a.ExpireDownload,
		activities.ExpireDownloadInput{JobID: w.in.JobID}).Get(ctx, nil)
}

// fail ends the job in failed with a machine-readable reason.
//
// A job that fails after payment owes the customer a refund; refunds and
// admin recovery are the next step of this workflow and belong right here,
// after the failure is recorded.
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
	if err := w.setStatus(ctx, jobs.StatusFailed, jobs.AttrFailureReason.ValueSet(reason)); err != nil {
		return err
	}
	workflow.GetLogger(ctx).Warn("Job failed", "reason", reason, "detail", detail)
	return nil
}

// setStatus mirrors a status already written to the job record into the
// workflow's state and its search attributes.
func (w *job) setStatus(ctx workflow.Context, s jobs.Status, more ...temporal.SearchAttributeUpdate) error {
	w.state.Status = s
	return workflow.UpsertTypedSearchAttributes(ctx, append(more, jobs.AttrJobStatus.ValueSet(string(s)))...)
}

func isType(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
}
