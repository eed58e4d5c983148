package chaos

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/upsamplersim"
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
		{jobs.StatusAbandoned, jobs.PaymentPaid, false}, // late payment, refund owed
		{jobs.StatusProcessing, jobs.PaymentPaid, false},
		{jobs.StatusAwaitingPayment, jobs.PaymentPending, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, settled(view(tt.status, tt.pay)), "%s/%s", tt.status, tt.pay)
	}
}

func TestSubmissionsByJob(t *testing.T) {
	hook := func(id string) string { return "http://127.0.0.1:8080/v1/webhooks/upsampler/" + id + "/s3cret" }
	got := submissionsByJob([]upsamplersim.JobInfo{
		{Webhook: hook("job-a")}, {Webhook: hook("job-b")}, {Webhook: hook("job-a")},
		{Webhook: ""}, {Webhook: "http://elsewhere/hook"}, {Webhook: "%zz"},
	})
	assert.Equal(t, map[string]int{"job-a": 2, "job-b": 1}, got)
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
