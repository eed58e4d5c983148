package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// The sweep settles each kind of orphan: an unfinished job fails
// (terminated), an awaiting one has its session closed first, and a payment
// owed back goes to an OwedRefund workflow.
func TestReconcileSettlesOrphans(t *testing.T) {
	orphans := []activities.Orphan{
		{JobID: "awaiting", Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending, CheckoutSessionID: "cs_a", WorkflowStatus: "Terminated"},
		{JobID: "awaiting-paid", Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending, CheckoutSessionID: "cs_b", WorkflowStatus: "Terminated"},
		{JobID: "processing", Status: jobs.StatusProcessing, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_p", AmountCents: 50, WorkflowStatus: "Terminated"},
		{JobID: "refund-refused", Status: jobs.StatusFailed, PaymentStatus: jobs.PaymentRefundFailed, PaymentIntentID: "pi_r", AmountCents: 70,
			FailureReason: jobs.ReasonUpsamplerFailed, WorkflowStatus: "Completed"},
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterWorkflowWithOptions(OwedRefund, workflow.RegisterOptions{Name: jobs.OwedRefundWorkflow})
	env.OnActivity(a.FindOrphans, mock.Anything, mock.Anything).Return(orphans, nil)
	var expired []string
	env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ExpireCheckoutInput) (activities.ExpireCheckoutResult, error) {
			expired = append(expired, in.SessionID)
			if in.SessionID == "cs_b" {
				p := paid("")
				p.PaymentIntentID = "pi_b"
				return activities.ExpireCheckoutResult{Paid: true, Payment: p}, nil
			}
			return activities.ExpireCheckoutResult{}, nil
		})
	var late []string
	env.OnActivity(a.RecordLatePayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RecordPaymentInput) error {
			late = append(late, in.JobID)
			return nil
		})
	var failed []string
	env.OnActivity(a.FailJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FailJobInput) error {
		require.Equal(t, jobs.ReasonTerminated, in.Reason)
		failed = append(failed, in.JobID)
		return nil
	})
	var owed []jobs.OwedRefundInput
	env.OnWorkflow(jobs.OwedRefundWorkflow, mock.Anything, mock.Anything).Return(
		func(_ workflow.Context, in jobs.OwedRefundInput) (jobs.State, error) {
			owed = append(owed, in)
			return jobs.State{}, nil
		})
	env.ExecuteWorkflow(Reconcile, jobs.ReconcileInput{Grace: time.Minute, Batch: 10, RefundRetry: time.Hour, RefundAttention: 72 * time.Hour})
	require.NoError(t, env.GetWorkflowError())
	var res jobs.ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"awaiting", "awaiting-paid", "processing", "refund-refused"}, res.Settled)
	require.Equal(t, []string{"cs_a", "cs_b"}, expired)
	require.Equal(t, []string{"awaiting-paid"}, late)
	require.Equal(t, []string{"awaiting", "awaiting-paid", "processing"}, failed)
	require.Equal(t, []jobs.OwedRefundInput{
		{JobID: "awaiting-paid", PaymentIntentID: "pi_b", AmountCents: 50, Reason: jobs.ReasonTerminated, RefundRetry: time.Hour, RefundAttention: 72 * time.Hour},
		{JobID: "processing", PaymentIntentID: "pi_p", AmountCents: 50, Reason: jobs.ReasonTerminated, RefundRetry: time.Hour, RefundAttention: 72 * time.Hour},
		{JobID: "refund-refused", PaymentIntentID: "pi_r", AmountCents: 70, Reason: jobs.ReasonUpsamplerFailed, RefundRetry: time.Hour, RefundAttention: 72 * time.Hour},
	}, owed)
}
