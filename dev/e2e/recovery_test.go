//go:build integration

package e2e

import (
	"context"
	"fmt"
	"image"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"hires/api"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// withBehavior runs f with the Upsampler stand-in behaving as b.
func withBehavior(t *testing.T, change func(*upsamplersim.Behavior)) {
	t.Helper()
	before := stack.Upsampler.Behavior()
	b := before
	change(&b)
	require.NoError(t, stack.Upsampler.SetBehavior(b))
	t.Cleanup(func() { stack.Upsampler.SetBehavior(before) })
}

// paidJob creates a job and pays for it.
func paidJob(t *testing.T) api.CreateJobResponse {
	t.Helper()
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	res, err := paysim.Pay(context.Background(), paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	return created
}

// refundsOf counts refunds that reached Stripe for a job (real effects,
// not idempotent replays).
func refundsOf(id string) int { return countKey("POST", "/v1/refunds", "refund:"+id) }

func waitRefunded(t *testing.T, id string, timeout time.Duration) api.AdminJob {
	t.Helper()
	return waitFor(t, id, timeout, "refunded", func(j api.AdminJob) bool { return j.PaymentStatus == jobs.PaymentRefunded })
}

// Every kind of failure after payment ends failed, with its reason, and
// refunded exactly once.
func TestPostPaymentFailuresAreRefundedOnce(t *testing.T) {
	tests := []struct {
		name     string
		behavior func(*upsamplersim.Behavior)
		reason   string
	}{
		{"Upsampler fails the job", func(b *upsamplersim.Behavior) { b.FailNext = 1 }, jobs.ReasonUpsamplerFailed},
		{"Upsampler rejects the submission", func(b *upsamplersim.Behavior) { b.FailSubmitStatus = 400 }, jobs.ReasonUpsamplerRejected},
		{"success without an output URL", func(b *upsamplersim.Behavior) { b.SuccessWithoutImageURL = true }, jobs.ReasonUpsamplerNoOutput},
		{"no result before the deadline", func(b *upsamplersim.Behavior) { b.NeverFinish = true }, jobs.ReasonUpsamplerTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withBehavior(t, tt.behavior)
			created := paidJob(t)
			j := waitRefunded(t, created.ID, processingTimeout+30*time.Second)
			require.Equal(t, jobs.StatusFailed, j.Status)
			require.Equal(t, tt.reason, *j.FailureReason)
			require.NotNil(t, j.FailedAt)
			require.NotNil(t, j.RefundID)
			require.NotNil(t, j.RefundedAt)
			// The amount Stripe reports: the double refunds what is left of
			// the payment, all of it.
			require.Equal(t, *j.AmountPaidCents, *j.RefundAmountCents)
			require.Equal(t, *j.AmountPaidCents, stripe.AmountRefunded(*j.PaymentIntentID))
			require.Equal(t, 1, refundsOf(created.ID))
			requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND JobStatus = "failed" AND PaymentStatus = "refunded" AND FailureReason = %q`,
				jobs.WorkflowID(created.ID), tt.reason))

			// The customer sees the refund.
			var view api.JobView
			require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
			require.NotNil(t, view.Refund)
			require.Equal(t, *j.RefundAmountCents, view.Refund.AmountCents)
			require.Contains(t, getPage(t, "/jobs/"+created.ID+"?token="+url.QueryEscape(created.AccessToken)), "was refunded on")

			// Stripe confirms it with charge.refunded, twice: recorded once.
			for i := 0; i < 2; i++ {
				res, err := paysim.ConfirmRefund(context.Background(), paysimOptions(), created.ID)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.Status, res.Body)
			}
			j = waitFor(t, created.ID, 5*time.Second, "refund confirmed", func(j api.AdminJob) bool { return j.RefundConfirmedAt != nil })
			require.Equal(t, 1, refundsOf(created.ID))
		})
	}
}

// An admin retries a failed (and refunded) job from the Web UI: the retry
// signal re-runs processing and delivers the image.
func TestAdminRetryDeliversTheImage(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.FailNext = 1 })
	created := paidJob(t)
	waitRefunded(t, created.ID, processingTimeout+30*time.Second)

	require.NoError(t, temporal.SignalWorkflow(context.Background(), jobs.WorkflowID(created.ID), "",
		jobs.SignalRetry, jobs.RetryRequest{Reason: "customer asked", RequestedBy: "e2e"}))
	j := waitFor(t, created.ID, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	require.Equal(t, 1, j.Attempt)
	require.Equal(t, jobs.PaymentRefunded, j.PaymentStatus, "refunded, delivered anyway")
	require.Equal(t, 1, refundsOf(created.ID))

	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	resp, err := apiClient.Get(view.Download.URL)
	require.NoError(t, err)
	img, _, err := image.Decode(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 480, 400), img.Bounds())

	var steps []string
	for _, e := range j.Events {
		steps = append(steps, e.ToStatus)
	}
	require.Equal(t, []string{"awaiting_payment", "pending", "processing", "failed", "failed",
		"pending", "processing", "completed"}, steps, "the refund is a trail row of its own")
	requireClosedEventually(t, created.ID, downloadTTL+20*time.Second)
	recordHistory(t, created.ID, "failed_refunded_retried")
}

func TestFailedJobEndsAfterItsRetryWindow(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.FailNext = 1 })
	created := paidJob(t)
	waitRefunded(t, created.ID, processingTimeout+30*time.Second)
	requireClosedEventually(t, created.ID, retryWindow+20*time.Second)
	recordHistory(t, created.ID, "failed_refunded")
}

// Terminate runs no workflow code; the reconciliation schedule notices the
// unfinished job, marks it failed (terminated) and refunds it.
func TestTerminatedJobIsSettledByTheSweep(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.NeverFinish = true })
	created := paidJob(t)
	waitFor(t, created.ID, 20*time.Second, "processing", func(j api.AdminJob) bool { return j.Status == jobs.StatusProcessing })
	require.NoError(t, temporal.TerminateWorkflow(context.Background(), jobs.WorkflowID(created.ID), "", "stuck, says the admin"))
	j := waitRefunded(t, created.ID, 30*time.Second)
	require.Equal(t, jobs.StatusFailed, j.Status)
	require.Equal(t, jobs.ReasonTerminated, *j.FailureReason)
	time.Sleep(5 * time.Second) // more sweeps run: nothing more happens
	require.Equal(t, 1, refundsOf(created.ID))
	if id := sweepThatSettled(t, created.ID); id != "" {
		recordWorkflowHistory(t, id, "reconcile_settled_terminated")
	}
}

// sweepThatSettled finds the Reconcile run that settled job id.
func sweepThatSettled(t *testing.T, id string) string {
	t.Helper()
	resp, err := temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = %q AND ExecutionStatus = 'Completed'", jobs.ReconcileWorkflow),
	})
	require.NoError(t, err)
	for _, e := range resp.Executions {
		var res jobs.ReconcileResult
		run := temporal.GetWorkflow(context.Background(), e.Execution.WorkflowId, e.Execution.RunId)
		if run.Get(context.Background(), &res) == nil && slices.Contains(res.Settled, id) {
			return e.Execution.WorkflowId
		}
	}
	t.Fatalf("no completed sweep settled job %s", id)
	return ""
}

// Cancel is the graceful way: the workflow refunds and ends cancelled.
func TestCancelledJobIsRefunded(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.NeverFinish = true })
	created := paidJob(t)
	waitFor(t, created.ID, 20*time.Second, "processing", func(j api.AdminJob) bool { return j.Status == jobs.StatusProcessing })
	require.NoError(t, temporal.CancelWorkflow(context.Background(), jobs.WorkflowID(created.ID), ""))
	j := waitRefunded(t, created.ID, 30*time.Second)
	require.Equal(t, jobs.StatusFailed, j.Status)
	require.Equal(t, jobs.ReasonCancelled, *j.FailureReason)
	requireClosed(t, created.ID, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
	require.Equal(t, 1, refundsOf(created.ID))
	recordHistory(t, created.ID, "cancelled_refunded")
}

// Duplicated and reordered webhooks change nothing: one submission, one
// token, no status going backwards.
func TestDuplicateAndReorderedWebhooks(t *testing.T) {
	created, _ := newJob(t, 150, 100, "4x", "")
	ctx := context.Background()
	first, err := paysim.Pay(ctx, paysimOptions(), created.ID)
	require.NoError(t, err)
	// Stripe redelivers, and an expiry for the same session arrives late.
	for i := 0; i < 3; i++ {
		res, err := paysim.Send(ctx, paysimOptions(), first.EventID, jobs.EventCheckoutCompleted, first.Session)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status)
	}
	late, err := paysim.Expire(ctx, paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, late.Status)
	// A second completion event (new event ID) about the same payment.
	again, err := paysim.Send(ctx, paysimOptions(), "evt_again_"+created.ID[:8], jobs.EventCheckoutCompleted, first.Session)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, again.Status)

	j := waitFor(t, created.ID, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	token := j.Download
	submits := 0
	for _, r := range stack.Upsampler.Requests() {
		if r.Submit != nil && r.JobID == *j.UpsamplerJobID {
			submits++
		}
	}
	require.Equal(t, 1, submits)
	require.Equal(t, 0, refundsOf(created.ID))
	var steps []string
	for _, e := range j.Events {
		steps = append(steps, e.ToStatus)
	}
	require.Equal(t, []string{"awaiting_payment", "pending", "processing", "completed"}, steps)

	// Yet another redelivery after completion: still nothing.
	res, err := paysim.Send(ctx, paysimOptions(), "evt_after_"+created.ID[:8], jobs.EventCheckoutCompleted, first.Session)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	time.Sleep(time.Second)
	j2 := adminJob(t, created.ID)
	require.Equal(t, jobs.StatusCompleted, j2.Status)
	require.Equal(t, token, j2.Download)
	require.Equal(t, 0, refundsOf(created.ID))
}

// A payment that arrives after the job was abandoned is refunded, once,
// however often Stripe delivers it.
func TestLatePaymentIsRefunded(t *testing.T) {
	created, _ := newJob(t, 150, 100, "4x", "")
	ctx := context.Background()
	exp, err := paysim.Expire(ctx, paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, exp.Status)
	waitFor(t, created.ID, 20*time.Second, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	requireClosed(t, created.ID, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)

	pay, err := paysim.Pay(ctx, paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, pay.Status, pay.Body)
	require.Contains(t, pay.Body, "late_payment_refund")
	dup, err := paysim.Send(ctx, paysimOptions(), "evt_dup_"+created.ID[:8], jobs.EventCheckoutCompleted, pay.Session)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, dup.Status)

	j := waitRefunded(t, created.ID, 30*time.Second)
	require.Equal(t, jobs.StatusAbandoned, j.Status, "the job stays abandoned")
	require.Equal(t, pay.Session.PaymentIntentID, *j.PaymentIntentID)
	time.Sleep(3 * time.Second) // sweeps run meanwhile
	require.Equal(t, 1, refundsOf(created.ID))
	recordWorkflowHistory(t, jobs.LatePaymentWorkflowID(created.ID), "late_payment_refund")
}

// requireClosedEventually waits for the job's workflow to end normally.
func requireClosedEventually(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := temporal.DescribeWorkflowExecution(context.Background(), jobs.WorkflowID(id), "")
		require.NoError(t, err)
		if d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow of %s still %s", id, d.WorkflowExecutionInfo.Status)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
