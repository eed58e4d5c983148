package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/upsampler"
)

// handledEvents are the Stripe event types that concern a job's payment.
var handledEvents = map[string]bool{
	jobs.EventCheckoutCompleted:      true,
	jobs.EventCheckoutAsyncSucceeded: true,
	jobs.EventCheckoutAsyncFailed:    true,
	jobs.EventCheckoutExpired:        true,
}

// stripeWebhook verifies a Stripe event and signals the job's workflow.
// It answers 2xx only once the signal is accepted by Temporal (durable),
// so that Stripe retries otherwise; duplicates are acknowledged without a
// second signal, and the workflow ignores repeats too.
func (s *Server) stripeWebhook(c echo.Context) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err // body too large: 413 from the limit
	}
	ev, err := payments.ParseEvent(body, c.Request().Header.Get("Stripe-Signature"), s.cfg.StripeWebhookSecret)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "stripe webhook rejected", "error", err)
		s.webhooks.VerificationFailed(metrics.SourceStripe)
		return fail(http.StatusBadRequest, "invalid_event", err.Error())
	}
	ctx := c.Request().Context()
	log := s.log.With("event_id", ev.ID, "event_type", ev.Type)
	if ev.Type == jobs.EventChargeRefunded && ev.Charge != nil {
		return s.chargeRefunded(c, ev)
	}
	if !handledEvents[ev.Type] || ev.Session == nil {
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	// Route by our job ID (metadata, else client_reference_id), never by session ID alone.
	id, err := uuid.Parse(ev.Session.JobID)
	if err != nil {
		log.WarnContext(ctx, "stripe event without a job ID ignored")
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	if seen, err := s.store.StripeEventSeen(ctx, ev.ID); err != nil {
		return err
	} else if seen {
		return c.JSON(http.StatusOK, map[string]string{"status": "duplicate"})
	}
	jobID := id.String()
	// The customer's address stays in PostgreSQL: it is written before the
	// signal, which carries none, so the workflow's activities find it.
	if err := s.recordCustomerEmail(ctx, jobID, ev.Session.CustomerEmail); err != nil {
		return err
	}
	signal := jobs.StripeEvent{
		EventID:         ev.ID,
		Type:            ev.Type,
		SessionID:       ev.Session.ID,
		PaymentStatus:   ev.Session.PaymentStatus,
		PaymentIntentID: ev.Session.PaymentIntentID,
		AmountCents:     ev.Session.AmountTotal,
		Currency:        ev.Session.Currency,
	}
	// The running job's workflow is signalled straight away; the job's
	// record is read only when there is none to signal.
	outcome := "signalled"
	err = s.temporal.SignalWorkflow(ctx, jobs.WorkflowID(jobID), "", jobs.SignalStripeEvent, signal)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		job, err := s.store.Get(ctx, jobID)
		if errors.Is(err, store.ErrNotFound) {
			log.WarnContext(ctx, "stripe event for an unknown job ignored", "job_id", jobID)
			return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
		}
		if err != nil {
			return err
		}
		if outcome, err = s.closedJobEvent(ctx, log, job, signal); err != nil {
			return err
		}
	case err != nil:
		log.ErrorContext(ctx, "signalling the job failed; Stripe will retry", "job_id", jobID, "error", err)
		return fail(http.StatusServiceUnavailable, "unavailable", "event not accepted, retry later")
	}
	if _, err := s.store.RecordStripeEvent(ctx, ev.ID, ev.Type, jobID, outcome); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": outcome})
}

// recordCustomerEmail keeps the address Stripe reports for a job's
// customer in the job's row, the only place it is kept.
func (s *Server) recordCustomerEmail(ctx context.Context, jobID, email string) error {
	if email == "" {
		return nil
	}
	if err := s.store.SetCustomerEmail(ctx, jobID, email); err != nil {
		return fmt.Errorf("record the customer's email: %w", err)
	}
	return nil
}

// closedJobEvent handles an event for a job whose workflow has ended: a new
// payment for it is refunded by a workflow of its own, at most one per job.
func (s *Server) closedJobEvent(ctx context.Context, log *slog.Logger, job store.Job, signal jobs.StripeEvent) (string, error) {
	if !isNewPayment(signal, job) {
		log.WarnContext(ctx, "stripe event for a closed job", "job_id", job.ID, "job_status", job.Status)
		return "workflow_closed", nil
	}
	if err := s.startLatePaymentRefund(ctx, job.ID, signal); err != nil {
		log.ErrorContext(ctx, "starting the late-payment refund failed; Stripe will retry", "job_id", job.ID, "error", err)
		return "", fail(http.StatusServiceUnavailable, "unavailable", "event not accepted, retry later")
	}
	log.WarnContext(ctx, "payment for a closed job: refunding it", "job_id", job.ID, "job_status", job.Status)
	return "late_payment_refund", nil
}

// upsamplerWebhook takes Upsampler's (unauthenticated) callback. The URL's
// per-job secret keeps strangers out; even so the workflow treats it as a
// hint and asks Upsampler's status endpoint before acting.
func (s *Server) upsamplerWebhook(c echo.Context) error {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		s.webhooks.VerificationFailed(metrics.SourceUpsampler)
		return errNotFound
	}
	ctx := c.Request().Context()
	job, err := s.store.Get(ctx, id.String())
	if errors.Is(err, store.ErrNotFound) {
		s.webhooks.VerificationFailed(metrics.SourceUpsampler)
		return errNotFound
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(c.Param("secret")), []byte(job.CallbackSecret)) != 1 {
		s.webhooks.VerificationFailed(metrics.SourceUpsampler)
		return errNotFound
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err
	}
	cb, err := upsampler.ParseCallback(body)
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_callback", "callback body needs JSON with id and status")
	}
	// The submission number only routes the hint; a bad one is ignored.
	sub, err := strconv.Atoi(c.QueryParam("s"))
	if err != nil || sub < 0 {
		sub = 0
	}
	err = s.temporal.SignalWorkflow(ctx, jobs.WorkflowID(job.ID), "", jobs.SignalUpsamplerCallback,
		jobs.UpsamplerCallback{UpsamplerJobID: cb.ID, Status: cb.Status, Submission: sub})
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return fail(http.StatusServiceUnavailable, "unavailable", "callback not accepted, retry later")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "received"})
}

// isNewPayment reports a paid checkout event for a payment the job has not
// recorded (a redelivery of the recorded one is not new).
func isNewPayment(e jobs.StripeEvent, job store.Job) bool {
	paid := (e.Type == jobs.EventCheckoutCompleted || e.Type == jobs.EventCheckoutAsyncSucceeded) && e.PaymentStatus == "paid"
	return paid && e.PaymentIntentID != "" && (job.PaymentIntentID == nil || *job.PaymentIntentID != e.PaymentIntentID)
}

func (s *Server) startLatePaymentRefund(ctx context.Context, jobID string, payment jobs.StripeEvent) error {
	_, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       jobs.LatePaymentWorkflowID(jobID),
		TaskQueue:                jobs.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, jobs.LatePaymentWorkflow, jobs.LatePaymentInput{JobID: jobID, Payment: payment,
		RefundRetry: s.cfg.RefundRetryInterval, RefundAttention: s.cfg.RefundAttentionAfter})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil // already refunded once: never twice
	}
	return err
}

// chargeRefunded records Stripe's confirmation of a refund, ours or one
// made in the Stripe dashboard, and tells the job's workflow.
func (s *Server) chargeRefunded(c echo.Context, ev payments.Event) error {
	ctx := c.Request().Context()
	if seen, err := s.store.StripeEventSeen(ctx, ev.ID); err != nil {
		return err
	} else if seen {
		return c.JSON(http.StatusOK, map[string]string{"status": "duplicate"})
	}
	ch := ev.Charge
	if !ch.Refunded || ch.PaymentIntentID == "" {
		// We only ever refund in full; a partial refund is left to the admins.
		s.log.WarnContext(ctx, "partial refund noted", "event_id", ev.ID, "charge", ch.ID)
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	refundID := ""
	if n := len(ch.RefundIDs); n > 0 {
		refundID = ch.RefundIDs[n-1]
	}
	jobID, err := s.store.ConfirmRefund(ctx, store.RefundConfirmation{
		EventID: ev.ID, PaymentIntentID: ch.PaymentIntentID, RefundID: refundID, AmountRefundedCents: ch.AmountRefundedCents,
	})
	if errors.Is(err, store.ErrNotFound) {
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	if err != nil {
		return err
	}
	err = s.temporal.SignalWorkflow(ctx, jobs.WorkflowID(jobID), "", jobs.SignalStripeEvent,
		jobs.StripeEvent{EventID: ev.ID, Type: ev.Type, PaymentIntentID: ch.PaymentIntentID})
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return fail(http.StatusServiceUnavailable, "unavailable", "event not accepted, retry later")
	}
	if _, err := s.store.RecordStripeEvent(ctx, ev.ID, ev.Type, jobID, "refund_confirmed"); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "refund_confirmed"})
}
