package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"hires/internal/events"
	"hires/internal/jobs"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

var testLimits = Limits{PaymentTimeout: 40 * time.Second, ProcessingTimeout: time.Minute, Slack: 30 * time.Second, Now: t0.Add(10 * time.Minute)}

// completed is a paid job delivered as it should be; the cases change it.
func completed() Observed {
	return Observed{
		Plan:  JobPlan{Index: 1, Key: "k1", Path: PathPaid, Width: 120, Height: 100, Resolution: "4x"},
		JobID: "job-1", CheckoutAt: t0, PaymentAcceptedAt: at(2 * time.Second),
		Status: jobs.StatusCompleted, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_1",
		PendingAt: at(3 * time.Second), FinishedAt: at(10 * time.Second),
		Submissions: 1, Download: &DownloadCheck{HTTPStatus: 200, Width: 480, Height: 400},
	}
}

func failedRefunded() Observed {
	o := completed()
	o.Status, o.PaymentStatus, o.FailureReason = jobs.StatusFailed, jobs.PaymentRefunded, jobs.ReasonUpsamplerFailed
	o.Download, o.StandInFails = nil, true
	o.Refunds = []Refund{{PaymentIntentID: "pi_1", IdempotencyKey: "refund:job-1"}}
	o.RefundedAt = at(12 * time.Second)
	return o
}

func lateRefunded() Observed {
	o := failedRefunded()
	o.Plan.Path = PathLate
	o.Status, o.FailureReason, o.PendingAt, o.Submissions = jobs.StatusAbandoned, "", nil, 0
	o.FinishedAt, o.PaymentAcceptedAt, o.RefundedAt = at(41*time.Second), at(42*time.Second), at(44*time.Second)
	return o
}

func neverPaid() Observed {
	o := completed()
	o.Plan.Path = PathNever
	o.Status, o.PaymentStatus, o.PaymentIntentID = jobs.StatusAbandoned, jobs.PaymentExpired, ""
	o.PaymentAcceptedAt, o.PendingAt, o.Download, o.Submissions = nil, nil, nil, 0
	o.FinishedAt = at(41 * time.Second)
	return o
}

func with(o Observed, change func(*Observed)) Observed { change(&o); return o }

func TestCheckJobs(t *testing.T) {
	tests := []struct {
		name string
		obs  Observed
		want []string // invariants broken, in order
	}{
		{"delivered", completed(), nil},
		{"failed and refunded once", failedRefunded(), nil},
		{"late payment refunded once", lateRefunded(), nil},
		{"never paid, abandoned", neverPaid(), nil},
		{"payment delayed past the window, refunded", with(failedRefunded(), func(o *Observed) {
			o.Status, o.PendingAt, o.Submissions, o.FinishedAt = jobs.StatusAbandoned, nil, 0, at(41*time.Second)
			o.PaymentAcceptedAt = at(45 * time.Second)
		}), nil},

		{"never created", Observed{Plan: JobPlan{Key: "k9", Path: PathPaid}}, []string{InvCreated}},
		{"delivered and refunded", with(completed(), func(o *Observed) { o.Refunds = []Refund{{PaymentIntentID: "pi_1"}} }), []string{InvPaid}},
		{"download gone", with(completed(), func(o *Observed) { o.Download.HTTPStatus = 410 }), []string{InvPaid}},
		{"download unreadable", with(completed(), func(o *Observed) { o.Download.Err = "png: invalid format" }), []string{InvPaid}},
		{"download of the wrong size", with(completed(), func(o *Observed) { o.Download.Width = 240 }), []string{InvPaid}},
		{"download not checked", with(completed(), func(o *Observed) { o.Download = nil }), []string{InvPaid}},
		{"completed though Upsampler failed it", with(completed(), func(o *Observed) { o.StandInFails = true }), []string{InvPaid}},
		{"completed without a submission", with(completed(), func(o *Observed) { o.Submissions = 0 }), []string{InvPaid}},
		{"failed, never refunded", with(failedRefunded(), func(o *Observed) {
			o.Refunds, o.PaymentStatus, o.RefundedAt = nil, jobs.PaymentRefundFailed, nil
		}), []string{InvPaid, InvPaid, InvDeadlines}},
		{"failed, refunded twice", with(failedRefunded(), func(o *Observed) { o.Refunds = append(o.Refunds, o.Refunds[0]) }), []string{InvPaid}},
		{"refund of another payment", with(failedRefunded(), func(o *Observed) { o.Refunds[0].PaymentIntentID = "pi_2" }), []string{InvPaid}},
		{"paid, still processing", with(completed(), func(o *Observed) {
			o.Status, o.FinishedAt, o.Download = jobs.StatusProcessing, nil, nil
		}), []string{InvPaid, InvDeadlines}},
		{"paid, payment never accepted", with(completed(), func(o *Observed) { o.PaymentAcceptedAt = nil }), []string{InvPaid}},
		{"late payment refunded twice", with(lateRefunded(), func(o *Observed) { o.Refunds = append(o.Refunds, o.Refunds[0]) }), []string{InvLate}},
		{"late payment processed", with(lateRefunded(), func(o *Observed) { o.Submissions = 1 }), []string{InvUnpaid}},
		{"late payment delivered", with(lateRefunded(), func(o *Observed) {
			o.Status, o.PaymentStatus, o.Refunds = jobs.StatusCompleted, jobs.PaymentPaid, nil
		}), []string{InvLate, InvLate, InvLate}},
		{"never paid, processed", with(neverPaid(), func(o *Observed) { o.Submissions = 1 }), []string{InvUnpaid}},
		{"never paid, completed", with(neverPaid(), func(o *Observed) { o.Status = jobs.StatusCompleted }), []string{InvUnpaid}},
		{"never paid, refunded", with(neverPaid(), func(o *Observed) {
			o.Refunds = []Refund{{PaymentIntentID: ""}}
		}), []string{InvUnpaid}},
		{"never paid, marked paid", with(neverPaid(), func(o *Observed) { o.PaymentStatus = jobs.PaymentPaid }), []string{InvUnpaid}},

		{"still awaiting payment past the window", with(neverPaid(), func(o *Observed) {
			o.Status, o.FinishedAt = jobs.StatusAwaitingPayment, nil
		}), []string{InvUnpaid, InvDeadlines}},
		{"refund still owed past its deadline", with(lateRefunded(), func(o *Observed) {
			o.Refunds, o.PaymentStatus, o.RefundedAt = nil, jobs.PaymentPaid, nil
		}), []string{InvLate, InvLate, InvDeadlines}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, _ := CheckJobs([]Observed{tt.obs}, testLimits)
			assert.Equal(t, tt.want, invariantsOf(vs))
		})
	}
}

// A job that got there after its deadline is late, not stuck: counted.
func TestCheckJobsCountsLateSteps(t *testing.T) {
	tests := []struct {
		name  string
		obs   Observed
		worst time.Duration
	}{
		{"abandoned after the window", with(neverPaid(), func(o *Observed) { o.FinishedAt = at(2 * time.Minute) }), 50 * time.Second},
		{"finished after the processing deadline", with(completed(), func(o *Observed) { o.FinishedAt = at(5 * time.Minute) }), 207 * time.Second},
		{"refunded long after failing", with(failedRefunded(), func(o *Observed) { o.RefundedAt = at(3 * time.Minute) }), 140 * time.Second},
		{"late payment refunded long after it came", with(lateRefunded(), func(o *Observed) { o.RefundedAt = at(4 * time.Minute) }), 168 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, late := CheckJobs([]Observed{tt.obs}, testLimits)
			assert.Empty(t, vs)
			assert.Equal(t, LateStats{Steps: 1, Worst: tt.worst}, late)
		})
	}
	_, late := CheckJobs([]Observed{completed(), failedRefunded(), lateRefunded(), neverPaid()}, testLimits)
	assert.Equal(t, LateStats{}, late, "all on time")
}

// A job on its way is not stuck before its deadline.
func TestCheckJobsBeforeTheDeadline(t *testing.T) {
	o := with(completed(), func(o *Observed) { o.Status, o.FinishedAt, o.Download = jobs.StatusProcessing, nil, nil })
	lim := testLimits
	lim.Now = t0.Add(30 * time.Second)
	vs, _ := CheckJobs([]Observed{o}, lim)
	assert.Equal(t, []string{InvPaid}, invariantsOf(vs), "unsettled, but not past a deadline")
	lim.Now = t0.Add(10 * time.Minute)
	vs, _ = CheckJobs([]Observed{o}, lim)
	assert.Equal(t, []string{InvPaid, InvDeadlines}, invariantsOf(vs), "stuck once past it")
}

func invariantsOf(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Invariant)
	}
	return out
}

func TestCheckEmails(t *testing.T) {
	mail := func(job, kind string, admin bool, id string) Mail {
		return Mail{JobID: job, Kind: kind, Admin: admin, MessageID: id}
	}
	full := []Mail{
		mail("job-1", jobs.EmailPaymentReceived, false, "a"), mail("job-1", jobs.EmailPaymentReceived, true, "b"),
		mail("job-1", jobs.EmailImageReady, false, "c"), mail("job-1", jobs.EmailImageReady, true, "d"),
	}
	tests := []struct {
		name       string
		mails      []Mail
		obs        Observed
		want       []string
		wantResent int
	}{
		{"one of each", full, completed(), nil, 0},
		{"the same message twice", append(full, full[2]), completed(), nil, 1},
		{"two different image-ready emails", append(full, mail("job-1", jobs.EmailImageReady, false, "e")), completed(), []string{InvEmails}, 0},
		{"two different admin copies", append(full, mail("job-1", jobs.EmailImageReady, true, "e")), completed(), []string{InvEmails}, 0},
		{"image-ready missing", full[:2], completed(), []string{InvNotified}, 0},
		{"refund email missing", full[:2], failedRefunded(), []string{InvNotified}, 0},
		{"payment email to someone who never paid", []Mail{mail("job-1", jobs.EmailPaymentReceived, false, "a")}, neverPaid(), []string{InvEmails}, 0},
		{"late payer told of the refund only", []Mail{mail("job-1", jobs.EmailFailedRefunded, false, "a")}, lateRefunded(), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, st := CheckEmails(tt.mails, []Observed{tt.obs})
			assert.Equal(t, tt.want, invariantsOf(vs))
			assert.Equal(t, tt.wantResent, st.Resent)
			assert.Equal(t, len(tt.mails), st.Messages)
		})
	}
}

func TestCheckEvents(t *testing.T) {
	ev := func(job, typ string) Delivery {
		return Delivery{ID: events.NewID(job, events.Type(typ), 0), JobID: job, Type: typ}
	}
	full := []Delivery{ev("job-1", jobs.HookJobCreated), ev("job-1", jobs.HookPaymentCompleted), ev("job-1", jobs.HookJobCompleted)}
	tests := []struct {
		name      string
		ds        []Delivery
		obs       Observed
		want      []string
		wantRedel int
	}{
		{"one of each", full, completed(), nil, 0},
		{"redelivered", append(full, full[0], full[0]), completed(), nil, 2},
		{"a second ID for the same event", append(full, Delivery{ID: "evt_other", JobID: "job-1", Type: jobs.HookJobCompleted}), completed(),
			[]string{InvEvents, InvEvents}, 0},
		{"completion not told", full[:2], completed(), []string{InvNotified}, 0},
		{"failure told", []Delivery{full[0], full[1], ev("job-1", jobs.HookJobFailed)}, failedRefunded(), nil, 0},
		{"payment event for a job never paid", []Delivery{full[0], full[1]}, neverPaid(), []string{InvEvents}, 0},
		{"creation not told", nil, neverPaid(), []string{InvNotified}, 0},
		{"no checkout, no creation event", []Delivery{ev("job-1", jobs.HookJobFailed)}, with(neverPaid(), func(o *Observed) {
			o.Status, o.FailureReason = jobs.StatusFailed, jobs.ReasonCheckoutFailed
		}), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, st := CheckEvents(tt.ds, []Observed{tt.obs})
			assert.Equal(t, tt.want, invariantsOf(vs))
			assert.Equal(t, tt.wantRedel, st.Redelivered)
		})
	}
}

func TestViolationString(t *testing.T) {
	v := Violation{InvPaid, "job-1", "completed and also refunded 1 times"}
	assert.True(t, strings.HasPrefix(v.String(), InvPaid+": job job-1"))
	assert.Equal(t, InvCreated+": x", Violation{InvCreated, "", "x"}.String())
}
