package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// closing is a test environment for the end of an unpaid job: each test
// scripts RecordAbandoned itself.
type closing struct {
	env     *testsuite.TestWorkflowEnvironment
	refunds []activities.RefundInput
	late    []activities.RecordPaymentInput
	failed  []string // FailJob reasons
	// refundErr is what every refund attempt fails with, if anything.
	refundErr error
}

func newClosing(t *testing.T) *closing {
	var s testsuite.WorkflowTestSuite
	c := &closing{env: s.NewTestWorkflowEnvironment()}
	c.env.SetStartTime(start)
	c.env.RegisterActivity(&activities.Activities{})
	c.env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	c.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(activities.ExpireCheckoutResult{}, nil)
	c.env.OnActivity(a.FailJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FailJobInput) error {
		c.failed = append(c.failed, in.Reason)
		return nil
	})
	c.env.OnActivity(a.RecordLatePayment, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RecordPaymentInput) error {
		c.late = append(c.late, in)
		return nil
	})
	c.env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefundInput) (activities.RefundResult, error) {
			c.refunds = append(c.refunds, in)
			if c.refundErr != nil {
				return activities.RefundResult{}, c.refundErr
			}
			return activities.RefundResult{RefundID: "re_1", AmountCents: in.AmountCents, Status: "succeeded"}, nil
		})
	return c
}

func (c *closing) signal(at time.Duration, e jobs.StripeEvent) {
	c.env.RegisterDelayedCallback(func() { c.env.SignalWorkflow(jobs.SignalStripeEvent, e) }, at)
}

func (c *closing) run(t *testing.T, in jobs.WorkflowInput) jobs.State {
	t.Helper()
	c.env.ExecuteWorkflow(ImageJob, in)
	require.True(t, c.env.IsWorkflowCompleted())
	require.NoError(t, c.env.GetWorkflowError())
	var st jobs.State
	require.NoError(t, c.env.GetWorkflowResult(&st))
	return st
}

var lateRefund = []activities.RefundInput{{JobID: input().JobID, PaymentIntentID: "pi_1", AmountCents: 50, Reason: jobs.ReasonLatePayment}}

// A payment arrives while the job's abandonment is being recorded: the
// running workflow accepted it, so it must refund it before it ends.
func TestPaymentWhileAbandonedJobWindsDownIsRefunded(t *testing.T) {
	c := newClosing(t)
	c.env.OnActivity(a.RecordAbandoned, mock.Anything, mock.Anything).Return(nil).After(2 * time.Hour)
	c.signal(time.Hour, jobs.StripeEvent{EventID: "evt_exp", Type: jobs.EventCheckoutExpired})
	c.signal(90*time.Minute, paid("evt_late"))
	c.signal(100*time.Minute, paid("evt_late")) // redelivered: still one refund

	st := c.run(t, input())
	require.Equal(t, jobs.StatusAbandoned, st.Status)
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Equal(t, lateRefund, c.refunds)
	require.Len(t, c.late, 1)
	c.env.AssertActivityNumberOfCalls(t, "SubmitUpscale", 0)
}

// yieldProbe hands a value to a coroutine blocked on a channel, the way a
// signal reaches the Stripe-event coroutine in the same workflow task as
// an activity result, and reports whether that coroutine has handled it
// by the time the main flow goes on.
func yieldProbe(ctx workflow.Context, useYield bool) (bool, error) {
	ch := workflow.NewChannel(ctx)
	handled := false
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch.Receive(ctx, nil)
		handled = true
	})
	if err := workflow.Sleep(ctx, time.Second); err != nil { // the receiver blocks
		return false, err
	}
	ch.SendAsync("payment")
	if useYield {
		if err := yield(ctx); err != nil {
			return false, err
		}
	}
	return handled, nil
}

// Without yield the main flow would decide before the coroutine ran: the
// hazard closeUnpaid guards against; with it, the value is handled.
func TestYieldLetsPendingCoroutinesRun(t *testing.T) {
	for _, useYield := range []bool{false, true} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(yieldProbe)
		env.ExecuteWorkflow(yieldProbe, useYield)
		require.NoError(t, env.GetWorkflowError())
		var handled bool
		require.NoError(t, env.GetWorkflowResult(&handled))
		require.Equal(t, useYield, handled, "yield=%v", useYield)
	}
}

// A late payment whose refund Stripe keeps refusing is handed to an admin,
// and the workflow ends: it does not start the refund over.
func TestLatePaymentHandedToAnAdminEndsTheWorkflow(t *testing.T) {
	c := newClosing(t)
	c.env.OnActivity(a.RecordAbandoned, mock.Anything, mock.Anything).Return(nil).After(2 * time.Hour) // the payment comes meanwhile
	c.refundErr = temporal.NewNonRetryableApplicationError("charge disputed", activities.ErrTypeRefundRefused, nil)
	c.env.OnActivity(a.MarkRefundFailed, mock.Anything, mock.Anything).Return(nil)
	c.env.OnActivity(a.MarkRefundNeedsAttention, mock.Anything, mock.Anything).Return(true, nil)
	c.signal(time.Hour, jobs.StripeEvent{EventID: "evt_exp", Type: jobs.EventCheckoutExpired})
	c.signal(90*time.Minute, paid("evt_late"))

	in := input()
	st := c.run(t, in)
	require.Equal(t, jobs.StatusAbandoned, st.Status)
	require.Equal(t, jobs.PaymentRefundNeedsAttention, st.PaymentStatus)
	require.Len(t, c.late, 1, "the late payment was recorded once")
	// One attempt per RefundRetry until RefundAttention, then no more.
	want := int(in.Timeouts.RefundAttention/in.Timeouts.RefundRetry) + 1
	require.Len(t, c.refunds, want)
}
