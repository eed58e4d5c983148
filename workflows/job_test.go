package workflows

import (
	"context"
	"errors"
	"strconv"
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

var start = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func input() jobs.WorkflowInput {
	return jobs.WorkflowInput{
		JobID: "6f1c1b52-0f55-4c3e-9d0e-3a1d2b7c8e90", ImageURL: "https://images.example.com/a.png",
		Resolution: jobs.Resolution4x, ImageWidth: 120, ImageHeight: 90,
		PriceCents: 50, Currency: "usd", CheckoutExpiresAt: start.Add(time.Hour),
		Checkout: jobs.Checkout{SessionID: "cs_test_1", ExpiresAt: start.Add(time.Hour)},
		Timeouts: jobs.Timeouts{Payment: 24 * time.Hour, DownloadTTL: 24 * time.Hour,
			Processing: 30 * time.Minute, PollInterval: 30 * time.Second,
			RetryWindow: 7 * 24 * time.Hour, RefundRetry: time.Hour, RefundAttention: 24 * time.Hour,
			AsyncPayment: 14 * 24 * time.Hour, ReminderLead: 2 * time.Hour},
	}
}

// harness runs the workflow with its activities mocked and records what
// the job record would have seen.
type harness struct {
	t          *testing.T
	env        *testsuite.TestWorkflowEnvironment
	statuses   []jobs.Status
	failed     *activities.FailJobInput
	storeErr   error         // what StoreResult fails with, if anything
	storeTakes time.Duration // how long StoreResult runs
	failedAt   time.Time
	refunds    []activities.RefundInput
	// stored and downloads are the inputs of StoreResult and SetDownload:
	// what the job record is told about the link and its reminder.
	stored    []activities.StoreResultInput
	downloads []activities.SetDownloadInput
	// refundErrs are returned by the first refund attempts, in order.
	refundErrs []error
	// attentionAt is when the refund was handed to an admin.
	attentionAt time.Time
	// upserts are the search attributes the workflow upserted, in order.
	upserts []temporal.SearchAttributes
}

func newHarness(t *testing.T, opts ...func(*harness)) *harness {
	var s testsuite.WorkflowTestSuite
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment()}
	for _, o := range opts {
		o(h)
	}
	h.env.SetStartTime(start)
	h.env.RegisterActivity(&activities.Activities{})
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		h.upserts = append(h.upserts, args.Get(0).(temporal.SearchAttributes))
	}).Return(nil)
	h.env.OnActivity(a.RecordPayment, mock.Anything, mock.Anything).Return(record[activities.RecordPaymentInput](h, jobs.StatusPending))
	h.env.OnActivity(a.RecordAbandoned, mock.Anything, mock.Anything).Return(record[activities.RecordAbandonedInput](h, jobs.StatusAbandoned))
	h.env.OnActivity(a.MarkProcessing, mock.Anything, mock.Anything).Return(record[activities.MarkProcessingInput](h, jobs.StatusProcessing))
	h.env.OnActivity(a.FailJob, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FailJobInput) error {
		h.failed = &in
		h.failedAt = h.env.Now()
		h.statuses = append(h.statuses, jobs.StatusFailed)
		return nil
	})
	h.env.OnActivity(a.ExpireDownload, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefundInput) (activities.RefundResult, error) {
			h.refunds = append(h.refunds, in)
			if n := len(h.refunds); n <= len(h.refundErrs) && h.refundErrs[n-1] != nil {
				return activities.RefundResult{}, h.refundErrs[n-1]
			}
			return activities.RefundResult{RefundID: "re_1", AmountCents: in.AmountCents, Status: "succeeded"}, nil
		})
	h.env.OnActivity(a.MarkRefundFailed, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.MarkRefundNeedsAttention, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.MarkRefundFailedInput) (bool, error) {
			h.attentionAt = h.env.Now()
			return true, nil
		})
	h.env.OnActivity(a.MarkPaymentProcessing, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.SetDownload, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SetDownloadInput) error {
		h.downloads = append(h.downloads, in)
		return nil
	})
	h.env.OnActivity(a.RecordLatePayment, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.MarkRetrying, mock.Anything, mock.Anything).Return(record[activities.MarkRetryingInput](h, jobs.StatusPending))
	h.env.OnActivity(a.StoreResult, mock.Anything, mock.Anything).After(h.storeTakes).Return(
		func(_ context.Context, in activities.StoreResultInput) error {
			h.stored = append(h.stored, in)
			if h.storeErr != nil {
				return h.storeErr
			}
			h.statuses = append(h.statuses, jobs.StatusCompleted) // the job record completes the job
			return nil
		})
	return h
}

// record returns an activity mock that notes the status it writes.
func record[In any](h *harness, s jobs.Status) func(context.Context, In) error {
	return func(context.Context, In) error {
		h.statuses = append(h.statuses, s)
		return nil
	}
}

func (h *harness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *harness) stripe(d time.Duration, e jobs.StripeEvent) {
	h.at(d, func() { h.env.SignalWorkflow(jobs.SignalStripeEvent, e) })
}

func paid(id string) jobs.StripeEvent {
	return jobs.StripeEvent{EventID: id, Type: jobs.EventCheckoutCompleted, PaymentStatus: "paid",
		SessionID: "cs_test_1", PaymentIntentID: "pi_1", AmountCents: 50, Currency: "usd"}
}

// upsampler makes Upsampler answer the submission with submit, which the
// submission records (the job is processing), and the status checks with
// checks in turn (the last one from then on).
func (h *harness) upsampler(submit activities.UpscaleStatus, checks ...activities.UpscaleStatus) {
	h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
			h.statuses = append(h.statuses, jobs.StatusProcessing)
			st := submit
			st.Recorded = true
			return st, nil
		})
	i := 0
	h.env.OnActivity(a.CheckUpscale, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.CheckUpscaleInput) (activities.UpscaleStatus, error) {
			st := checks[min(i, len(checks)-1)]
			i++
			return st, nil
		})
}

func (h *harness) run() jobs.State {
	h.env.ExecuteWorkflow(ImageJob, input())
	require.True(h.t, h.env.IsWorkflowCompleted())
	require.NoError(h.t, h.env.GetWorkflowError())
	var st jobs.State
	require.NoError(h.t, h.env.GetWorkflowResult(&st))
	return st
}

// runCancelled runs a workflow that is cancelled at cancelAt.
func (h *harness) runCancelled(cancelAt time.Duration) {
	h.at(cancelAt, h.env.CancelWorkflow)
	h.env.ExecuteWorkflow(ImageJob, input())
	require.True(h.t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	require.Error(h.t, err)
	var canceled *temporal.CanceledError
	require.True(h.t, errors.As(err, &canceled), "want a cancelled workflow, got %v", err)
}

var (
	queued  = activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "IN_QUEUE"}
	running = activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "IN_PROGRESS"}
	success = activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "SUCCESS", ResultURL: "https://cdn.upsampler.com/r.png", CreditCost: 1}
)

func TestHappyPathWithCallback(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.stripe(time.Minute, paid("evt_1"))
	h.at(time.Minute+10*time.Second, func() {
		h.env.SignalWorkflow(jobs.SignalUpsamplerCallback, jobs.UpsamplerCallback{UpsamplerJobID: "up_1", Status: "SUCCESS"})
	})
	st := h.run()

	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Equal(t, jobs.PaymentPaid, st.PaymentStatus)
	require.Equal(t, []jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted}, h.statuses)
	// The callback woke the workflow well before the 30s poll would have.
	require.Equal(t, start.Add(time.Minute+10*time.Second).Add(24*time.Hour), st.DownloadExpiry.UTC())
	h.env.AssertActivityNumberOfCalls(t, "CheckUpscale", 1)
	h.env.AssertActivityNumberOfCalls(t, "ExpireDownload", 1)
	// It slept until the link expired.
	require.False(t, h.env.Now().Before(st.DownloadExpiry))
}

// A fast Upsampler can call back before the submission's own answer is in:
// that callback must wake the first check, not wait for the poll interval.
func TestCallbackBeforeSubmitAnswerWakesTheCheck(t *testing.T) {
	h := newHarness(t)
	h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
			h.env.SignalWorkflow(jobs.SignalUpsamplerCallback, jobs.UpsamplerCallback{UpsamplerJobID: "up_1", Status: "SUCCESS"})
			return queued, nil
		}).Once()
	h.upsampler(queued, success) // registered second: the submission above answers first
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Equal(t, start.Add(time.Minute).Add(24*time.Hour), st.DownloadExpiry.UTC(), "the check waited for the poll interval")
	h.env.AssertActivityNumberOfCalls(t, "CheckUpscale", 1)
}

// The submission goes inline (a local activity), once.
func TestSubmissionStartsWithThePayment(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	var order []string
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		order = append(order, "local "+info.ActivityType.Name)
	})
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		order = append(order, info.ActivityType.Name)
	})
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.GreaterOrEqual(t, len(order), 2)
	// Both are started from the same workflow task; which listener fires
	// first is up to the test environment's goroutines.
	require.Contains(t, order, "local SubmitUpscale", "no inline submission in %v", order)
	require.NotContains(t, order, "SubmitUpscale", "submitted twice: %v", order)
}

func TestPollingFallbackWhenNoCallbackArrives(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, running, running, success)
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	h.env.AssertActivityNumberOfCalls(t, "CheckUpscale", 3)
}

func TestDuplicateAndLateStripeEventsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.stripe(time.Minute, paid("evt_1"))
	h.stripe(time.Minute+time.Second, paid("evt_1"))   // redelivery
	h.stripe(time.Minute+2*time.Second, paid("evt_2")) // a second event about the same payment
	h.stripe(time.Minute+3*time.Second, jobs.StripeEvent{EventID: "evt_3", Type: jobs.EventCheckoutExpired})
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	h.env.AssertActivityNumberOfCalls(t, "RecordPayment", 1)
	h.env.AssertActivityNumberOfCalls(t, "SubmitUpscale", 1)
	h.env.AssertActivityNumberOfCalls(t, "RecordAbandoned", 0)
}

func TestAsyncPaymentWaitsForSuccess(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	unpaid := paid("evt_1")
	unpaid.PaymentStatus = "unpaid"
	h.stripe(time.Minute, unpaid)
	later := paid("evt_2")
	later.Type = jobs.EventCheckoutAsyncSucceeded
	h.stripe(time.Hour, later)
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Equal(t, []jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted}, h.statuses)
}

func TestAbandonment(t *testing.T) {
	tests := []struct {
		name    string
		event   *jobs.StripeEvent
		payment jobs.PaymentStatus
	}{
		{"payment window closes", nil, jobs.PaymentExpired},
		{"session expired at Stripe", &jobs.StripeEvent{EventID: "evt_9", Type: jobs.EventCheckoutExpired}, jobs.PaymentExpired},
		{"async payment failed", &jobs.StripeEvent{EventID: "evt_9", Type: jobs.EventCheckoutAsyncFailed}, jobs.PaymentFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(activities.ExpireCheckoutResult{}, nil)
			if tt.event != nil {
				h.stripe(time.Hour, *tt.event)
			}
			st := h.run()
			require.Equal(t, jobs.StatusAbandoned, st.Status)
			require.Equal(t, tt.payment, st.PaymentStatus)
			require.Equal(t, []jobs.Status{jobs.StatusAbandoned}, h.statuses)
			calls := 0
			if tt.event == nil {
				calls = 1
				require.Equal(t, start.Add(24*time.Hour), h.env.Now().UTC())
			}
			h.env.AssertActivityNumberOfCalls(t, "ExpireCheckout", calls)
			h.env.AssertActivityNumberOfCalls(t, "SubmitUpscale", 0)
		})
	}
}

func TestPaidAtStripeWhenTheWindowCloses(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(
		activities.ExpireCheckoutResult{Paid: true, Payment: paid("")}, nil)
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	h.env.AssertActivityNumberOfCalls(t, "RecordAbandoned", 0)
}

func TestFailures(t *testing.T) {
	rejected := temporal.NewNonRetryableApplicationError("bad input", activities.ErrTypeUpsamplerRejected, nil)
	tests := []struct {
		name      string
		setup     func(h *harness)
		reason    string
		processed bool // whether the job reached processing
	}{
		{"submit rejected", func(h *harness) {
			h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(activities.UpscaleStatus{}, rejected)
		}, jobs.ReasonUpsamplerRejected, false},
		{"Upsampler failed", func(h *harness) {
			h.upsampler(queued, activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED", Error: "internal error"})
		}, jobs.ReasonUpsamplerFailed, true},
		{"failed at submission", func(h *harness) {
			h.upsampler(activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED", Error: "Insufficient credits"})
		}, jobs.ReasonUpsamplerFailed, true},
		{"success without output", func(h *harness) {
			h.upsampler(queued, activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "SUCCESS"})
		}, jobs.ReasonUpsamplerNoOutput, true},
		{"never finishes", func(h *harness) { h.upsampler(queued, running) }, jobs.ReasonUpsamplerTimeout, true},
		{"result invalid", func(h *harness) {
			h.upsampler(queued, success)
			h.storeErr = temporal.NewNonRetryableApplicationError("not an image", activities.ErrTypeResultInvalid, nil)
		}, jobs.ReasonResultInvalid, true},
		{"result gone", func(h *harness) {
			h.upsampler(queued, success)
			h.storeErr = temporal.NewNonRetryableApplicationError("404", activities.ErrTypeResultGone, nil)
		}, jobs.ReasonResultFetchFailed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.setup(h)
			h.stripe(time.Minute, paid("evt_1"))
			st := h.run()
			require.Equal(t, jobs.StatusFailed, st.Status)
			require.Equal(t, tt.reason, st.FailureReason)
			require.NotNil(t, h.failed)
			require.Equal(t, tt.reason, h.failed.Reason)
			want := []jobs.Status{jobs.StatusPending, jobs.StatusFailed}
			if tt.processed {
				want = []jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusFailed}
			}
			require.Equal(t, want, h.statuses)
			// Refunded exactly once, in full, with the reason.
			require.Equal(t, []activities.RefundInput{{JobID: input().JobID, PaymentIntentID: "pi_1",
				AmountCents: 50, Reason: tt.reason}}, h.refunds)
			require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
			// The job stayed open for the retry window, then ended.
			require.False(t, h.env.Now().Before(start.Add(7*24*time.Hour)))
		})
	}
}

func TestProcessingDeadlineBoundsTheWait(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, running)
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.ReasonUpsamplerTimeout, st.FailureReason)
	failedAt := h.failedAt.Sub(start.Add(time.Minute))
	require.GreaterOrEqual(t, failedAt, 30*time.Minute)
	require.Less(t, failedAt, 32*time.Minute)
}

func TestQueryState(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, running, success)
	h.stripe(time.Minute, paid("evt_1"))
	h.at(time.Minute+10*time.Second, func() {
		v, err := h.env.QueryWorkflow(jobs.QueryState)
		require.NoError(t, err)
		var st jobs.State
		require.NoError(t, v.Get(&st))
		require.Equal(t, jobs.StatusProcessing, st.Status)
		require.Equal(t, "up_1", st.UpsamplerJobID)
	})
	h.run()
}

func TestRefusedRefundIsRetriedAndSurfaced(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED"})
	refused := temporal.NewNonRetryableApplicationError("card declined the refund", activities.ErrTypeStripeRejected, nil)
	h.refundErrs = []error{refused, refused}
	h.stripe(time.Minute, paid("evt_1"))
	st := h.run()
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Len(t, h.refunds, 3, "refused twice, then refunded")
	h.env.AssertActivityNumberOfCalls(t, "MarkRefundFailed", 2)
}

func TestConfirmedRefundEndsTheRetryWait(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED"})
	h.refundErrs = []error{temporal.NewNonRetryableApplicationError("refused", activities.ErrTypeStripeRejected, nil)}
	h.stripe(time.Minute, paid("evt_1"))
	// Someone refunds it in the Stripe dashboard ten minutes later.
	h.stripe(12*time.Minute, jobs.StripeEvent{EventID: "evt_r", Type: jobs.EventChargeRefunded, PaymentIntentID: "pi_1"})
	var refundedAt time.Time
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(jobs.AttrPaymentStatus); ok && v == string(jobs.PaymentRefunded) {
			refundedAt = h.env.Now()
		}
	}).Return(nil)
	st := h.run()
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Len(t, h.refunds, 1, "no refund call after Stripe confirmed one")
	require.Less(t, refundedAt.Sub(start), time.Hour, "settled when Stripe confirmed, not an hour later")
}

func TestAdminRetryDeliversAfterAFailure(t *testing.T) {
	h := newHarness(t)
	calls := 0
	h.env.OnActivity(a.SubmitUpscale, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
			calls++
			require.Equal(t, calls-1, in.Attempt, "each attempt is numbered")
			return activities.UpscaleStatus{UpsamplerJobID: "up_" + strconv.Itoa(calls), Status: "IN_QUEUE"}, nil
		})
	h.env.OnActivity(a.CheckUpscale, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CheckUpscaleInput) (activities.UpscaleStatus, error) {
			if in.UpsamplerJobID == "up_1" {
				return activities.UpscaleStatus{UpsamplerJobID: "up_1", Status: "FAILED", Error: "boom"}, nil
			}
			return activities.UpscaleStatus{UpsamplerJobID: in.UpsamplerJobID, Status: "SUCCESS", ResultURL: "https://cdn.upsampler.com/r.png"}, nil
		})
	h.stripe(time.Minute, paid("evt_1"))
	// A retry while the job is still processing is ignored...
	h.at(time.Minute+5*time.Second, func() { h.env.SignalWorkflow(jobs.SignalRetry, jobs.RetryRequest{}) })
	// ...one in the retry window is taken.
	h.at(48*time.Hour, func() {
		h.env.SignalWorkflow(jobs.SignalRetry, jobs.RetryRequest{Reason: "customer asked", RequestedBy: "alice"})
	})
	st := h.run()
	require.Equal(t, jobs.StatusCompleted, st.Status)
	require.Equal(t, 1, st.Attempt)
	require.Equal(t, []jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusFailed,
		jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted}, h.statuses)
	require.Len(t, h.refunds, 1, "refunded once; the admin chose to deliver anyway")
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
}

func TestCancellation(t *testing.T) {
	tests := []struct {
		name     string
		cancelAt time.Duration
		paidAt   time.Duration // 0: never paid
		statuses []jobs.Status
		refunds  int
		expired  int // ExpireCheckout calls
		cleanup  int // ExpireDownload calls
	}{
		{"awaiting payment", time.Hour, 0, []jobs.Status{jobs.StatusAbandoned}, 0, 1, 0},
		{"processing", time.Minute + 10*time.Second, time.Minute,
			[]jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusFailed}, 1, 0, 0},
		{"completed", 2 * time.Hour, time.Minute,
			[]jobs.Status{jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.upsampler(queued, running, running, running, success)
			h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(activities.ExpireCheckoutResult{}, nil)
			if tt.paidAt > 0 {
				h.stripe(tt.paidAt, paid("evt_1"))
			}
			h.runCancelled(tt.cancelAt)
			require.Equal(t, tt.statuses, h.statuses)
			require.Len(t, h.refunds, tt.refunds)
			if tt.refunds > 0 {
				require.Equal(t, jobs.ReasonCancelled, h.refunds[0].Reason)
				require.Equal(t, jobs.ReasonCancelled, h.failed.Reason)
			}
			h.env.AssertActivityNumberOfCalls(t, "ExpireCheckout", tt.expired)
			h.env.AssertActivityNumberOfCalls(t, "ExpireDownload", tt.cleanup)
		})
	}
}

func TestLatePaymentAfterAbandonmentIsRefunded(t *testing.T) {
	h := newHarness(t)
	h.env.OnActivity(a.ExpireCheckout, mock.Anything, mock.Anything).Return(activities.ExpireCheckoutResult{}, nil)
	h.stripe(time.Hour, jobs.StripeEvent{EventID: "evt_x", Type: jobs.EventCheckoutExpired})
	late := paid("evt_late")
	h.stripe(time.Hour, late) // delivered right behind the expiry, out of order
	st := h.run()
	require.Equal(t, jobs.StatusAbandoned, st.Status)
	require.Equal(t, jobs.PaymentRefunded, st.PaymentStatus)
	require.Equal(t, []activities.RefundInput{{JobID: input().JobID, PaymentIntentID: "pi_1", AmountCents: 50,
		Reason: "late_payment"}}, h.refunds)
	h.env.AssertActivityNumberOfCalls(t, "RecordLatePayment", 1)
	h.env.AssertActivityNumberOfCalls(t, "SubmitUpscale", 0)
}

func TestLatePaymentRefundWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	env.OnActivity(a.RecordLatePayment, mock.Anything, mock.Anything).Return(nil)
	var refunds []activities.RefundInput
	env.OnActivity(a.RefundPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefundInput) (activities.RefundResult, error) {
			refunds = append(refunds, in)
			return activities.RefundResult{RefundID: "re_1"}, nil
		})
	env.ExecuteWorkflow(LatePaymentRefund, jobs.LatePaymentInput{JobID: "j1", Payment: paid("evt_9"), RefundRetry: time.Hour})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []activities.RefundInput{{JobID: "j1", PaymentIntentID: "pi_1", AmountCents: 50, Reason: "late_payment"}}, refunds)
}

// The job record is told when to remind the customer: ReminderLead before
// the link expires, or never when the link lives shorter than that.
func TestExpiryReminderComesLeadBeforeExpiry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		lead, ttl  time.Duration
		wantRemind bool
	}{
		{"two hours before", 2 * time.Hour, 24 * time.Hour, true},
		{"no reminder configured", 0, 24 * time.Hour, false},
		{"a link shorter than the lead", 2 * time.Hour, time.Hour, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.upsampler(queued, success)
			h.stripe(time.Minute, paid("evt_1"))
			in := input()
			in.Timeouts.ReminderLead, in.Timeouts.DownloadTTL = tt.lead, tt.ttl
			h.env.ExecuteWorkflow(ImageJob, in)
			require.NoError(t, h.env.GetWorkflowError())
			var st jobs.State
			require.NoError(t, h.env.GetWorkflowResult(&st))
			require.Len(t, h.stored, 1)
			require.True(t, h.stored[0].ExpiresAt.Equal(st.DownloadExpiry))
			if tt.wantRemind {
				require.True(t, st.DownloadExpiry.Add(-tt.lead).Equal(h.stored[0].RemindAt), "remind at %s", h.stored[0].RemindAt)
			} else {
				require.True(t, h.stored[0].RemindAt.IsZero())
			}
		})
	}
}

func TestAdminDownloadUpdates(t *testing.T) {
	for _, update := range []string{jobs.UpdateResendDownload, jobs.UpdateNewDownloadToken} {
		t.Run(update, func(t *testing.T) {
			h := newHarness(t)
			h.upsampler(queued, success)
			h.stripe(time.Minute, paid("evt_1"))
			var rejected error
			var info jobs.DownloadInfo
			// Too early: the job is not delivered yet.
			h.at(30*time.Second, func() {
				h.env.UpdateWorkflow(update, "early", &testsuite.TestUpdateCallback{
					OnAccept: func() {}, OnReject: func(err error) { rejected = err }, OnComplete: func(any, error) {},
				}, jobs.DownloadRequest{})
			})
			// Twenty hours after delivery: extended by a full TTL from then.
			h.at(20*time.Hour, func() {
				h.env.UpdateWorkflow(update, "late", &testsuite.TestUpdateCallback{
					OnAccept: func() {}, OnReject: func(err error) { t.Errorf("rejected: %v", err) },
					OnComplete: func(v any, err error) {
						require.NoError(t, err)
						info = v.(jobs.DownloadInfo)
					},
				}, jobs.DownloadRequest{RequestedBy: "alice"})
			})
			st := h.run()
			require.Error(t, rejected)
			require.Equal(t, start.Add(20*time.Hour+24*time.Hour), info.ExpiresAt.UTC())
			require.Equal(t, info.ExpiresAt, st.DownloadExpiry)
			require.False(t, h.env.Now().Before(info.ExpiresAt), "the expiry timer moved")
			// The link goes out again as resend 1, with a reminder before its new expiry.
			require.Len(t, h.downloads, 1)
			d := h.downloads[0]
			require.Equal(t, 1, d.Seq)
			require.Equal(t, update == jobs.UpdateNewDownloadToken, d.NewToken)
			require.True(t, d.ExpiresAt.Equal(info.ExpiresAt))
			require.True(t, d.RemindAt.Equal(info.ExpiresAt.Add(-input().Timeouts.ReminderLead)))
		})
	}
}
