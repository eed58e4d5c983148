package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// Reconcile is the periodic sweep a Temporal Schedule runs. Temporal runs
// no workflow code on terminate, so a job whose workflow was terminated or
// timed out would stay unfinished, or paid and unrefunded, forever: the
// sweep marks such jobs failed (reason terminated) and refunds them.
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
	for _, o := range orphans {
		if err := settleOrphan(ctx, o); err != nil {
			workflow.GetLogger(ctx).Error("Settling an orphaned job failed; the next sweep retries", "job_id", o.JobID, "error", err)
			continue
		}
		res.Settled = append(res.Settled, o.JobID)
	}
	return res, nil
}

func settleOrphan(ctx workflow.Context, o activities.Orphan) error {
	if !o.Status.Final() {
		err := workflow.ExecuteActivity(dbOptions(ctx), a.FailJob, activities.FailJobInput{
			JobID: o.JobID, Reason: jobs.ReasonTerminated, Detail: "workflow " + o.WorkflowStatus,
		}).Get(ctx, nil)
		if err != nil {
			return err
		}
	}
	if o.PaymentIntentID == "" || (o.PaymentStatus != jobs.PaymentPaid && o.PaymentStatus != jobs.PaymentRefundFailed) {
		return nil
	}
	reason := o.FailureReason
	if reason == "" || !o.Status.Final() {
		reason = jobs.ReasonTerminated
	}
	err := workflow.ExecuteActivity(refundOptions(ctx, 10*time.Minute), a.RefundPayment, activities.RefundInput{
		JobID: o.JobID, PaymentIntentID: o.PaymentIntentID, AmountCents: o.AmountCents, Reason: reason,
	}).Get(ctx, nil)
	if err != nil && !temporal.IsCanceledError(err) {
		// Surface it; the job stays owed, so the next sweep tries again.
		_ = workflow.ExecuteActivity(dbOptions(ctx), a.MarkRefundFailed,
			activities.MarkRefundFailedInput{JobID: o.JobID, Detail: err.Error()}).Get(ctx, nil)
	}
	return err
}
