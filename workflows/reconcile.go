package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// Reconcile is the periodic sweep a Temporal Schedule runs. Temporal runs
// no workflow code on terminate, so a job whose workflow was terminated or
// timed out would stay unfinished, or paid and unrefunded, forever: the
// sweep marks such jobs failed (reason terminated), closes the Checkout
// Session of one that awaited payment, and hands each payment owed back to
// an OwedRefund workflow, which refunds it or hands it to an admin.
func Reconcile(ctx workflow.Context, in jobs.ReconcileInput) (jobs.ReconcileResult, error) {
	var orphans []activities.Orphan
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         backoff(time.Second, time.Minute),
	}), a.FindOrphans, activities.FindOrphansInput{Grace: in.Grace, Limit: in.Batch}).Get(ctx, &orphans)
	if err != nil {
		return jobs.ReconcileResult{}, err
	}
	res := jobs.ReconcileResult{Checked: len(orphans)}
	unsettled := workflow.GetMetricsHandler(ctx).Counter("hires_reconcile_unsettled")
	for _, o := range orphans {
		if err := settleOrphan(ctx, in, o); err != nil {
			// Only outages get here (the database, Temporal): the next sweep
			// finds the job again. The counter shows a sweep that keeps failing.
			workflow.GetLogger(ctx).Error("Settling an orphaned job failed; the next sweep retries", "job_id", o.JobID, "error", err)
			unsettled.Inc(1)
			continue
		}
		res.Settled = append(res.Settled, o.JobID)
	}
	return res, nil
}

// settleOrphan settles one job whose workflow is not running.
func settleOrphan(ctx workflow.Context, in jobs.ReconcileInput, o activities.Orphan) error {
	if o.Status == jobs.StatusAwaitingPayment && o.CheckoutSessionID != "" {
		// Close the session first, so the customer can no longer pay for
		// a job nobody will make; a payment it already took is refunded.
		var res activities.ExpireCheckoutResult
		err := workflow.ExecuteActivity(stripeOptions(ctx, 10*time.Minute), a.ExpireCheckout,
			activities.ExpireCheckoutInput{JobID: o.JobID, SessionID: o.CheckoutSessionID}).Get(ctx, &res)
		if err != nil {
			// Stripe closes the session by itself at its expires_at; a payment
			// made before then arrives as a late payment and is refunded.
			workflow.GetLogger(ctx).Warn("Could not close an orphan's Checkout Session", "job_id", o.JobID, "error", err)
		}
		if res.Paid {
			err := workflow.ExecuteActivity(dbOptions(ctx), a.RecordLatePayment, activities.RecordPaymentInput{
				JobID: o.JobID, Cause: "stripe:" + res.Payment.SessionID, Payment: res.Payment,
			}).Get(ctx, nil)
			if err != nil {
				return err
			}
			o.PaymentStatus, o.PaymentIntentID, o.AmountCents = jobs.PaymentPaid, res.Payment.PaymentIntentID, res.Payment.AmountCents
		}
	}
	reason, owed, err := failOrphan(ctx, o)
	if err != nil || !owed {
		return err
	}
	// A workflow of its own, not this sweep, retries the refund: the sweep
	// stays short, and the refund loop is the one every job uses.
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            jobs.OwedRefundWorkflowID(o.JobID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}), jobs.OwedRefundWorkflow, jobs.OwedRefundInput{
		JobID: o.JobID, PaymentIntentID: o.PaymentIntentID, AmountCents: o.AmountCents, Reason: reason,
		RefundRetry: in.RefundRetry, RefundAttention: in.RefundAttention,
		FirstAttempt: o.RefundAttempt, RefusedSince: o.RefundRefusedAt,
	})
	err = child.GetChildWorkflowExecution().Get(ctx, nil)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return nil // one runs already
	}
	return err
}

// failOrphan marks an unfinished orphan failed (terminated) and tells
// whether it owes a refund, and under which reason.
func failOrphan(ctx workflow.Context, o activities.Orphan) (reason string, owed bool, err error) {
	if !o.Status.Final() {
		err := workflow.ExecuteActivity(dbOptions(ctx), a.FailJob, activities.FailJobInput{
			JobID: o.JobID, Reason: jobs.ReasonTerminated, Detail: "workflow " + o.WorkflowStatus,
		}).Get(ctx, nil)
		if err != nil {
			return "", false, err
		}
	}
	if o.PaymentIntentID == "" || !o.PaymentStatus.OwedBack() {
		return "", false, nil
	}
	reason = o.FailureReason
	if reason == "" || !o.Status.Final() {
		reason = jobs.ReasonTerminated
	}
	return reason, true, nil
}
