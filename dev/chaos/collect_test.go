package chaos

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/durationpb"

	"hires/api"
	"hires/dev/stripetest"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
)

func TestSettled(t *testing.T) {
	view := func(s jobs.Status, ps jobs.PaymentStatus) api.AdminJobView {
		var v api.AdminJobView
		v.Status, v.PaymentStatus = s, ps
		return v
	}
	tests := []struct {
		status jobs.Status
		pay    jobs.PaymentStatus
		want   bool
	}{
		{jobs.StatusCompleted, jobs.PaymentPaid, true},
		{jobs.StatusFailed, jobs.PaymentRefunded, true},
		{jobs.StatusAbandoned, jobs.PaymentExpired, true},
		{jobs.StatusAbandoned, jobs.PaymentRefunded, true},
		{jobs.StatusFailed, jobs.PaymentPending, true}, // checkout failed, nothing paid
		{jobs.StatusFailed, jobs.PaymentPaid, false},   // refund owed
		{jobs.StatusFailed, jobs.PaymentRefundFailed, false},
		{jobs.StatusFailed, jobs.PaymentRefundNeedsAttention, false}, // an admin must act
		{jobs.StatusAwaitingPayment, jobs.PaymentProcessing, false},  // a bank debit
		{jobs.StatusAbandoned, jobs.PaymentPaid, false},              // late payment, refund owed
		{jobs.StatusProcessing, jobs.PaymentPaid, false},
		{jobs.StatusAwaitingPayment, jobs.PaymentPending, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, settled(view(tt.status, tt.pay)), "%s/%s", tt.status, tt.pay)
	}
}

func TestSendsByJob(t *testing.T) {
	hook := func(id, s string) string { return "http://127.0.0.1:8080/v1/webhooks/upsampler/" + id + "/s3cret" + s }
	t1 := t0.Add(time.Second)
	got := sendsByJob([]upsamplersim.JobInfo{
		{ID: "u1", Webhook: hook("job-a", "?s=1"), CreatedAt: t0, AnswerLost: "502"},
		{ID: "u2", Webhook: hook("job-b", "?s=1")},
		{ID: "u3", Webhook: hook("job-a", "?s=2"), CreatedAt: t1, WebhookDeliveredAt: t1},
		{ID: "u4", Webhook: hook("job-c", "")},
		{Webhook: ""}, {Webhook: "http://elsewhere/hook"}, {Webhook: "%zz"},
	})
	assert.Equal(t, map[string][]Send{
		"job-a": {{N: 1, UpsamplerJobID: "u1", CreatedAt: t0, AnswerLost: "502"}, {N: 2, UpsamplerJobID: "u3", CreatedAt: t1, CallbackAt: t1}},
		"job-b": {{N: 1, UpsamplerJobID: "u2"}},
		"job-c": {{N: 0, UpsamplerJobID: "u4"}},
	}, got)
}

func TestStripeCallsRead(t *testing.T) {
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	refund := func(pi, job string, at time.Duration, status int, forwarded bool) stripetest.Call {
		return stripetest.Call{Method: "POST", Path: "/v1/refunds", Form: form("payment_intent", pi, "metadata[job_id]", job),
			Status: status, Forwarded: forwarded, At: t0.Add(at)}
	}
	calls := []stripetest.Call{
		refund("pi_1", "job-1", 3*time.Second, 400, false), // refused by the double
		refund("pi_1", "job-1", 5*time.Second, 200, true),
		refund("pi_1", "job-1", 6*time.Second, 200, false), // a replay
		refund("pi_2", "job-2", 2*time.Second, 200, true),
		{Method: "POST", Path: "/v1/checkout/sessions/cs_1/expire", Status: 200, Forwarded: true},
		{Method: "POST", Path: "/v1/checkout/sessions/cs_2/expire", Status: 400},
		{Method: "GET", Path: "/v1/checkout/sessions/cs_3", Status: 200, Forwarded: true},
	}
	assert.Equal(t, map[string][]Refund{"job-1": {{PaymentIntentID: "pi_1"}}, "job-2": {{PaymentIntentID: "pi_2"}}}, refundsByJob(calls))
	assert.Equal(t, map[string]time.Time{"pi_1": t0.Add(5 * time.Second), "pi_2": t0.Add(2 * time.Second)}, refundsMadeAt(calls))
	assert.Equal(t, map[string]bool{"cs_1": true}, sessionsClosed(calls))
}

func TestOutcomeOf(t *testing.T) {
	assert.Equal(t, "signalled", outcomeOf(`{"status":"signalled"}`))
	assert.Equal(t, "unknown", outcomeOf(`{"error":{}}`))
	assert.Equal(t, "unknown", outcomeOf(`not json`))
}

func TestBackoff(t *testing.T) {
	assert.Equal(t, 250*time.Millisecond, backoff(0))
	assert.Equal(t, time.Second, backoff(2))
	assert.Equal(t, 4*time.Second, backoff(4))
	assert.Equal(t, 4*time.Second, backoff(50), "capped")
}

func TestRetryCreation(t *testing.T) {
	for status, retry := range map[int]bool{
		0: true, 500: true, 502: true, 503: true, 429: true,
		409: true, // idempotency_key_in_use: an attempt cut off by the API's restart holds the key until its lease ends
		400: false, 401: false, 404: false, 422: false,
	} {
		assert.Equal(t, retry, retryCreation(status), "HTTP %d", status)
	}
}

func TestReceiverRefusesASeededShare(t *testing.T) {
	for _, rate := range []float64{0, 0.3, 1} {
		r := &receiver{seed: 5, refuseRate: rate}
		refused := 0
		for i := range 2000 {
			if r.refuses(fmt.Sprintf("evt_%d", i)) {
				refused++
			}
		}
		assert.InDelta(t, rate, float64(refused)/2000, 0.04, "rate %v", rate)
	}
	a, b := &receiver{seed: 5, refuseRate: 0.5}, &receiver{seed: 5, refuseRate: 0.5}
	assert.Equal(t, a.refuses("evt_x"), b.refuses("evt_x"), "the same seed refuses the same events")
}

func TestReportPrint(t *testing.T) {
	rep := &Report{Jobs: 2, Seed: 7, Dir: "/tmp/run", Observed: []Observed{completed(), lateRefunded()},
		Faults: []FaultRecord{{Fault: Fault{Kind: FaultPostgres}, Started: 3 * time.Second, Took: 4 * time.Second}}}
	var out bytes.Buffer
	rep.Print(&out)
	assert.True(t, rep.Passed())
	assert.Contains(t, out.String(), "PASS: every invariant held")
	assert.Contains(t, out.String(), "PostgreSQL restart")

	rep.Violations = []Violation{{InvPaid, "job-1", "completed and also refunded 1 times"}}
	out.Reset()
	rep.Print(&out)
	assert.False(t, rep.Passed())
	assert.Contains(t, out.String(), "FAIL  "+InvPaid+": 1 violations")
	assert.Contains(t, out.String(), "- job job-1 (completed and also refunded 1 times)")
	assert.True(t, strings.HasSuffix(strings.TrimSpace(out.String()), "(logs in /tmp/run)"))
}

// scanSubmissions reads, from a job's history, the resends that followed
// a callback of the submission before, and the lost-answer waits.
func TestScanSubmissions(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	payloads := func(v any) *commonpb.Payloads {
		p, err := dc.ToPayloads(v)
		require.NoError(t, err)
		return p
	}
	signal := func(name string, cb jobs.UpsamplerCallback) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{
				WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{SignalName: name, Input: payloads(cb)}}}
	}
	callback := func(n int) *historypb.HistoryEvent {
		return signal(jobs.SignalUpsamplerCallback, jobs.UpsamplerCallback{UpsamplerJobID: fmt.Sprintf("u%d", n), Status: "SUCCESS", Submission: n})
	}
	schedule := func(activity string, n int) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{
				ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
					ActivityType: &commonpb.ActivityType{Name: activity}, Input: payloads(struct {
						JobID      string
						Submission int
					}{"job-1", n})}}}
	}
	timer := func(summary string, d time.Duration) *historypb.HistoryEvent {
		p, err := dc.ToPayload(summary)
		require.NoError(t, err)
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_TIMER_STARTED, UserMetadata: &sdkpb.UserMetadata{Summary: p},
			Attributes: &historypb.HistoryEvent_TimerStartedEventAttributes{
				TimerStartedEventAttributes: &historypb.TimerStartedEventAttributes{StartToFireTimeout: durationpb.New(d)}}}
	}
	tests := []struct {
		name      string
		events    []*historypb.HistoryEvent
		wantEarly []int
		wantWaits []time.Duration
	}{
		{"recovered by the callback", []*historypb.HistoryEvent{timer(lostWaitSummary, 4*time.Second), callback(1), schedule("CheckUpscale", 0)},
			nil, []time.Duration{4 * time.Second}},
		{"sent again after the wait, its callback later", []*historypb.HistoryEvent{
			timer(lostWaitSummary, 4*time.Second), timer("poll Upsampler", 2*time.Second), schedule("SubmitUpscale", 2), callback(1), callback(2)},
			nil, []time.Duration{4 * time.Second}},
		{"sent again though the callback had come", []*historypb.HistoryEvent{
			timer(lostWaitSummary, 4*time.Second), callback(1), schedule("SubmitUpscale", 2)}, []int{2}, []time.Duration{4 * time.Second}},
		{"a callback with no job ID names nothing", []*historypb.HistoryEvent{
			signal(jobs.SignalUpsamplerCallback, jobs.UpsamplerCallback{Submission: 1}), schedule("SubmitUpscale", 2)}, nil, nil},
		{"another signal", []*historypb.HistoryEvent{
			signal(jobs.SignalStripeEvent, jobs.UpsamplerCallback{UpsamplerJobID: "u1", Submission: 1}), schedule("SubmitUpscale", 2)}, nil, nil},
		{"the callback of an older submission", []*historypb.HistoryEvent{callback(1), schedule("SubmitUpscale", 3)}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			early, waits := scanSubmissions(tt.events)
			assert.Equal(t, tt.wantEarly, early)
			assert.Equal(t, tt.wantWaits, waits)
		})
	}
}
