package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/internal/jobs"
)

// The money paths: refunds Stripe refuses, delayed payment methods,
// cancellation of a job paid unknown to it, and admin actions that race.

var (
	upscaleFails = activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED"}
	refusedByStr = temporal.NewNonRetryableApplicationError("charge_disputed", activities.ErrTypeRefundRefused, nil)
)

// refusedAlways makes Stripe refuse every refund attempt.
func (h *harness) refusedAlways() {
	h.refundErrs = make([]error, 1000)
	for i := range h.refundErrs {
		h.refundErrs[i] = refusedByStr
	}
}

func TestRefundLoopEndsWhenStripeConfirmsTheRefund(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, upscaleFails)
	h.refusedAlways()
	h.stripe(time.Minute, paid("evt_1"))
	// The admin refunds by hand in the Dashboard; Stripe confirms it.
	h.stripe(150*time.Minute, jobs.StripeEvent{EventID: "evt_r", Type: jobs.EventChargeRefunded, PaymentIntentID: "pi_1"})
	st := h.run()
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Len(t, h.refunds, 3, "tried at once, after 1 h and 2 h; none after the confirmation")
	require.Equal(t, []int{0, 1, 2}, attempts(h.refunds), "each attempt after a refusal has its own key")
	h.env.AssertActivityNumberOfCalls(t, "MarkRefundNeedsAttention", 0)
}

func TestRefundStripeKeepsRefusingNeedsAttention(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, upscaleFails)
	h.refusedAlways()
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.PaymentRefundNeedsAttention, st.PaymentStatus)
	// RefundAttention 24 h, RefundRetry 1 h: at once, then hourly up to the bound.
	require.Len(t, h.refunds, 25)
	require.WithinDuration(t, start.Add(90*time.Second+24*time.Hour), h.attentionAt, 5*time.Second, "24 h after the first refusal")
	h.env.AssertActivityNumberOfCalls(t, "MarkRefundNeedsAttention", 1)
}

func TestSettledRefundIsMirroredAfterAttention(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, upscaleFails)
	h.refusedAlways()
	h.stripe(time.Minute, paid("evt_1"))
	var during jobs.State
	h.at(30*time.Hour, func() {
		v, err := h.env.QueryWorkflow(jobs.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
		h.env.SignalWorkflow(jobs.SignalRefundSettled, nil)
	})
	st := h.run()
	require.Equal(t, jobs.PaymentRefundNeedsAttention, during.PaymentStatus)
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Len(t, h.refunds, 25, "no refund call once a person owns it")
}

func TestRetryAskedDuringTheRefundIsKept(t *testing.T) {
	h := newHarness(t)
	checks := 0
	h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(queued, nil)
	h.env.OnActivity(a.CheckUpscale, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.CheckUpscaleInput) (activities.UpscaleStatus, error) {
			checks++
			if checks == 1 {
				return upscaleFails, nil
			}
			return success, nil
		})
	h.refundErrs = []error{refusedByStr}
	h.stripe(time.Minute, paid("evt_1"))
	// The refund was refused and waits an hour; the admin asks for a retry meanwhile.
	h.at(30*time.Minute, func() { h.env.SignalWorkflow(jobs.SignalRetry, jobs.RetryRequest{RequestedBy: "alice"}) })
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Equal(t, 1, st.Attempt)
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Len(t, h.refunds, 2)
}

func TestDelayedPayment(t *testing.T) {
	unpaid := paid("evt_1")
	unpaid.PaymentStatus = "unpaid"
	succeeded := paid("evt_2")
	succeeded.Type = jobs.EventCheckoutAsyncSucceeded
	failed := jobs.StripeEvent{EventID: "evt_3", Type: jobs.EventCheckoutAsyncFailed, SessionID: "cs_test_1"}
	tests := []struct {
		name    string
		verdict *jobs.StripeEvent
		at      time.Duration
		status  jobs.Status
		payment jobs.PaymentStatus
	}{
		// Past the 24 h payment window: the job waits, it is not abandoned.
		{"succeeds after the payment window", &succeeded, 3 * 24 * time.Hour, jobs.StatusCompleted, jobs.PaymentPaid},
		{"fails", &failed, 2 * 24 * time.Hour, jobs.StatusAbandoned, jobs.PaymentFailed},
		{"no word within its own bound", nil, 0, jobs.StatusAbandoned, jobs.PaymentFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.upsampler(queued, success)
			h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(activities.ExpireCheckoutResult{}, nil)
			h.stripe(time.Minute, unpaid)
			if tt.verdict != nil {
				h.stripe(tt.at, *tt.verdict)
			}
			st := h.run()
			require.Equal(t, tt.status, st.Status)
			require.Equal(t, tt.payment, st.PaymentStatus)
			h.env.AssertActivityNumberOfCalls(t, "MarkPaymentProcessing", 1)
			h.env.AssertActivityNumberOfCalls(t, "ExpireCheckout", 0)
			h.env.AssertActivityNumberOfCalls(t, "RefundPayment", 0)
			if tt.verdict == nil {
				require.Equal(t, start.Add(time.Minute+14*24*time.Hour), h.env.Now().UTC())
			}
		})
	}
}

// The delayed method's completion event was lost: Stripe's session, read
// when the payment window closes, tells the job to wait.
func TestDelayedPaymentFoundWhenTheWindowCloses(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	unpaid := paid("")
	unpaid.PaymentStatus = "unpaid"
	h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(
		activities.ExpireCheckoutResult{Processing: true, Payment: unpaid}, nil)
	succeeded := paid("evt_2")
	succeeded.Type = jobs.EventCheckoutAsyncSucceeded
	h.stripe(26*time.Hour, succeeded)
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	h.env.AssertActivityNumberOfCalls(t, "RecordAbandoned", 0)
}

// Cancelling an awaiting job whose session Stripe reports paid records the
// payment and refunds it; the image is never sent for upscaling.
func TestCancelledWhilePaidUnknownIsRefundedNotUpscaled(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(
		activities.ExpireCheckoutResult{Paid: true, Payment: paid("")}, nil)
	h.runCancelled(time.Hour)
	require.Equal(t, []jobs.Status{jobs.StatusPending, jobs.StatusFailed}, h.statuses)
	require.Len(t, h.refunds, 1)
	require.Equal(t, jobs.ReasonCancelled, h.refunds[0].Reason)
	h.env.AssertActivityNumberOfCalls(t, "SubmitUpscale", 0)
}

// A download update that arrives once the link reached its expiry, while the
// file is being deleted, is refused: no dead link is emailed.
func TestDownloadUpdateRacingTheExpiryIsRefused(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.env.OnActivity(a.ExpireDownload, mock.Anything, mock.Anything).After(time.Minute).Return(nil)
	h.stripe(time.Minute, paid("evt_1"))
	var rejected error
	// Delivered at about 1 min; the link expires 24 h later; the file takes a minute to go.
	h.at(24*time.Hour+time.Minute+30*time.Second, func() {
		h.env.UpdateWorkflow(jobs.UpdateResendDownload, "racing", &testsuite.TestUpdateCallback{
			OnAccept: func() { t.Error("accepted a resend of an expiring link") },
			OnReject: func(err error) { rejected = err }, OnComplete: func(any, error) {},
		}, jobs.DownloadRequest{})
	})
	h.run()
	require.Error(t, rejected)
	h.env.AssertActivityNumberOfCalls(t, "SetDownload", 0)
}

// The job record says completed as soon as StoreResult commits, before the
// workflow hears of it: an admin's download update arriving then waits for
// the result and is applied, not refused; one arriving while a result that
// fails is stored is refused.
func TestDownloadUpdateWhileTheResultIsStored(t *testing.T) {
	for _, tt := range []struct {
		name     string
		storeErr error
		applied  bool
	}{
		{"stored", nil, true},
		{"storing fails", temporal.NewNonRetryableApplicationError("not an image", activities.ErrTypeResultInvalid, nil), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(h *harness) { h.storeTakes, h.storeErr = 10*time.Minute, tt.storeErr })
			h.upsampler(queued, success)
			h.stripe(time.Minute, paid("evt_1"))
			var accepted, done bool
			var err error
			// Paid at 1 min, the result is stored from about 2 to 12 min.
			h.at(5*time.Minute, func() {
				h.env.UpdateWorkflow(jobs.UpdateResendDownload, "while-storing", &testsuite.TestUpdateCallback{
					OnAccept: func() { accepted = true }, OnReject: func(e error) { err = e },
					OnComplete: func(_ any, e error) { done, err = true, e },
				}, jobs.DownloadRequest{})
			})
			h.env.ExecuteWorkflow(ImageJob, input())
			require.True(t, h.env.IsWorkflowCompleted())
			require.Len(t, h.stored, 1)
			require.True(t, accepted, "accepted while the result is stored: %v", err)
			require.True(t, done)
			if tt.applied {
				require.NoError(t, err)
				require.Len(t, h.downloads, 1)
			} else {
				require.ErrorContains(t, err, "no download to change")
				require.Empty(t, h.downloads)
			}
		})
	}
}

func TestOwedRefundWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	env.OnActivity(a.MarkRefundFailed, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.MarkRefundNeedsAttention, mock.Anything, mock.Anything).Return(true, nil)
	var refunds []activities.RefundInput
	env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefundInput) (activities.RefundResult, error) {
			refunds = append(refunds, in)
			return activities.RefundResult{}, refusedByStr
		})
	env.ExecuteWorkflow(OwedRefund, jobs.OwedRefundInput{JobID: "j1", PaymentIntentID: "pi_1", AmountCents: 50,
		Reason: jobs.ReasonTerminated, RefundRetry: time.Hour, RefundAttention: 3 * time.Hour})
	require.NoError(t, env.GetWorkflowError())
	var st jobs.State
	require.NoError(t, env.GetWorkflowResult(&st))
	require.Equal(t, jobs.PaymentRefundNeedsAttention, st.PaymentStatus)
	require.Equal(t, []int{0, 1, 2, 3}, attempts(refunds))
	require.Equal(t, jobs.ReasonTerminated, refunds[0].Reason)
}

func attempts(rs []activities.RefundInput) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Attempt
	}
	return out
}

var answerLost = temporal.NewNonRetryableApplicationError("504 Gateway Timeout", activities.ErrTypeUpsamplerAmbiguous, nil)

// A submission whose answer was lost is not sent again while its callback
// may still name the Upsampler job.
func TestLostSubmissionAnswerWaitsForItsCallback(t *testing.T) {
	tests := []struct {
		name        string
		callback    *jobs.UpsamplerCallback
		submissions []int
	}{
		{"its callback names the job", &jobs.UpsamplerCallback{UpsamplerJobID: "up_1", Status: "SUCCESS", Submission: 1}, []int{1}},
		{"a callback of another submission does not", &jobs.UpsamplerCallback{UpsamplerJobID: "up_x", Status: "SUCCESS", Submission: 7}, []int{1, 2}},
		{"no callback: sent again after the wait", nil, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var sent []int
			var sentAt []time.Time
			h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
					sent = append(sent, in.Submission)
					sentAt = append(sentAt, h.env.Now())
					if len(sent) == 1 {
						return activities.UpscaleStatus{}, answerLost
					}
					return activities.UpscaleStatus{UpsamplerJobID: "up_2", Status: "IN_QUEUE"}, nil
				})
			var checked []string
			h.env.OnActivity(a.CheckUpscale, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.CheckUpscaleInput) (activities.UpscaleStatus, error) {
					checked = append(checked, in.UpsamplerJobID)
					return activities.UpscaleStatus{UpsamplerJobID: in.UpsamplerJobID, Status: "SUCCESS", ResultURL: "https://cdn.upsampler.com/r.png"}, nil
				})
			h.stripe(time.Minute, paid("evt_1"))
			if tt.callback != nil {
				h.at(3*time.Minute, func() { h.env.SignalWorkflow(jobs.SignalUpsamplerCallback, *tt.callback) })
			}
			in := input()
			in.Timeouts.LostSubmission = 10 * time.Minute
			h.env.ExecuteWorkflow(ImageJob, in)
			require.NoError(t, h.env.GetWorkflowError())
			require.Equal(t, tt.submissions, sent)
			require.Equal(t, []jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted}, h.statuses)
			if len(sent) == 1 {
				require.Equal(t, []string{"up_1"}, checked, "the named job, confirmed with Upsampler")
			} else {
				require.Equal(t, 10*time.Minute, sentAt[1].Sub(sentAt[0]), "sent again only after LostSubmission")
			}
		})
	}
}

// Admins' retries and resends are bounded, and with them the history.
func TestAdminLimits(t *testing.T) {
	t.Run("retries", func(t *testing.T) {
		h := newHarness(t)
		submits := 0
		h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(
			func(context.Context, activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
				submits++
				return queued, nil
			})
		h.env.OnActivity(a.CheckUpscale, mock.Anything, mock.Anything).Return(upscaleFails, nil)
		h.stripe(time.Minute, paid("evt_1"))
		for i := 1; i <= 4; i++ {
			h.at(time.Duration(i)*24*time.Hour, func() { h.env.SignalWorkflow(jobs.SignalRetry, jobs.RetryRequest{}) })
		}
		in := input()
		in.Limits = jobs.Limits{MaxRetries: 2, MaxResends: 1}
		h.env.ExecuteWorkflow(ImageJob, in)
		require.NoError(t, h.env.GetWorkflowError())
		require.Equal(t, 3, submits, "the first attempt and two retries")
	})
	t.Run("resends", func(t *testing.T) {
		h := newHarness(t)
		h.upsampler(queued, success)
		h.stripe(time.Minute, paid("evt_1"))
		var accepted, rejected int
		for i := 1; i <= 3; i++ {
			h.at(time.Duration(i)*time.Hour, func() {
				h.env.UpdateWorkflow(jobs.UpdateResendDownload, "r"+string(rune('0'+i)), &testsuite.TestUpdateCallback{
					OnAccept: func() { accepted++ }, OnReject: func(error) { rejected++ }, OnComplete: func(any, error) {},
				}, jobs.DownloadRequest{})
			})
		}
		in := input()
		in.Limits = jobs.Limits{MaxRetries: 2, MaxResends: 2}
		h.env.ExecuteWorkflow(ImageJob, in)
		require.NoError(t, h.env.GetWorkflowError())
		require.Equal(t, 2, accepted)
		require.Equal(t, 1, rejected)
	})
}

// A refund the sweep takes over goes on from the job's refusals: new keys
// only, and the same deadline.
func TestOwedRefundGoesOnFromTheJobsRefusals(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.RegisterActivity(&activities.Activities{})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	var next []int
	env.OnActivity(a.MarkRefundFailed, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.MarkRefundFailedInput) error {
		next = append(next, in.NextAttempt)
		return nil
	})
	env.OnActivity(a.MarkRefundNeedsAttention, mock.Anything, mock.Anything).Return(true, nil)
	var refunds []activities.RefundInput
	env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefundInput) (activities.RefundResult, error) {
			refunds = append(refunds, in)
			return activities.RefundResult{}, refusedByStr
		})
	env.ExecuteWorkflow(OwedRefund, jobs.OwedRefundInput{JobID: "j1", PaymentIntentID: "pi_1", AmountCents: 50,
		Reason: jobs.ReasonTerminated, RefundRetry: time.Hour, RefundAttention: 72 * time.Hour,
		FirstAttempt: 3, RefusedSince: start.Add(-71 * time.Hour)})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []int{3, 4}, attempts(refunds), "keys 0-2 hold refusals already")
	require.Equal(t, []int{4}, next)
}

// PROCESSING_TIMEOUT bounds an attempt from submission to stored result: a
// result that comes late leaves keeping it only what is left of it.
func TestProcessingTimeoutBoundsTheStoredResult(t *testing.T) {
	h := newHarness(t)
	polls := make([]activities.UpscaleStatus, 58) // 29 minutes of polling every 30 s
	for i := range polls {
		polls[i] = running
	}
	h.upsampler(queued, append(polls, success)...)
	var storeBudget time.Duration
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "StoreResult" {
			storeBudget = info.ScheduleToCloseTimeout
		}
	})
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Positive(t, storeBudget)
	require.LessOrEqual(t, storeBudget, time.Minute, "what is left of the 30 minutes, not 30 more")
}
