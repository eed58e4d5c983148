// Package workflows holds the job workflow (one per job, from its payment
// to the download link's expiry, with refunds and admin retries), the
// refund of payments that arrive too late, and the reconciliation sweep.
// It is deterministic: all I/O, time and randomness go through activities
// and the SDK.
//
// ImageJob tells a job's life top-down; each phase is a file, read in
// this order:
//
//	payment.go     waiting for the money, or closing an unpaid job
//	processing.go  Upsampler: the submission, its verdict, the stored result
//	delivery.go    the download link, its reminder and expiry; admin updates
//	refund.go      failure and refund, and an admin's retry
//	cancel.go      an admin's cancellation (a termination is settled by reconcile.go)
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

// ImageJob runs one job's whole life. The API has made the job's Checkout
// Session and started the workflow with it.
func ImageJob(ctx workflow.Context, in jobs.WorkflowInput) (jobs.State, error) {
	w := newJob(in)
	if err := w.handleMessages(ctx); err != nil {
		return w.state, err
	}
	err := w.live(ctx)
	if err != nil && errors.Is(ctx.Err(), workflow.ErrCanceled) {
		return w.state, w.cancelled(ctx)
	}
	return w.state, err
}

// live takes the job from its payment to the end of its download link, or
// to its refund; a failed job waits for an admin's retry. The emails and
// events each change sends are written with it to the job record's outbox
// (internal/store, internal/notify): the workflow never waits for them.
func (w *job) live(ctx workflow.Context) error {
	paid, err := w.awaitPayment(ctx)
	if err != nil {
		return err
	}
	if !paid {
		return w.closeUnpaid(ctx)
	}
	for {
		expires, err := w.process(ctx)
		if err == nil {
			return w.deliver(ctx, expires)
		}
		f := w.asFailure(ctx, err)
		if f == nil {
			return err // the workflow itself cannot go on (cancelled, or the record refused a change)
		}
		if err := w.failAndRefund(ctx, f); err != nil {
			return err
		}
		retry, err := w.awaitRetry(ctx)
		if err != nil || !retry {
			return err
		}
	}
}

// failure is a job failing for a business reason: the job ends failed with
// the reason recorded, and its payment is refunded. Any other error stops
// the workflow itself.
type failure struct {
	reason string // one of the jobs.Reason* values
	err    error
}

func (f *failure) Error() string { return f.reason + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// failed makes a failure for reason, caused by err.
func failed(reason string, err error) error { return &failure{reason: reason, err: err} }

// asFailure is err as a job failure, or nil: a cancellation is never one.
func (w *job) asFailure(ctx workflow.Context, err error) *failure {
	var f *failure
	if !errors.As(err, &f) || ctx.Err() != nil || temporal.IsCanceledError(f.err) {
		return nil
	}
	return f
}

// job is the workflow's state. Message handlers only record what arrived;
// the main flow decides what it means.
type job struct {
	in    jobs.WorkflowInput
	state jobs.State

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
	retryRequested *jobs.RetryRequest

	resends     int  // download links sent again by admins
	storing     bool // StoreResult runs: the job record may already say completed
	expiryMoved bool // an admin moved the download expiry
	cleanedUp   bool // the result file is gone
	expiring    bool // the link's expiry is under way: no more download updates
	// processBy bounds an attempt, from submission to stored result.
	processBy time.Time
}

func newJob(in jobs.WorkflowInput) *job {
	w := &job{
		in:         in,
		state:      jobs.State{JobID: in.JobID, Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending},
		seenEvents: map[string]bool{},
		calledBack: map[int]string{},
	}
	return w
}

var (
	errNotDownloadable = temporal.NewApplicationError("the job has no download to change: it is not completed, or its link has expired", "NotDownloadable")
	errResendLimit     = temporal.NewApplicationError("the download link was sent again as often as allowed (DOWNLOAD_RESEND_LIMIT)", "ResendLimit")
)

// handleMessages registers the query, the updates and the signals. The
// signal handlers only note what arrived.
func (w *job) handleMessages(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, jobs.QueryState, func() (jobs.State, error) {
		return w.state, nil
	}); err != nil {
		return err
	}
	for _, u := range []struct {
		name     string
		newToken bool
	}{{jobs.UpdateResendDownload, false}, {jobs.UpdateNewDownloadToken, true}} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name,
			func(ctx workflow.Context, r jobs.DownloadRequest) (jobs.DownloadInfo, error) {
				if err := w.awaitStored(ctx, r); err != nil {
					return jobs.DownloadInfo{}, err
				}
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
	switch {
	case e.Type == jobs.EventChargeRefunded:
		w.refundSeen = true
	case e.Paid() && w.paid == nil && w.closedByEvent == nil && w.state.Status == jobs.StatusAwaitingPayment:
		w.paid = &e
	case e.Paid() && w.paid == nil && w.latePaid == nil:
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

// setStatus mirrors a status already written to the job record into the
// workflow's state and its search attributes (with the payment status,
// which may have changed unpublished: see recordPayment).
func (w *job) setStatus(ctx workflow.Context, s jobs.Status, more ...temporal.SearchAttributeUpdate) error {
	w.advance(s)
	return workflow.UpsertTypedSearchAttributes(ctx, append(more, jobs.AttrJobStatus.ValueSet(string(s)),
		jobs.AttrPaymentStatus.ValueSet(string(w.state.PaymentStatus)))...)
}

// advance moves the workflow's state to s without publishing it. Only the
// moves in jobs.Transitions exist: any other is a bug, and fails the
// workflow task (it is retried, visibly) rather than the job.
func (w *job) advance(s jobs.Status) {
	if !jobs.CanMove(w.state.Status, s) {
		panic("job " + w.in.JobID + ": " + string(w.state.Status) + " -> " + string(s) + " is not in jobs.Transitions")
	}
	w.state.Status = s
}

func (w *job) setPaymentStatus(ctx workflow.Context, ps jobs.PaymentStatus) error {
	w.state.PaymentStatus = ps
	return workflow.UpsertTypedSearchAttributes(ctx, jobs.AttrPaymentStatus.ValueSet(string(ps)))
}

func isType(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
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
