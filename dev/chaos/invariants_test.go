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

var testBounds = HistoryBounds{Job: 500, OwedRefund: 200, LatePayment: 250}

var testLimits = Limits{PaymentTimeout: 40 * time.Second, ProcessingTimeout: time.Minute, LostAnswerWait: 6 * time.Second,
	Slack: 30 * time.Second, Histories: testBounds, Now: t0.Add(10 * time.Minute)}

// completed is a paid job delivered as it should be; the cases change it.
func completed() Observed {
	return Observed{
		Plan:  JobPlan{Index: 1, Key: "k1", Path: PathPaid, Width: 120, Height: 100, Resolution: "4x"},
		JobID: "job-1", CheckoutAt: t0, PaymentAcceptedAt: at(2 * time.Second),
		Status: jobs.StatusCompleted, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_1", PI: "pi_1", AmountCents: 384,
		PendingAt: at(3 * time.Second), FinishedAt: at(10 * time.Second), UpsamplerJobID: "u1",
		Sends:       []Send{{N: 1, UpsamplerJobID: "u1", CreatedAt: t0.Add(3 * time.Second)}},
		Submissions: 1, Download: &DownloadCheck{HTTPStatus: 200, Width: 480, Height: 400},
		Histories: []History{{WorkflowID: "job:job-1", Kind: HistoryJob, Length: 80}},
	}
}

// refundedAt makes o refunded once through the API at d.
func refundedAt(o *Observed, d time.Duration) {
	o.Refunds = []Refund{{PaymentIntentID: o.PI, IdempotencyKey: "refund:" + o.JobID}}
	o.StripeRefunds, o.AmountRefunded, o.RefundCalls = 1, o.AmountCents, 1
	o.PaymentStatus, o.RefundedAt, o.ConfirmedAt = jobs.PaymentRefunded, at(d), at(d)
}

func failedRefunded() Observed {
	o := completed()
	o.Status, o.FailureReason = jobs.StatusFailed, jobs.ReasonUpsamplerFailed
	o.Download, o.StandInFails = nil, true
	refundedAt(&o, 12*time.Second)
	return o
}

func lateRefunded() Observed {
	o := failedRefunded()
	o.Plan.Path = PathLate
	o.Status, o.FailureReason, o.PendingAt, o.Submissions, o.Sends, o.UpsamplerJobID = jobs.StatusAbandoned, "", nil, 0, nil, ""
	o.FinishedAt, o.PaymentAcceptedAt = at(41*time.Second), at(42*time.Second)
	refundedAt(&o, 44*time.Second)
	return o
}

func neverPaid() Observed {
	o := completed()
	o.Plan.Path = PathNever
	o.Status, o.PaymentStatus, o.PaymentIntentID, o.PI = jobs.StatusAbandoned, jobs.PaymentExpired, "", ""
	o.PaymentAcceptedAt, o.PendingAt, o.Download, o.Submissions, o.Sends, o.UpsamplerJobID = nil, nil, nil, 0, nil, ""
	o.FinishedAt = at(41 * time.Second)
	return o
}

// refusedThen is a paid job Upsampler failed whose refunds Stripe refused
// and on which act was done at 13s.
func refusedThen(act Act) Observed {
	o := failedRefunded()
	o.Plan.Act, o.ActedAt, o.ActStatus = act, at(13*time.Second), "failed/refund_failed"
	o.RefundCalls = 2 // the refusal, then the refund
	return o
}

func byHand() Observed {
	o := refusedThen(ActRefundByHand)
	o.Refunds, o.StripeRefunds, o.RefundCalls = nil, 0, 1
	o.HandRefundAt, o.ConfirmedAt, o.RefundedAt = at(13*time.Second), at(13*time.Second), at(14*time.Second)
	return o
}

func settledByAnAdmin() Observed {
	o := refusedThen(ActRefundAttention)
	o.Refunds, o.StripeRefunds, o.AmountRefunded, o.ConfirmedAt, o.RefundCalls = nil, 0, 0, nil, 7
	o.NeedsAttention, o.SettledByAdmin, o.RefundedAt = true, true, at(2*time.Minute)
	o.ActedAt = at(2 * time.Minute)
	return o
}

func stoppedProcessing(act Act, reason string) Observed {
	o := failedRefunded()
	o.Plan.Act, o.ActedAt, o.ActStatus = act, at(8*time.Second), "processing/paid"
	o.FailureReason, o.StandInFails = reason, false
	return o
}

func stoppedAwaiting(act Act) Observed {
	o := neverPaid()
	o.Plan.Path, o.Plan.Act, o.ActedAt, o.SessionClosed = PathParked, act, at(20*time.Second), true
	if act == ActTerminateAwaiting {
		o.Status, o.FailureReason, o.PaymentStatus, o.FinishedAt = jobs.StatusFailed, jobs.ReasonTerminated, jobs.PaymentPending, at(55*time.Second)
	}
	return o
}

func delayedPaid() Observed {
	o := completed()
	o.Plan.Path = PathDelayed
	o.PaymentAcceptedAt, o.PendingAt = at(20*time.Second), at(21*time.Second)
	o.ProcessingNoted = true
	return o
}

func delayedLate() Observed {
	o := lateRefunded()
	o.Plan.Path = PathDelayedLate
	o.FinishedAt, o.PaymentAcceptedAt = at(70*time.Second), at(72*time.Second)
	refundedAt(&o, 75*time.Second)
	return o
}

func delayedFailed() Observed {
	o := neverPaid()
	o.Plan.Path, o.PI, o.PaymentStatus, o.FinishedAt = PathDelayedFailed, "pi_9", jobs.PaymentFailed, at(30*time.Second)
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
		{"parked, abandoned", with(neverPaid(), func(o *Observed) { o.Plan.Path = PathParked }), nil},
		{"payment delayed past the window, refunded", with(failedRefunded(), func(o *Observed) {
			o.Status, o.PendingAt, o.Submissions, o.Sends, o.FinishedAt = jobs.StatusAbandoned, nil, 0, nil, at(41*time.Second)
			o.PaymentAcceptedAt = at(45 * time.Second)
		}), nil},

		{"never created", Observed{Plan: JobPlan{Key: "k9", Path: PathPaid}}, []string{InvCreated}},
		{"delivered and refunded", with(completed(), func(o *Observed) { o.StripeRefunds, o.AmountRefunded = 1, 384 }), []string{InvPaid}},
		{"delivered and refunded by hand", with(completed(), func(o *Observed) { o.HandRefundAt = at(time.Minute) }), []string{InvPaid}},
		{"download gone", with(completed(), func(o *Observed) { o.Download.HTTPStatus = 410 }), []string{InvPaid}},
		{"download unreadable", with(completed(), func(o *Observed) { o.Download.Err = "png: invalid format" }), []string{InvPaid}},
		{"download of the wrong size", with(completed(), func(o *Observed) { o.Download.Width = 240 }), []string{InvPaid}},
		{"download not checked", with(completed(), func(o *Observed) { o.Download = nil }), []string{InvPaid}},
		{"completed though Upsampler failed it", with(completed(), func(o *Observed) { o.StandInFails = true }), []string{InvPaid}},
		{"completed without a submission", with(completed(), func(o *Observed) { o.Submissions, o.Sends = 0, nil }), []string{InvPaid}},
		{"failed, never refunded", with(failedRefunded(), func(o *Observed) {
			o.Refunds, o.StripeRefunds, o.AmountRefunded, o.ConfirmedAt = nil, 0, 0, nil
			o.PaymentStatus, o.RefundedAt = jobs.PaymentRefundFailed, nil
		}), []string{InvPaid, InvPaid, InvPaid, InvDeadlines}},
		{"failed, refunded twice", with(failedRefunded(), func(o *Observed) {
			o.Refunds, o.StripeRefunds = append(o.Refunds, o.Refunds[0]), 2
		}), []string{InvPaid}},
		{"failed, refunded through the API and by hand", with(failedRefunded(), func(o *Observed) { o.HandRefundAt = at(time.Minute) }),
			[]string{InvPaid}},
		{"failed, refunded in part", with(failedRefunded(), func(o *Observed) { o.AmountRefunded = 100 }), []string{InvPaid}},
		{"a refund names another job", with(failedRefunded(), func(o *Observed) { o.Refunds = nil }), []string{InvPaid}},
		{"refund of another payment", with(failedRefunded(), func(o *Observed) { o.Refunds[0].PaymentIntentID = "pi_2" }), []string{InvPaid}},
		{"paid, still processing", with(completed(), func(o *Observed) {
			o.Status, o.FinishedAt, o.Download = jobs.StatusProcessing, nil, nil
		}), []string{InvPaid, InvDeadlines}},
		{"paid, payment never accepted", with(completed(), func(o *Observed) { o.PaymentAcceptedAt = nil }), []string{InvPaid}},
		{"late payment refunded twice", with(lateRefunded(), func(o *Observed) {
			o.Refunds, o.StripeRefunds = append(o.Refunds, o.Refunds[0]), 2
		}), []string{InvLate}},
		{"late payment processed", with(lateRefunded(), func(o *Observed) { o.Submissions = 1 }), []string{InvUnpaid}},
		{"late payment delivered", with(lateRefunded(), func(o *Observed) {
			o.Status, o.PaymentStatus, o.Refunds, o.StripeRefunds, o.AmountRefunded = jobs.StatusCompleted, jobs.PaymentPaid, nil, 0, 0
		}), []string{InvLate, InvLate, InvLate, InvLate}},
		{"late payment never accepted", with(lateRefunded(), func(o *Observed) { o.PaymentAcceptedAt = nil }), []string{InvLate}},
		{"never paid, processed", with(neverPaid(), func(o *Observed) { o.Submissions = 1 }), []string{InvUnpaid}},
		{"never paid, completed", with(neverPaid(), func(o *Observed) { o.Status = jobs.StatusCompleted }), []string{InvUnpaid}},
		{"never paid, refunded", with(neverPaid(), func(o *Observed) {
			o.Refunds = []Refund{{PaymentIntentID: ""}}
		}), []string{InvUnpaid}},
		{"never paid, a refund asked for", with(neverPaid(), func(o *Observed) { o.RefundCalls = 1 }), []string{InvUnpaid}},
		{"never paid, marked paid", with(neverPaid(), func(o *Observed) { o.PaymentStatus = jobs.PaymentPaid }), []string{InvUnpaid}},

		// Delayed payments, on both sides of the window.
		{"bank debit settled in time, delivered", delayedPaid(), nil},
		{"bank debit settled in time, abandoned", with(delayedPaid(), func(o *Observed) {
			o.Status, o.PendingAt, o.Download, o.Submissions, o.Sends = jobs.StatusAbandoned, nil, nil, 0, nil
			refundedAt(o, 80*time.Second)
		}), []string{InvDelayed}},
		{"bank debit settled in time, never accepted", with(delayedPaid(), func(o *Observed) { o.PaymentAcceptedAt = nil }),
			[]string{InvDelayed}},
		{"bank debit settled late, refunded once", delayedLate(), nil},
		{"bank debit settled late, delivered", with(delayedLate(), func(o *Observed) {
			o.Status, o.PaymentStatus, o.Refunds, o.StripeRefunds, o.AmountRefunded = jobs.StatusCompleted, jobs.PaymentPaid, nil, 0, 0
		}), []string{InvDelayed, InvDelayed, InvDelayed, InvDelayed}},
		{"bank debit settled late, kept", with(delayedLate(), func(o *Observed) {
			o.Refunds, o.StripeRefunds, o.AmountRefunded, o.PaymentStatus, o.RefundedAt, o.ConfirmedAt = nil, 0, 0, jobs.PaymentPaid, nil, nil
		}), []string{InvDelayed, InvDelayed, InvDelayed, InvDeadlines}},
		{"bank debit refused, abandoned", delayedFailed(), nil},
		{"bank debit refused, payment expired", with(delayedFailed(), func(o *Observed) { o.PaymentStatus = jobs.PaymentExpired }),
			[]string{InvDelayed}},
		{"bank debit refused, refund asked for", with(delayedFailed(), func(o *Observed) { o.RefundCalls = 1 }), []string{InvDelayed}},

		// Refused refunds.
		{"refused, then refunded by hand", byHand(), nil},
		{"refused, by hand, and also through the API", with(byHand(), func(o *Observed) {
			o.Refunds, o.StripeRefunds = []Refund{{PaymentIntentID: "pi_1"}}, 1
		}), []string{InvPaid}},
		{"refused, by hand, not recorded", with(byHand(), func(o *Observed) { o.PaymentStatus = jobs.PaymentRefundFailed }),
			[]string{InvPaid}},
		{"refused, settled by an admin", settledByAnAdmin(), nil},
		{"refused, settled without needing attention", with(settledByAnAdmin(), func(o *Observed) { o.NeedsAttention = false }),
			[]string{InvPaid}},
		{"refused, settled, and refunded at Stripe too", with(settledByAnAdmin(), func(o *Observed) {
			o.StripeRefunds, o.AmountRefunded = 1, 384
		}), []string{InvPaid}},
		{"refused, still needing attention", with(settledByAnAdmin(), func(o *Observed) {
			o.SettledByAdmin, o.PaymentStatus, o.RefundedAt = false, jobs.PaymentRefundNeedsAttention, nil
		}), []string{InvPaid, InvPaid, InvDeadlines}},
		{"refused, terminated, refunded once by the sweep", refusedThen(ActTerminateRefunding), nil},
		{"refused, cancelled, refunded once", refusedThen(ActCancelRefunding), nil},

		// Terminations and cancellations.
		{"terminated while processing, refunded", stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated), nil},
		{"cancelled while processing, refunded", stoppedProcessing(ActCancelProcessing, jobs.ReasonCancelled), nil},
		{"terminated while processing, wrong reason", stoppedProcessing(ActTerminateProcessing, jobs.ReasonUpsamplerFailed),
			[]string{InvStopped}},
		{"terminated while processing, never refunded", with(stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated), func(o *Observed) {
			o.Refunds, o.StripeRefunds, o.AmountRefunded, o.PaymentStatus, o.RefundedAt, o.ConfirmedAt = nil, 0, 0, jobs.PaymentPaid, nil, nil
		}), []string{InvPaid, InvPaid, InvPaid, InvDeadlines}},
		{"terminated while processing, yet completed after", with(completed(), func(o *Observed) {
			o.Plan.Act, o.ActedAt = ActTerminateProcessing, at(8*time.Second)
		}), []string{InvStopped}},
		{"terminated just after delivery", with(completed(), func(o *Observed) {
			o.Plan.Act, o.ActedAt = ActTerminateProcessing, at(11*time.Second)
		}), nil},
		{"cancelled just after delivery: the file goes", with(completed(), func(o *Observed) {
			o.Plan.Act, o.ActedAt, o.Download = ActCancelProcessing, at(11*time.Second), &DownloadCheck{HTTPStatus: 410}
		}), nil},
		{"terminated while awaiting payment", stoppedAwaiting(ActTerminateAwaiting), nil},
		{"cancelled while awaiting payment", stoppedAwaiting(ActCancelAwaiting), nil},
		{"terminated while awaiting, session left open", with(stoppedAwaiting(ActTerminateAwaiting), func(o *Observed) { o.SessionClosed = false }),
			[]string{InvStopped}},
		{"cancelled while awaiting, session left open", with(stoppedAwaiting(ActCancelAwaiting), func(o *Observed) { o.SessionClosed = false }),
			[]string{InvStopped}},
		{"terminated while awaiting, never settled", with(stoppedAwaiting(ActTerminateAwaiting), func(o *Observed) {
			o.Status, o.FailureReason, o.FinishedAt = jobs.StatusAwaitingPayment, "", nil
		}), []string{InvStopped, InvDeadlines}},
		{"cancel missed: an ordinary parked job", with(neverPaid(), func(o *Observed) {
			o.Plan.Path, o.Plan.Act, o.ActMissed = PathParked, ActCancelAwaiting, "not awaiting payment"
		}), nil},

		// Refund calls after the refund.
		{"a refund asked for after the refund", with(failedRefunded(), func(o *Observed) { o.RefundCallsAfter = 1 }), []string{InvRefundCalls}},
		{"a refund asked for after the hand refund", with(byHand(), func(o *Observed) { o.RefundCallsAfter = 2 }), []string{InvRefundCalls}},
		{"calls before the refund are fine", with(failedRefunded(), func(o *Observed) { o.RefundCalls = 4 }), nil},

		// Submissions.
		{"lost answer recovered by its callback", with(completed(), func(o *Observed) { o.Sends[0].AnswerLost = "502" }), nil},
		{"sent again after the wait", with(completed(), func(o *Observed) {
			o.Sends = append(o.Sends, Send{N: 2, UpsamplerJobID: "u2", CreatedAt: t0.Add(9 * time.Second)})
			o.Sends[0].AnswerLost, o.UpsamplerJobID, o.Submissions = "dropped", "u2", 2
		}), nil},
		{"sent again before the wait", with(completed(), func(o *Observed) {
			o.Sends = append(o.Sends, Send{N: 2, UpsamplerJobID: "u2", CreatedAt: t0.Add(5 * time.Second)})
			o.Submissions = 2
		}), []string{InvSubmissions}},
		{"sent again after the callback came", with(completed(), func(o *Observed) {
			o.Sends = append(o.Sends, Send{N: 2, UpsamplerJobID: "u2", CreatedAt: t0.Add(10 * time.Second)})
			o.Submissions, o.ResentEarly = 2, []int{2}
		}), []string{InvSubmissions}},
		{"one submission number twice", with(completed(), func(o *Observed) {
			o.Sends = append(o.Sends, Send{N: 1, UpsamplerJobID: "u2", CreatedAt: t0.Add(4 * time.Second)})
			o.Submissions = 2
		}), []string{InvSubmissions}},
		{"an unnumbered submission", with(completed(), func(o *Observed) { o.Sends[0].N = 0 }), []string{InvSubmissions}},

		// Histories.
		{"a long history within its bound", with(failedRefunded(), func(o *Observed) {
			o.Histories = append(o.Histories, History{WorkflowID: "owed-refund:job-1", Kind: HistoryOwedRefund, Length: 200})
		}), nil},
		{"a job's history over its bound", with(completed(), func(o *Observed) { o.Histories[0].Length = 501 }), []string{InvHistory}},
		{"an owed refund's history over its bound", with(failedRefunded(), func(o *Observed) {
			o.Histories = append(o.Histories, History{WorkflowID: "owed-refund:job-1", Kind: HistoryOwedRefund, Length: 201})
		}), []string{InvHistory}},
		{"a late payment's history over its bound", with(lateRefunded(), func(o *Observed) {
			o.Histories = append(o.Histories, History{WorkflowID: "late-payment:job-1", Kind: HistoryLatePayment, Length: 251})
		}), []string{InvHistory}},

		{"still awaiting payment past the window", with(neverPaid(), func(o *Observed) {
			o.Status, o.FinishedAt = jobs.StatusAwaitingPayment, nil
		}), []string{InvUnpaid, InvDeadlines}},
		{"refund still owed past its deadline", with(lateRefunded(), func(o *Observed) {
			o.Refunds, o.StripeRefunds, o.AmountRefunded, o.PaymentStatus, o.RefundedAt, o.ConfirmedAt = nil, 0, 0, jobs.PaymentPaid, nil, nil
		}), []string{InvLate, InvLate, InvLate, InvDeadlines}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, _ := CheckJobs([]Observed{tt.obs}, testLimits)
			assert.Equal(t, tt.want, invariantsOf(vs), "%v", vs)
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

func TestNewHistoryBounds(t *testing.T) {
	in := HistoryInputs{Copies: 3, CallbackCopies: 2, WebhookRetries: 2, Faults: 7, Lossy: true}
	b := NewHistoryBounds(DefaultSettings, in)
	assert.Equal(t, int64(60), b.Polls, "2m / 2s")
	assert.Equal(t, int64(30), b.Resends, "2m / 4s")
	assert.Equal(t, int64(7), b.RefundAttempts, "90s / 15s + 1")
	assert.Equal(t, int64(4*3*2+31*2*3), b.Signals, "Stripe events and callbacks")
	assert.Equal(t, int64(7), b.Faults)
	assert.Equal(t, eventsFixed+60*eventsPerPoll+30*eventsPerResend+7*eventsPerRefundAttempt+b.Signals*eventsPerSignal+7*eventsPerFault, b.Job)
	assert.Equal(t, int64(eventsOwedRefundFixed+7*eventsPerRefundAttempt+12*eventsPerSignal+7*eventsPerFault), b.OwedRefund)
	assert.Equal(t, int64(eventsLatePaymentFixed+7*eventsPerRefundAttempt+24*eventsPerSignal+7*eventsPerFault), b.LatePayment)
	assert.Equal(t, b.Job, b.For(HistoryJob))
	assert.Equal(t, b.OwedRefund, b.For(HistoryOwedRefund))
	assert.Equal(t, b.LatePayment, b.For(HistoryLatePayment))
	assert.Zero(t, b.For("reconcile"))

	in.Lossy = false
	assert.Zero(t, NewHistoryBounds(DefaultSettings, in).Resends, "no lost answers, no resends")
	longer := DefaultSettings
	longer.RefundAttention = 3 * time.Minute
	assert.Greater(t, NewHistoryBounds(longer, in).Job, NewHistoryBounds(DefaultSettings, in).Job, "more refund attempts, longer histories")
}

func TestCollectHistoriesAndLostAnswers(t *testing.T) {
	a := with(completed(), func(o *Observed) { // recovered by its callback
		o.Sends[0].AnswerLost, o.LostWaits = "502", []time.Duration{4 * time.Second}
	})
	b := with(completed(), func(o *Observed) {
		o.JobID = "job-2"
		o.Sends = append(o.Sends, Send{N: 2, UpsamplerJobID: "u2", CreatedAt: t0.Add(9 * time.Second)})
		o.Sends[0].AnswerLost, o.UpsamplerJobID = "dropped", "u2" // sent again
		o.LostWaits = []time.Duration{2 * time.Minute, 5 * time.Second}
		o.Histories = []History{{WorkflowID: "job:job-2", Kind: HistoryJob, Length: 120},
			{WorkflowID: "owed-refund:job-2", Kind: HistoryOwedRefund, Length: 40}}
	})
	c := with(stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated), func(o *Observed) {
		o.JobID, o.UpsamplerJobID = "job-3", ""
		o.Sends[0].AnswerLost = "502" // neither: terminated while waiting
	})
	lost := CountLostAnswers([]Observed{a, b, c, neverPaid()})
	assert.Equal(t, LostAnswers{Lost: 3, As502: 2, Dropped: 1, Recovered: 1, SentAgain: 1, Other: 1,
		Waits: 3, MinWait: 4 * time.Second, MaxWait: 2 * time.Minute}, lost)

	st := CollectHistories([]Observed{a, b, c})
	assert.Equal(t, 4, st.Described)
	assert.Equal(t, int64(120), st.Longest[HistoryJob].Length)
	assert.Equal(t, "job-2", st.Longest[HistoryJob].JobID)
	assert.Equal(t, int64(40), st.Longest[HistoryOwedRefund].Length)
	_, ok := st.Longest[HistoryLatePayment]
	assert.False(t, ok)
}

func TestCountAwaiting(t *testing.T) {
	parked := func(id string, finished time.Duration) Observed {
		o := neverPaid()
		o.JobID, o.Plan.Path, o.FinishedAt = id, PathParked, at(finished)
		return o
	}
	stop := func(id string, acted time.Duration) Observed {
		o := stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated)
		o.JobID, o.ActedAt = id, at(acted)
		return o
	}
	obs := []Observed{
		parked("p1", time.Minute), parked("p2", time.Minute), parked("p3", 15*time.Second), // p3 gone by the second stop
		with(parked("p4", time.Minute), func(o *Observed) { o.Plan.Act, o.ActedAt = ActTerminateAwaiting, at(12*time.Second) }),
		with(neverPaid(), func(o *Observed) { o.JobID = "n1" }), // awaiting until 41s
		stop("s1", 10*time.Second), stop("s2", 20*time.Second),
		completed(), // paid at 3s: not awaiting
	}
	assert.Equal(t, AwaitingStats{Stops: 2, Min: 3, Max: 5, MinParked: 2}, CountAwaiting(obs))
	assert.Equal(t, AwaitingStats{}, CountAwaiting([]Observed{completed()}), "no stops")
}

func TestCheckEmails(t *testing.T) {
	mail := func(job, kind string, admin bool, id string) Mail {
		return Mail{JobID: job, Kind: kind, Admin: admin, MessageID: id}
	}
	full := []Mail{
		mail("job-1", jobs.EmailPaymentReceived, false, "a"), mail("job-1", jobs.EmailPaymentReceived, true, "b"),
		mail("job-1", jobs.EmailImageReady, false, "c"), mail("job-1", jobs.EmailImageReady, true, "d"),
	}
	refunded := []Mail{mail("job-1", jobs.EmailPaymentReceived, false, "a"), mail("job-1", jobs.EmailFailedRefunded, false, "r")}
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
		{"bank debit: told it is processing", append(full, mail("job-1", jobs.EmailPaymentProcessing, false, "p")), delayedPaid(), nil, 0},
		{"bank debit: not told it is processing", full, delayedPaid(), []string{InvNotified}, 0},
		{"bank debit decided before the job saw it processing: not told", full,
			with(delayedPaid(), func(o *Observed) { o.ProcessingNoted = false }), nil, 0},
		{"refunded by hand: told", refunded, byHand(), nil, 0},
		{"settled by an admin: the admin told", []Mail{mail("job-1", jobs.EmailPaymentReceived, false, "a"),
			mail("job-1", jobs.EmailRefundAttention, true, "n")}, settledByAnAdmin(), nil, 0},
		{"settled by an admin: the admin not told", []Mail{mail("job-1", jobs.EmailPaymentReceived, false, "a")},
			settledByAnAdmin(), []string{InvNotified}, 0},
		{"terminated: only the sweep's refund told", []Mail{mail("job-1", jobs.EmailFailedRefunded, false, "r")},
			stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated), nil, 0},
		{"terminated: the sweep's refund not told", nil, stoppedProcessing(ActTerminateProcessing, jobs.ReasonTerminated),
			[]string{InvNotified}, 0},
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
		{"terminated: nothing more expected", []Delivery{full[0]}, stoppedAwaiting(ActTerminateAwaiting), nil, 0},
		{"cancelled: the failure told", []Delivery{full[0], full[1], ev("job-1", jobs.HookJobFailed)},
			stoppedProcessing(ActCancelProcessing, jobs.ReasonCancelled), nil, 0},
		{"cancelled: the failure not told", full[:2], stoppedProcessing(ActCancelProcessing, jobs.ReasonCancelled),
			[]string{InvNotified}, 0},
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
