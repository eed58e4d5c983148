// Package workflows holds the job workflow (one per job, from checkout to
// the download link's expiry, with refunds and admin retries), the refund
// of payments that arrive too late, and the reconciliation sweep. It is
// deterministic: all I/O, time and randomness go through activities and
// the SDK.
package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
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

	seenEvents     map[string]bool
	paid           *jobs.StripeEvent // the payment that moved the job on
	delayed        *jobs.StripeEvent // Checkout completed with a delayed method, not yet paid
	closedByEvent  *jobs.StripeEvent // expired or async payment failed
	latePaid       *jobs.StripeEvent // a payment that arrived after abandonment
	refundSeen     bool              // Stripe confirmed a refund (charge.refunded), or an admin settled it
	refundAttempt  int               // the refund's idempotency key number; see refund
	refusedSince   time.Time         // when Stripe first refused a refund taken over (zero: not taken over)
	hints          int               // Upsampler callbacks received
	submissions    int               // images sent to Upsampler (numbered from 1)
	calledBack     map[int]string    // Upsampler job named by a callback, by submission
	submission     *submission       // started with the payment, not yet awaited
	retryRequested *jobs.RetryRequest

	notifyV     workflow.Version  // whether this run sends notifications
	notifyCtx   workflow.Context  // where notifications run: one a cancellation does not reach (nil: ctx)
	pending     []workflow.Future // notifications in flight
	resends     int               // download links sent again by admins
	reminded    bool              // the expiry reminder went out
	expiryMoved bool              // an admin moved the download expiry
	cleanedUp   bool              // the result file is gone
	expiring    bool              // the link's expiry is under way: no more download updates
	// processBy bounds an attempt, from submission to stored result.
	processBy time.Time
}

var (
	errNotDownloadable = temporal.NewApplicationError("the job has no download to change: it is not completed, or its link has expired", "NotDownloadable")
	errResendLimit     = temporal.NewApplicationError("the download link was sent again as often as allowed (DOWNLOAD_RESEND_LIMIT)", "ResendLimit")
)

// ImageJob runs one job's whole life. Cancelling it refunds a paid job
// that was not delivered, then ends it cleanly.
func ImageJob(ctx workflow.Context, in jobs.WorkflowInput) (jobs.State, error) {
	w := &job{
		in:         in,
		state:      jobs.State{JobID: in.JobID, Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending},
		seenEvents: map[string]bool{},
		calledBack: map[int]string{},
	}
	w.notifyV = workflow.GetVersion(ctx, notificationsVersion, workflow.DefaultVersion, 1)
	if workflow.GetVersion(ctx, detachedNotificationsVersion, workflow.DefaultVersion, 1) >= 1 {
		// Emails and events already under way when an admin cancels still go out.
		w.notifyCtx, _ = workflow.NewDisconnectedContext(ctx)
	}
	if err := w.handleMessages(ctx); err != nil {
		return w.state, err
	}
	err := w.run(ctx)
	if err != nil && errors.Is(ctx.Err(), workflow.ErrCanceled) {
		// Cancelled: settle in a context the cancellation does not reach.
		settleCtx, _ := workflow.NewDisconnectedContext(ctx)
		if serr := w.settleCancelled(settleCtx); serr != nil {
			return w.state, serr
		}
		w.flush(settleCtx)
		return w.state, temporal.NewCanceledError("job cancelled; settled as " + string(w.state.Status))
	}
	w.flush(ctx)
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
	for _, u := range []struct {
		name     string
		newToken bool
	}{{jobs.UpdateResendDownload, false}, {jobs.UpdateNewDownloadToken, true}} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, r jobs.DownloadRequest) (jobs.DownloadInfo, error) {
				return w.setDownload(ctx, u.newToken, r)
			},
			workflow.UpdateHandlerOptions{Validator: w.validateDownloadUpdate}); err != nil {
			return err
		}
	}
	stripeCh := workflow.GetSignalChannel(ctx, jobs.SignalStripeEvent)
	upsamplerCh := workflow.GetSignalChannel(ctx, jobs.SignalUpsamplerCallback)
	retryCh := workflow.GetSignalChannel(ctx, jobs.SignalRetry)
	settledCh := workflow.GetSignalChannel(ctx, jobs.SignalRefundSettled)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			settledCh.Receive(ctx, nil)
			w.refundSeen = true // recorded by the admin API; the workflow mirrors it
		}
	})
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
			if cb.Submission > 0 && cb.UpsamplerJobID != "" && w.calledBack[cb.Submission] == "" {
				w.calledBack[cb.Submission] = cb.UpsamplerJobID
			}
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var r jobs.RetryRequest
			retryCh.Receive(ctx, &r)
			if w.state.Status != jobs.StatusFailed || w.retryRequested != nil {
				workflow.GetLogger(ctx).Warn("Retry ignored: the job is not waiting for one", "status", w.state.Status)
				continue
			}
			if limit := w.in.Limits.MaxRetries; limit > 0 && w.state.Attempt >= limit {
				workflow.GetLogger(ctx).Warn("Retry refused: the job was retried as often as allowed", "attempts", w.state.Attempt)
				continue
			}
			w.retryRequested = &r
		}
	})
	return nil
}

// onStripeEvent records what a Stripe event means. Duplicates and repeats
// of the same payment change nothing: a status never goes backwards.
func (w *job) onStripeEvent(ctx workflow.Context, e jobs.StripeEvent) {
	log := workflow.GetLogger(ctx)
	if e.EventID != "" && w.seenEvents[e.EventID] {
		log.Info("Duplicate Stripe event ignored", "event_id", e.EventID)
		return
	}
	w.seenEvents[e.EventID] = true
	paid := (e.Type == jobs.EventCheckoutCompleted || e.Type == jobs.EventCheckoutAsyncSucceeded) && e.PaymentStatus == "paid"
	switch {
	case e.Type == jobs.EventChargeRefunded:
		w.refundSeen = true
	case paid && w.paid == nil && w.closedByEvent == nil && w.state.Status == jobs.StatusAwaitingPayment:
		w.paid = &e
	case paid && w.paid == nil && w.latePaid == nil:
		// The job was given up on, but the customer paid: refund it.
		w.latePaid = &e
	case w.paid != nil || w.closedByEvent != nil:
		log.Info("Stripe event after the payment phase ignored", "event_id", e.EventID, "type", e.Type)
	case e.Type == jobs.EventCheckoutAsyncFailed || e.Type == jobs.EventCheckoutExpired:
		w.closedByEvent = &e
	case e.Type == jobs.EventCheckoutCompleted && e.PaymentStatus == "unpaid" && w.delayed == nil:
		// A delayed method: Stripe sends async_payment_succeeded or _failed later.
		w.delayed = &e
	default:
		log.Info("Stripe event noted", "event_id", e.EventID, "type", e.Type)
	}
}

func (w *job) run(ctx workflow.Context) error {
	if err := w.createCheckout(ctx); err != nil {
		if err := w.fail(ctx, jobs.ReasonCheckoutFailed, err); err != nil {
			return err
		}
		return w.closeUnpaid(ctx, false)
	}
	paid, err := w.awaitPayment(ctx)
	if err != nil {
		return err
	}
	if !paid {
		return w.closeUnpaid(ctx, true)
	}
	return w.fulfil(ctx)
}

// fulfil upscales and delivers the paid job. A failure ends in failed and a
// refund; the job then waits for an admin retry until its window closes.
func (w *job) fulfil(ctx workflow.Context) error {
	for {
		reason, cause := w.process(ctx)
		if reason == "" {
			if cause != nil {
				return cause // the workflow itself could not go on (e.g. cancelled)
			}
			return w.expireDownload(ctx)
		}
		if err := w.fail(ctx, reason, cause); err != nil {
			return err
		}
		if err := w.refund(ctx, reason); err != nil {
			return err
		}
		retry, err := w.awaitRetry(ctx)
		if err != nil || !retry {
			return err
		}
	}
}

// setStatus mirrors a status already written to the job record into the
// workflow's state and its search attributes.
func (w *job) setStatus(ctx workflow.Context, s jobs.Status, more ...temporal.SearchAttributeUpdate) error {
	w.state.Status = s
	return workflow.UpsertTypedSearchAttributes(ctx, append(more, jobs.AttrJobStatus.ValueSet(string(s)))...)
}

func (w *job) setPaymentStatus(ctx workflow.Context, ps jobs.PaymentStatus) error {
	w.state.PaymentStatus = ps
	return workflow.UpsertTypedSearchAttributes(ctx, jobs.AttrPaymentStatus.ValueSet(string(ps)))
}

func isType(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
}
