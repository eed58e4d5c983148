package workflows

import (
	"go.temporal.io/sdk/workflow"

	"hires/internal/jobs"
)

// LatePaymentRefund records and refunds a payment that arrived after its
// job's workflow had ended. Its workflow ID is derived from the job, so a
// redelivered event cannot start a second one.
func LatePaymentRefund(ctx workflow.Context, in jobs.LatePaymentInput) (jobs.State, error) {
	w := newJob(jobs.WorkflowInput{JobID: in.JobID,
		Timeouts: jobs.Timeouts{RefundRetry: in.RefundRetry, RefundAttention: in.RefundAttention}})
	w.state.Status, w.state.PaymentStatus = jobs.StatusAbandoned, jobs.PaymentExpired
	w.latePaid = &in.Payment
	err := w.settleLatePayment(ctx)
	return w.state, err
}

// OwedRefund refunds a payment the reconciliation sweep found owed back
// while no workflow of its job runs (terminated from the Web UI, say). It
// runs the job's own refund loop, so it also ends, at the latest, with the
// job handed to an admin.
func OwedRefund(ctx workflow.Context, in jobs.OwedRefundInput) (jobs.State, error) {
	w := newJob(jobs.WorkflowInput{JobID: in.JobID,
		Timeouts: jobs.Timeouts{RefundRetry: in.RefundRetry, RefundAttention: in.RefundAttention}})
	w.state.Status, w.state.PaymentStatus = jobs.StatusFailed, jobs.PaymentPaid
	w.paid = &jobs.StripeEvent{PaymentIntentID: in.PaymentIntentID, AmountCents: in.AmountCents}
	// Go on from the job's own refusals: new keys, the same deadline.
	w.refundAttempt, w.refusedSince = in.FirstAttempt, in.RefusedSince
	err := w.refund(ctx, in.Reason)
	return w.state, err
}
