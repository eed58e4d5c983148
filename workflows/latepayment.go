package workflows

import (
	"go.temporal.io/sdk/workflow"

	"hires/internal/jobs"
)

// LatePaymentRefund records and refunds a payment that arrived after its
// job's workflow had ended. Its workflow ID is derived from the job, so a
// redelivered event cannot start a second one.
func LatePaymentRefund(ctx workflow.Context, in jobs.LatePaymentInput) (jobs.State, error) {
	w := &job{
		in:       jobs.WorkflowInput{JobID: in.JobID, Timeouts: jobs.Timeouts{RefundRetry: in.RefundRetry}},
		state:    jobs.State{JobID: in.JobID, Status: jobs.StatusAbandoned, PaymentStatus: jobs.PaymentExpired},
		latePaid: &in.Payment,
		notifyV:  workflow.GetVersion(ctx, notificationsVersion, workflow.DefaultVersion, 1),
	}
	err := w.settleLatePayment(ctx)
	w.flush(ctx)
	return w.state, err
}
