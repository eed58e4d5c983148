package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"hires/internal/events"
	"hires/internal/jobs"
)

// The invariants, as the report names them.
const (
	InvCreated     = "every job created"
	InvPaid        = "paid jobs delivered or refunded exactly once"
	InvLate        = "late payments refunded once"
	InvDelayed     = "delayed payments settled on their side of the window"
	InvUnpaid      = "unpaid jobs never processed nor charged"
	InvStopped     = "terminated and cancelled jobs settled"
	InvRefundCalls = "no refund call after a confirmed refund"
	InvSubmissions = "no Upsampler submission sent twice"
	InvHistory     = "every workflow history under its bound"
	InvDeadlines   = "no job stuck past its deadlines"
	InvEmails      = "no duplicate emails"
	InvEvents      = "no duplicate integration events"
	InvNotified    = "every outcome notified"
)

// Invariants lists them in report order.
var Invariants = []string{InvCreated, InvPaid, InvLate, InvDelayed, InvUnpaid, InvStopped, InvRefundCalls,
	InvSubmissions, InvHistory, InvDeadlines, InvEmails, InvEvents, InvNotified}

// Violation is one broken invariant about one job (JobID may be empty).
type Violation struct {
	Invariant string
	JobID     string
	Detail    string
}

func (v Violation) String() string {
	if v.JobID == "" {
		return v.Invariant + ": " + v.Detail
	}
	return fmt.Sprintf("%s: job %s (%s)", v.Invariant, v.JobID, v.Detail)
}

// Observed is what the run learned about one job, from every component.
type Observed struct {
	Plan  JobPlan
	JobID string // empty when no creation request ever succeeded
	// CheckoutAt is when the creation request returned the checkout: the
	// payment window is open from about then.
	CheckoutAt time.Time
	// PaymentAcceptedAt is when the API first acknowledged the event that
	// took the customer's money (checkout.session.completed paid, or
	// async_payment_succeeded); nil if the customer never paid.
	PaymentAcceptedAt *time.Time
	// The planned act (Plan.Act) as it was done: when, and the job's
	// status/payment status then; ActMissed says why it was not done (the
	// job was not in the state the act needs).
	ActedAt   *time.Time
	ActStatus string
	ActMissed string

	// From the job record.
	Status          jobs.Status
	PaymentStatus   jobs.PaymentStatus
	FailureReason   string
	PaymentIntentID string
	RefundedAt      *time.Time
	UpsamplerJobID  string // the Upsampler job the record kept
	// From the audit trail: when the job first went to pending (the
	// payment was taken in time; a late payment never gets there) and
	// when it first reached a final status; whether the refund was handed
	// to the admins (refund_needs_attention) and then marked settled.
	PendingAt      *time.Time
	FinishedAt     *time.Time
	NeedsAttention bool
	SettledByAdmin bool
	// ProcessingNoted: the record says the customer's bank payment was
	// being processed. A workflow that sees the bank's verdict together
	// with the delayed Checkout (a busy worker) skips that state and its
	// email: the customer hears the verdict instead.
	ProcessingNoted bool

	// From the Stripe double, about the PaymentIntent the customer paid
	// (or tried to pay) with: PI is the driver's, since a delayed payment
	// that failed is never recorded on the job.
	PI          string
	AmountCents int64 // the job's price: what a paying customer paid
	// Refunds are the refunds Stripe created with the job in their
	// metadata (forwarded POST /v1/refunds answered 200).
	Refunds []Refund
	// StripeRefunds counts the refunds of PI created through the API
	// (RefundsCreated); HandRefundAt is when the "Dashboard" refunded it
	// by hand (the double's clock); AmountRefunded is its charge's
	// amount_refunded.
	StripeRefunds  int
	HandRefundAt   *time.Time
	AmountRefunded int64
	// ConfirmedAt is when PI's refund was made at Stripe (the first one
	// created through the API, or by hand), on the double's clock;
	// RefundCallsAfter counts POST /v1/refunds for PI after it, and
	// RefundCalls all of them.
	ConfirmedAt      *time.Time
	RefundCallsAfter int
	RefundCalls      int
	// SessionClosed: the job's Checkout Session was expired at Stripe.
	SessionClosed bool

	// Sends are the Upsampler jobs the stand-in created for it, with the
	// submission number of their callback URL; Submissions is len(Sends).
	Sends       []Send
	Submissions int
	// ResentEarly lists submissions sent although the callback of the one
	// before had reached the workflow; LostWaits are the waits for a lost
	// answer's callback the workflow started (both read from its history).
	ResentEarly []int
	LostWaits   []time.Duration
	// StandInFails: the stand-in's seeded fate for its image is to fail.
	StandInFails bool
	// Download is the check of a completed job's link; nil if not checked.
	Download *DownloadCheck
	// Histories are the lengths of the job's workflows (job:, and
	// owed-refund:, late-payment: where they exist).
	Histories []History
}

// Paid reports whether the customer paid (a payment event was accepted).
func (o Observed) Paid() bool { return o.PaymentAcceptedAt != nil }

// acted reports whether the plan's act a was done on the job.
func (o Observed) acted(a Act) bool { return o.Plan.Act == a && o.ActedAt != nil }

// terminated: its workflow was terminated (Temporal ran none of its code
// after that, notifications in flight included).
func (o Observed) terminated() bool { return o.ActedAt != nil && o.Plan.Act.terminates() }

// actNote names the act done on the job, for a violation's detail.
func (o Observed) actNote() string {
	if o.ActedAt == nil {
		return ""
	}
	return fmt.Sprintf("; %s at %s, seen %s", o.Plan.Act, o.ActedAt.Format("15:04:05.000"), o.ActStatus)
}

// Refund is one refund created at Stripe.
type Refund struct {
	PaymentIntentID string
	IdempotencyKey  string
}

// Send is one Upsampler job the stand-in created for a hires job.
type Send struct {
	N              int // the submission number in the callback URL (?s=); 0 if none
	UpsamplerJobID string
	CreatedAt      time.Time
	// AnswerLost: how the stand-in lost the answer to the submit ("502",
	// "dropped"), or "".
	AnswerLost string
	// CallbackAt is when a callback of it was first acknowledged (zero if
	// none was).
	CallbackAt time.Time
}

// History is one workflow's history length.
type History struct {
	WorkflowID string
	Kind       string // "job", "owed-refund", "late-payment"
	Length     int64
	Status     string // the execution status, e.g. Running, Completed
}

// DownloadCheck is the result of fetching a completed job's download.
type DownloadCheck struct {
	HTTPStatus    int
	Width, Height int    // of the decoded image
	Err           string // transport or decoding error
}

// Limits are the deadlines the service promises, how late is too late,
// and the bounds on what it may do.
type Limits struct {
	PaymentTimeout    time.Duration
	ProcessingTimeout time.Duration
	// LostAnswerWait: a submission whose answer was lost is sent again
	// only this long after it, at the earliest.
	LostAnswerWait time.Duration
	// Slack covers what an outage may add: a killed worker's activity is
	// retried only once its start-to-close timeout passed (2 minutes for
	// Stripe calls).
	Slack time.Duration
	// Histories bounds each kind of workflow's history.
	Histories HistoryBounds
	Now       time.Time
}

// CheckJobs applies the per-job invariants: creation, money, acts,
// submissions, histories and deadlines. It also measures how late the
// jobs that did get there were: a job slowed down (by the faults, or a
// busy machine) is not stuck.
func CheckJobs(obs []Observed, lim Limits) ([]Violation, LateStats) {
	var out []Violation
	var late LateStats
	for _, o := range obs {
		if o.JobID == "" {
			out = append(out, Violation{InvCreated, "", fmt.Sprintf("job %d (%s) was never created", o.Plan.Index, o.Plan.Key)})
			continue
		}
		out = append(out, checkMoney(o)...)
		out = append(out, checkRefundCalls(o)...)
		out = append(out, checkSubmissions(o, lim.LostAnswerWait)...)
		out = append(out, checkHistories(o, lim.Histories)...)
		out = append(out, checkDeadlines(o, lim, &late)...)
	}
	return out, late
}

// LateStats count steps taken after their deadline (and its slack).
type LateStats struct {
	Steps int
	Worst time.Duration
}

type violate func(inv, format string, args ...any) Violation

// checkMoney: a paying customer gets the image or the money back, exactly
// once (by the service, by hand in the Dashboard, or by an admin's word
// once Stripe kept refusing); a late payer gets the money back, once, and
// no image; a customer who never paid gets nothing and costs nothing.
func checkMoney(o Observed) []Violation {
	v := func(inv, format string, args ...any) Violation {
		return Violation{inv, o.JobID, fmt.Sprintf(format, args...)}
	}
	var out []Violation
	for _, r := range o.Refunds {
		if want := cmpOr(o.PaymentIntentID, o.PI); r.PaymentIntentID != want {
			out = append(out, v(InvPaid, "refund of payment %q, but the job was paid with %q", r.PaymentIntentID, want))
		}
	}
	p := o.Plan.Path
	switch {
	case p.paidInTime():
		inv := InvPaid
		if p.delayed() {
			inv = InvDelayed
		}
		if !o.Paid() {
			return append(out, v(inv, "no payment event was ever accepted by the API"))
		}
		return append(out, checkPaidJob(o, v)...)
	case p.paidLate():
		inv := InvLate
		if p.delayed() {
			inv = InvDelayed
		}
		if !o.Paid() {
			return append(out, v(inv, "the late payment was never accepted by the API"))
		}
		out = append(out, refundedOnce(o, inv, v)...)
		if o.Status != jobs.StatusAbandoned {
			out = append(out, v(inv, "paid after abandonment but ended %s", o.Status))
		}
		if o.Submissions > 0 {
			out = append(out, v(InvUnpaid, "paid only after abandonment but submitted to Upsampler %d times", o.Submissions))
		}
		return out
	}
	return append(out, checkUnpaid(o, v)...)
}

// checkPaidJob: a job paid in time is delivered, or refunded exactly once.
func checkPaidJob(o Observed, v violate) []Violation {
	var out []Violation
	stoppedWhileProcessing := o.acted(ActTerminateProcessing) || o.acted(ActCancelProcessing)
	// A job delivered just before it was stopped is a delivered job.
	doneBefore := stoppedWhileProcessing && o.FinishedAt != nil && !o.FinishedAt.After(*o.ActedAt)
	switch {
	case o.Plan.Path == PathDelayed && o.Status != jobs.StatusCompleted:
		out = append(out, v(InvDelayed, "paid by bank within the window, but ended %s/%s", o.Status, o.PaymentStatus))
		if o.Status.Final() {
			out = append(out, refundedOnce(o, InvPaid, v)...)
		}
	case o.Status == jobs.StatusCompleted:
		if stoppedWhileProcessing && !doneBefore {
			out = append(out, v(InvStopped, "%s at %s (seen %s), yet completed", o.Plan.Act, o.ActedAt.Format(time.TimeOnly), o.ActStatus))
		}
		if o.acted(ActCancelProcessing) && doneBefore {
			// Cancelling a delivered job deletes its file: only the money is checked.
			out = append(out, notRefunded(o, v)...)
			break
		}
		out = append(out, delivered(o, v)...)
	case o.Status == jobs.StatusFailed || o.Status == jobs.StatusAbandoned:
		switch {
		case o.acted(ActRefundAttention):
			out = append(out, settledByAdmin(o, v)...)
		default:
			out = append(out, refundedOnce(o, InvPaid, v)...)
		}
		if o.acted(ActRefundByHand) && o.HandRefundAt == nil {
			out = append(out, v(InvPaid, "refunded by hand, but the double has no hand refund"))
		}
		if want := stopReason(o); want != "" && o.FailureReason != want {
			out = append(out, v(InvStopped, "%s (seen %s), but failed with reason %q, want %q", o.Plan.Act, o.ActStatus, o.FailureReason, want))
		}
		if o.Status == jobs.StatusAbandoned && o.Submissions > 0 {
			out = append(out, v(InvUnpaid, "abandoned (its payment came too late) but submitted to Upsampler %d times", o.Submissions))
		}
	default:
		out = append(out, v(InvPaid, "paid but still %s/%s", o.Status, o.PaymentStatus))
	}
	return out
}

// stopReason is the failure reason a job stopped while processing must have.
func stopReason(o Observed) string {
	switch {
	case o.acted(ActTerminateProcessing):
		return jobs.ReasonTerminated
	case o.acted(ActCancelProcessing):
		return jobs.ReasonCancelled
	}
	return ""
}

// checkUnpaid: a customer who never paid (or whose bank refused the
// payment) gets nothing and costs nothing; a parked job stopped by an
// admin is closed with its Checkout Session.
func checkUnpaid(o Observed, v violate) []Violation {
	var out []Violation
	inv := InvUnpaid
	if o.Plan.Path.delayed() {
		inv = InvDelayed
	}
	if o.Paid() {
		out = append(out, v(inv, "the plan never pays, yet a payment was accepted"))
	}
	switch {
	case o.acted(ActTerminateAwaiting):
		if o.Status != jobs.StatusFailed || o.FailureReason != jobs.ReasonTerminated {
			out = append(out, v(InvStopped, "terminated while awaiting payment, but ended %s (%q), want failed (%q)",
				o.Status, o.FailureReason, jobs.ReasonTerminated))
		}
	case o.acted(ActCancelAwaiting):
		if o.Status != jobs.StatusAbandoned {
			out = append(out, v(InvStopped, "cancelled while awaiting payment, but ended %s, want abandoned", o.Status))
		}
	case o.Status != jobs.StatusAbandoned:
		out = append(out, v(inv, "never paid but ended %s", o.Status))
	}
	if (o.acted(ActTerminateAwaiting) || o.acted(ActCancelAwaiting)) && !o.SessionClosed {
		out = append(out, v(InvStopped, "%s, but its Checkout Session was never expired at Stripe", o.Plan.Act))
	}
	switch o.PaymentStatus {
	case jobs.PaymentPaid, jobs.PaymentRefunded, jobs.PaymentRefundFailed, jobs.PaymentRefundNeedsAttention:
		out = append(out, v(inv, "never paid but payment status %s", o.PaymentStatus))
	}
	if o.Plan.Path == PathDelayedFailed && o.PaymentStatus != jobs.PaymentFailed {
		out = append(out, v(InvDelayed, "the bank refused the payment, but payment status %s, want %s", o.PaymentStatus, jobs.PaymentFailed))
	}
	if o.Submissions > 0 {
		out = append(out, v(inv, "never paid but submitted to Upsampler %d times", o.Submissions))
	}
	if n := len(o.Refunds) + o.StripeRefunds; n > 0 || o.AmountRefunded > 0 || o.RefundCalls > 0 {
		out = append(out, v(inv, "never paid but %d refunds (%d cents) and %d refund calls at Stripe", n, o.AmountRefunded, o.RefundCalls))
	}
	return out
}

// refundedOnce: the payment went back exactly once, in full, through the
// API or by hand in the Dashboard, and the job says so.
func refundedOnce(o Observed, inv string, v violate) []Violation {
	var out []Violation
	hand := 0
	if o.HandRefundAt != nil {
		hand = 1
	}
	if n := o.StripeRefunds + hand; n != 1 {
		out = append(out, v(inv, "ended %s with %d refunds at Stripe (%d by hand), want exactly 1", o.Status, n, hand))
	}
	if len(o.Refunds) != o.StripeRefunds {
		out = append(out, v(inv, "%d refunds name the job, %d refunded its payment", len(o.Refunds), o.StripeRefunds))
	}
	if o.AmountRefunded != o.AmountCents {
		out = append(out, v(inv, "%d of %d cents refunded", o.AmountRefunded, o.AmountCents))
	}
	if o.PaymentStatus != jobs.PaymentRefunded {
		out = append(out, v(inv, "ended %s with payment status %s, want refunded", o.Status, o.PaymentStatus))
	}
	return out
}

// settledByAdmin: Stripe refused every refund, the job was handed to the
// admins, and an admin marked it settled: no money moved at Stripe.
func settledByAdmin(o Observed, v violate) []Violation {
	var out []Violation
	if !o.NeedsAttention || !o.SettledByAdmin {
		out = append(out, v(InvPaid, "refunds refused throughout: want refund_needs_attention then settled, trail has attention %t, settled %t",
			o.NeedsAttention, o.SettledByAdmin))
	}
	out = append(out, notRefunded(o, v)...)
	if o.PaymentStatus != jobs.PaymentRefunded {
		out = append(out, v(InvPaid, "settled by an admin, but payment status %s, want refunded", o.PaymentStatus))
	}
	return out
}

// notRefunded: no money went back at Stripe.
func notRefunded(o Observed, v violate) []Violation {
	if n := len(o.Refunds) + o.StripeRefunds; n > 0 || o.HandRefundAt != nil || o.AmountRefunded > 0 {
		return []Violation{v(InvPaid, "ended %s/%s and also refunded at Stripe (%d refunds, %d cents)",
			o.Status, o.PaymentStatus, max(len(o.Refunds), o.StripeRefunds), o.AmountRefunded)}
	}
	return nil
}

func delivered(o Observed, v violate) []Violation {
	out := notRefunded(o, v)
	if o.Submissions == 0 {
		out = append(out, v(InvPaid, "completed without any Upsampler submission"))
	}
	if o.StandInFails {
		out = append(out, v(InvPaid, "completed although Upsampler failed it"))
	}
	d := o.Download
	wantW, wantH := o.Plan.Width*o.Plan.Factor(), o.Plan.Height*o.Plan.Factor()
	switch {
	case d == nil:
		out = append(out, v(InvPaid, "completed, download not checked"))
	case d.Err != "":
		out = append(out, v(InvPaid, "completed, download failed: %s", d.Err))
	case d.HTTPStatus != 200:
		out = append(out, v(InvPaid, "completed, download answered HTTP %d", d.HTTPStatus))
	case d.Width != wantW || d.Height != wantH:
		out = append(out, v(InvPaid, "completed, downloaded image is %dx%d, want %dx%d", d.Width, d.Height, wantW, wantH))
	}
	return out
}

// checkRefundCalls: once Stripe holds a refund of the payment (made by the
// service or by hand), the service never asks for another.
func checkRefundCalls(o Observed) []Violation {
	if o.ConfirmedAt == nil || o.RefundCallsAfter == 0 {
		return nil
	}
	return []Violation{{InvRefundCalls, o.JobID, fmt.Sprintf("%d POST /v1/refunds for %s after its refund at %s",
		o.RefundCallsAfter, o.PI, o.ConfirmedAt.Format("15:04:05.000"))}}
}

// checkSubmissions: every submission number reaches Upsampler at most
// once; a submission is followed by the next only once its answer was
// lost, it waited lostWait, and its callback had not named the job.
func checkSubmissions(o Observed, lostWait time.Duration) []Violation {
	v := func(format string, args ...any) Violation {
		return Violation{InvSubmissions, o.JobID, fmt.Sprintf(format, args...)}
	}
	var out []Violation
	byN := map[int][]Send{}
	for _, s := range o.Sends {
		byN[s.N] = append(byN[s.N], s)
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		sends := byN[n]
		if n == 0 {
			out = append(out, v("%d Upsampler jobs submitted without a submission number", len(sends)))
			continue
		}
		if len(sends) > 1 {
			ids := make([]string, len(sends))
			for i, s := range sends {
				ids[i] = s.UpsamplerJobID
			}
			out = append(out, v("submission %d reached Upsampler %d times (jobs %s)", n, len(sends), strings.Join(ids, ", ")))
		}
		if prev, ok := byN[n-1]; ok && n > 1 {
			if gap := sends[0].CreatedAt.Sub(prev[0].CreatedAt); gap < lostWait {
				out = append(out, v("submission %d sent %s after submission %d, before the lost-answer wait of %s",
					n, gap.Round(time.Millisecond), n-1, lostWait))
			}
		}
	}
	for _, n := range o.ResentEarly {
		out = append(out, v("submission %d sent after the callback of submission %d had reached the workflow", n, n-1))
	}
	return out
}

// checkHistories: every workflow of the job kept its history under the
// bound of its kind.
func checkHistories(o Observed, b HistoryBounds) []Violation {
	var out []Violation
	for _, h := range o.Histories {
		if bound := b.For(h.Kind); bound > 0 && h.Length > bound {
			out = append(out, Violation{InvHistory, o.JobID, fmt.Sprintf("%s has %d history events, over the bound of %d",
				h.WorkflowID, h.Length, bound)})
		}
	}
	return out
}

// checkDeadlines: an unpaid job is abandoned within the payment window, a
// paid one finished within the processing deadline, an owed refund made
// at once; each with Slack. A job that has not got there once its
// deadline passed is stuck; one that got there late is counted in late.
func checkDeadlines(o Observed, lim Limits, late *LateStats) []Violation {
	var out []Violation
	by := func(what string, happened *time.Time, deadline time.Time) {
		switch {
		case happened != nil && happened.After(deadline):
			late.Steps++
			late.Worst = max(late.Worst, happened.Sub(deadline))
		case happened == nil && lim.Now.After(deadline):
			out = append(out, Violation{InvDeadlines, o.JobID, fmt.Sprintf("stuck: still %s/%s, %s past the deadline to be %s",
				o.Status, o.PaymentStatus, lim.Now.Sub(deadline).Round(time.Second), what)})
		}
	}
	if o.PendingAt == nil {
		by("abandoned", o.FinishedAt, o.CheckoutAt.Add(lim.PaymentTimeout+lim.Slack))
	} else {
		by("finished", o.FinishedAt, o.PendingAt.Add(lim.ProcessingTimeout+lim.Slack))
	}
	if refundOwed(o) {
		since := o.FinishedAt
		if o.PaymentAcceptedAt != nil && (since == nil || o.PaymentAcceptedAt.After(*since)) {
			since = o.PaymentAcceptedAt
		}
		if since != nil {
			by("refunded", o.RefundedAt, since.Add(lim.Slack))
		}
	}
	return out
}

// refundOwed: the customer paid and did not get the image.
func refundOwed(o Observed) bool {
	return o.Paid() && (o.Status == jobs.StatusFailed || o.Status == jobs.StatusAbandoned)
}

// HistoryBounds are the most history events a workflow of each kind may
// write in a run, computed from its settings by NewHistoryBounds.
type HistoryBounds struct {
	Job, OwedRefund, LatePayment int64
	// The terms of the job's bound, for the report.
	Polls, Resends, RefundAttempts, Signals, Faults int64
}

// For is the bound of a kind of workflow (0: none).
func (b HistoryBounds) For(kind string) int64 {
	switch kind {
	case HistoryJob:
		return b.Job
	case HistoryOwedRefund:
		return b.OwedRefund
	case HistoryLatePayment:
		return b.LatePayment
	}
	return 0
}

// The kinds of workflow whose histories are bounded.
const (
	HistoryJob         = "job"
	HistoryOwedRefund  = "owed-refund"
	HistoryLatePayment = "late-payment"
)

// History events per step, as Temporal writes them: a workflow task is 3
// events (scheduled, started, completed), an activity 3 (scheduled,
// started, completed or failed; retries write none), a timer 2 (started,
// fired), a signal or a search-attribute upsert 1.
const (
	// eventsFixed covers every step of the longest path taken once: the
	// start with its checkout update, the payment window, a delayed
	// payment's wait, the payment with the inline submission, processing,
	// the result, delivery or failure, a refund, cancellation and its
	// settlement, the retry window or the download's expiry and reminder,
	// and the notifications (about 77 events on the happy path, 75 when
	// failed and refunded, measured by `make bench`).
	eventsFixed = 150
	// eventsPerPoll: a poll timer (2), its task (3), CheckUpscale (3) and
	// the task that reads it (3).
	eventsPerPoll = 11
	// eventsPerResend: the lost answer's task (3), the wait for its
	// callback (2), its task (3), SubmitUpscale sent again (3), its task (3).
	eventsPerResend = 14
	// eventsPerRefundAttempt: RefundPayment (3) refused, its task (3),
	// MarkRefundFailed (3), its task (3), the payment status upsert (1),
	// the retry timer (2) and its task (3).
	eventsPerRefundAttempt = 18
	// eventsPerSignal: the signal (1) and the task it may wake (3).
	eventsPerSignal = 4
	// eventsPerFault: a workflow task lost with a killed worker or server
	// times out and is scheduled and started again (3), at most twice.
	eventsPerFault = 6
	// stripeEventsPerJob: checkout.session.completed, a stale expiry or a
	// delayed payment's verdict, charge.refunded, and an admin's
	// refund-settled signal.
	stripeEventsPerJob = 4
	// signalsPerDelivery: a copy of an event signals once, and once more
	// when the API died (or PostgreSQL was down) before acknowledging it.
	signalsPerDelivery = 2
	// eventsOwedRefundFixed: the start, a successful refund, its email and
	// the end; eventsLatePaymentFixed adds the late payment's record.
	eventsOwedRefundFixed  = 30
	eventsLatePaymentFixed = 40
)

// HistoryInputs are what the bounds depend on besides Settings.
type HistoryInputs struct {
	Copies         int  // deliveries of each Stripe event
	CallbackCopies int  // callbacks per Upsampler job (2 if duplicated)
	WebhookRetries int  // extra attempts of each callback
	Faults         int  // faults injected
	Lossy          bool // Upsampler answers may be lost (resends possible)
}

// NewHistoryBounds computes the bounds from the settings:
//
//	job          = fixed + polls×11 + resends×14 + refund attempts×18 + signals×4 + faults×6
//	owed-refund  = 30 + refund attempts×18 + refund signals×4 + faults×6
//	late-payment = 40 + refund attempts×18 + Stripe signals×4 + faults×6
//
// where an attempt polls at most PROCESSING_TIMEOUT/POLL_INTERVAL times,
// sends the image again at most PROCESSING_TIMEOUT/LOST_ANSWER_WAIT times
// (each resend follows a full wait), and a refund is tried at most
// REFUND_ATTENTION_AFTER/REFUND_RETRY_INTERVAL + 1 times before the job is
// handed to an admin; signals are every copy of every Stripe event (each
// at most twice) and every callback of every submission.
func NewHistoryBounds(s Settings, in HistoryInputs) HistoryBounds {
	ceilDiv := func(a, b time.Duration) int64 {
		if b <= 0 {
			return 0
		}
		return int64((a + b - 1) / b)
	}
	b := HistoryBounds{
		Polls:          ceilDiv(s.ProcessingTimeout, s.PollInterval),
		RefundAttempts: ceilDiv(s.RefundAttention, s.RefundRetry) + 1,
		Faults:         int64(in.Faults),
	}
	if in.Lossy {
		b.Resends = ceilDiv(s.ProcessingTimeout, s.LostAnswerWait)
	}
	stripeSignals := int64(stripeEventsPerJob * in.Copies * signalsPerDelivery)
	callbacks := (1 + b.Resends) * int64(max(in.CallbackCopies, 1)*(1+in.WebhookRetries))
	b.Signals = stripeSignals + callbacks
	faults := b.Faults * eventsPerFault
	refunds := b.RefundAttempts * eventsPerRefundAttempt
	b.Job = eventsFixed + b.Polls*eventsPerPoll + b.Resends*eventsPerResend + refunds + b.Signals*eventsPerSignal + faults
	b.OwedRefund = eventsOwedRefundFixed + refunds + int64(2*in.Copies*signalsPerDelivery)*eventsPerSignal + faults
	b.LatePayment = eventsLatePaymentFixed + refunds + stripeSignals*eventsPerSignal + faults
	return b
}

// HistoryStats is what the histories showed.
type HistoryStats struct {
	Described int
	// Longest is the longest history of each kind.
	Longest map[string]LongHistory
}

// LongHistory is a kind's longest history, with its job.
type LongHistory struct {
	History
	JobID string
	Path  Path
	Act   Act
}

// CollectHistories finds the longest history of each kind.
func CollectHistories(obs []Observed) HistoryStats {
	st := HistoryStats{Longest: map[string]LongHistory{}}
	for _, o := range obs {
		for _, h := range o.Histories {
			st.Described++
			if h.Length > st.Longest[h.Kind].Length {
				st.Longest[h.Kind] = LongHistory{History: h, JobID: o.JobID, Path: o.Plan.Path, Act: o.Plan.Act}
			}
		}
	}
	return st
}

// LostAnswers counts the submissions whose answer the stand-in lost, and
// what became of each: its callback named the job to the workflow
// (recovered), the image was sent again after the wait, or neither (the
// job was stopped first); and how long the workflows set out to wait for
// a lost answer's callback.
type LostAnswers struct {
	Lost, As502, Dropped        int
	Recovered, SentAgain, Other int
	Waits                       int
	MinWait, MaxWait            time.Duration
}

// CountLostAnswers classifies every lost answer.
func CountLostAnswers(obs []Observed) LostAnswers {
	var st LostAnswers
	for _, o := range obs {
		for _, w := range o.LostWaits {
			if st.Waits == 0 || w < st.MinWait {
				st.MinWait = w
			}
			st.MaxWait = max(st.MaxWait, w)
			st.Waits++
		}
		for _, s := range o.Sends {
			if s.AnswerLost == "" {
				continue
			}
			st.Lost++
			if s.AnswerLost == "502" {
				st.As502++
			} else {
				st.Dropped++
			}
			later := false
			for _, t := range o.Sends {
				later = later || t.N > s.N
			}
			switch {
			case later:
				st.SentAgain++
			case o.UpsamplerJobID == s.UpsamplerJobID:
				st.Recovered++
			default:
				st.Other++
			}
		}
	}
	return st
}

// Mail is one message the mail catcher received about a job.
type Mail struct {
	JobID     string
	Kind      string // X-Hires-Kind
	Admin     bool   // to the admin: a copy, or an admin-only notice
	MessageID string
}

// MailStats counts what CheckEmails saw.
type MailStats struct {
	Messages int
	ByKind   map[string]int // customer messages by kind
	// Resent counts extra copies carrying an already received Message-ID:
	// a crash between sending and recording repeats the same message, which
	// mail clients show once.
	Resent int
}

// CheckEmails: at most one distinct message per job, kind and recipient;
// nothing about a payment to a customer who never paid; and the customer
// (or the admin) told of every outcome that concerns them.
func CheckEmails(mails []Mail, obs []Observed) ([]Violation, MailStats) {
	st := MailStats{ByKind: map[string]int{}}
	type slot struct {
		job, kind string
		admin     bool
	}
	ids := map[slot]map[string]int{}
	for _, m := range mails {
		st.Messages++
		s := slot{m.JobID, m.Kind, m.Admin}
		if ids[s] == nil {
			ids[s] = map[string]int{}
		}
		ids[s][m.MessageID]++
	}
	var out []Violation
	for _, s := range sortedKeys(ids, func(a, b slot) bool {
		return a.job+a.kind+fmt.Sprint(a.admin) < b.job+b.kind+fmt.Sprint(b.admin)
	}) {
		if !s.admin && len(ids[s]) > 0 {
			st.ByKind[s.kind]++
		}
		for _, n := range ids[s] {
			st.Resent += n - 1
		}
		if len(ids[s]) > 1 {
			who := "customer"
			if s.admin {
				who = "admin"
			}
			out = append(out, Violation{InvEmails, s.job, fmt.Sprintf("%d different %q emails to the %s", len(ids[s]), s.kind, who)})
		}
	}
	has := func(job, kind string, admin bool) bool { return len(ids[slot{job, kind, admin}]) > 0 }
	for _, o := range obs {
		if o.JobID == "" {
			continue
		}
		if !o.Paid() {
			for _, k := range []string{jobs.EmailPaymentReceived, jobs.EmailImageReady, jobs.EmailFailedRefunded, jobs.EmailExpiringSoon} {
				if has(o.JobID, k, false) {
					out = append(out, Violation{InvEmails, o.JobID, fmt.Sprintf("%q email to a customer who never paid", k)})
				}
			}
		}
		for _, k := range expectedEmails(o) {
			admin := k == jobs.EmailRefundAttention
			if !has(o.JobID, k, admin) {
				out = append(out, Violation{InvNotified, o.JobID, fmt.Sprintf("ended %s/%s without a %q email%s", o.Status, o.PaymentStatus, k, o.actNote())})
			}
		}
	}
	return out, st
}

// expectedEmails are the emails a settled job must have had. A terminated
// workflow sends nothing more (its notifications in flight are lost), so
// only the refund its sweep makes is expected of it.
func expectedEmails(o Observed) []string {
	var want []string
	refunded := o.Paid() && o.PaymentStatus == jobs.PaymentRefunded && !o.SettledByAdmin
	if o.terminated() {
		if refunded {
			want = append(want, jobs.EmailFailedRefunded)
		}
		return want
	}
	if o.ProcessingNoted {
		want = append(want, jobs.EmailPaymentProcessing)
	}
	if o.PendingAt != nil {
		want = append(want, jobs.EmailPaymentReceived)
	}
	if o.Status == jobs.StatusCompleted {
		want = append(want, jobs.EmailImageReady)
	}
	if refunded {
		want = append(want, jobs.EmailFailedRefunded)
	}
	if o.NeedsAttention {
		want = append(want, jobs.EmailRefundAttention)
	}
	return want
}

// Delivery is one integration event the receiver accepted.
type Delivery struct {
	ID, JobID, Type string
	Attempt         int
}

// EventStats counts what CheckEvents saw.
type EventStats struct {
	Accepted int
	Distinct int
	// Redelivered counts extra deliveries of an already accepted event ID
	// (at-least-once delivery; receivers deduplicate on the ID).
	Redelivered int
	ByType      map[string]int
}

// CheckEvents: one event ID per job, type and attempt, derived as
// documented; no payment events for money never paid; every outcome told.
func CheckEvents(ds []Delivery, obs []Observed) ([]Violation, EventStats) {
	st := EventStats{ByType: map[string]int{}}
	type slot struct {
		job, typ string
		attempt  int
	}
	ids := map[slot]map[string]int{}
	for _, d := range ds {
		st.Accepted++
		s := slot{d.JobID, d.Type, d.Attempt}
		if ids[s] == nil {
			ids[s] = map[string]int{}
		}
		ids[s][d.ID]++
	}
	var out []Violation
	for _, s := range sortedKeys(ids, func(a, b slot) bool {
		return fmt.Sprint(a.job, a.typ, a.attempt) < fmt.Sprint(b.job, b.typ, b.attempt)
	}) {
		st.ByType[s.typ]++
		want := events.NewID(s.job, events.Type(s.typ), s.attempt)
		for id, n := range ids[s] {
			st.Distinct++
			st.Redelivered += n - 1
			if id != want {
				out = append(out, Violation{InvEvents, s.job, fmt.Sprintf("%s event with ID %s, want the stable %s", s.typ, id, want)})
			}
		}
		if len(ids[s]) > 1 {
			out = append(out, Violation{InvEvents, s.job, fmt.Sprintf("%d different %s events", len(ids[s]), s.typ)})
		}
	}
	has := func(job, typ string) bool { return len(ids[slot{job, typ, 0}]) > 0 }
	for _, o := range obs {
		if o.JobID == "" {
			continue
		}
		if !o.Paid() {
			for _, t := range []string{jobs.HookPaymentCompleted, jobs.HookJobCompleted} {
				if has(o.JobID, t) {
					out = append(out, Violation{InvEvents, o.JobID, fmt.Sprintf("%s event for a job never paid", t)})
				}
			}
		}
		for _, t := range expectedEvents(o) {
			if !has(o.JobID, t) {
				out = append(out, Violation{InvNotified, o.JobID, fmt.Sprintf("ended %s without a %s event%s", o.Status, t, o.actNote())})
			}
		}
	}
	return out, st
}

// expectedEvents are the integration events a settled job must have had.
// A terminated workflow sends nothing more, and the sweep that fails its
// job announces nothing.
func expectedEvents(o Observed) []string {
	if o.terminated() {
		return nil
	}
	var want []string
	if o.FailureReason != jobs.ReasonCheckoutFailed { // created once its checkout exists
		want = append(want, jobs.HookJobCreated)
	}
	if o.PendingAt != nil {
		want = append(want, jobs.HookPaymentCompleted)
	}
	switch o.Status {
	case jobs.StatusCompleted:
		want = append(want, jobs.HookJobCompleted)
	case jobs.StatusFailed:
		want = append(want, jobs.HookJobFailed)
	}
	return want
}

// Broken groups violations by invariant, in report order.
func Broken(vs []Violation) map[string][]Violation {
	out := map[string][]Violation{}
	for _, v := range vs {
		out[v.Invariant] = append(out[v.Invariant], v)
	}
	for _, list := range out {
		slices.SortStableFunc(list, func(a, b Violation) int {
			if a.JobID < b.JobID {
				return -1
			}
			if a.JobID > b.JobID {
				return 1
			}
			return 0
		})
	}
	return out
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// AwaitingStats counts the jobs awaiting payment, their workflows
// running, at each moment a paid job was terminated or cancelled.
type AwaitingStats struct {
	Stops     int // terminations and cancellations of paid jobs
	Min, Max  int // jobs awaiting payment then
	MinParked int // of them, parked jobs
}

// CountAwaiting measures AwaitingStats from the jobs' records.
func CountAwaiting(obs []Observed) AwaitingStats {
	var st AwaitingStats
	for _, s := range obs {
		if s.ActedAt == nil || s.Plan.Act == ActTerminateAwaiting || s.Plan.Act == ActCancelAwaiting ||
			s.Plan.Act == ActRefundByHand || s.Plan.Act == ActRefundAttention || s.Plan.Act == ActNone {
			continue
		}
		t := *s.ActedAt
		all, parked := 0, 0
		for _, o := range obs {
			if awaitingAt(o, t) {
				all++
				if o.Plan.Path == PathParked {
					parked++
				}
			}
		}
		if st.Stops == 0 || all < st.Min {
			st.Min = all
		}
		if st.Stops == 0 || parked < st.MinParked {
			st.MinParked = parked
		}
		st.Max = max(st.Max, all)
		st.Stops++
	}
	return st
}

// awaitingAt: the job was awaiting payment at t, its workflow running.
func awaitingAt(o Observed, t time.Time) bool {
	switch {
	case o.JobID == "" || o.CheckoutAt.IsZero() || o.CheckoutAt.After(t):
		return false
	case o.PendingAt != nil && !o.PendingAt.After(t):
		return false
	case o.FinishedAt != nil && !o.FinishedAt.After(t):
		return false
	case o.ActedAt != nil && o.Plan.Act.terminates() && !o.ActedAt.After(t):
		return false // terminated, even if the sweep has not marked it yet
	}
	return true
}
