package chaos

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"hires/internal/events"
	"hires/internal/jobs"
)

// The invariants, as the report names them.
const (
	InvCreated   = "every job created"
	InvPaid      = "paid jobs delivered or refunded once"
	InvLate      = "late payments refunded once"
	InvUnpaid    = "unpaid jobs never processed"
	InvDeadlines = "no job stuck past its deadlines"
	InvEmails    = "no duplicate emails"
	InvEvents    = "no duplicate integration events"
	InvNotified  = "every outcome notified"
)

// Invariants lists them in report order.
var Invariants = []string{InvCreated, InvPaid, InvLate, InvUnpaid, InvDeadlines, InvEmails, InvEvents, InvNotified}

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
	// PaymentAcceptedAt is when the API first acknowledged one of the job's
	// checkout.session.completed deliveries; nil if the customer never paid.
	PaymentAcceptedAt *time.Time

	// From the job record.
	Status          jobs.Status
	PaymentStatus   jobs.PaymentStatus
	FailureReason   string
	PaymentIntentID string
	RefundedAt      *time.Time
	// From the audit trail: when the job first went to pending (the
	// payment was taken in time; a late payment never gets there) and
	// when it first reached a final status.
	PendingAt  *time.Time
	FinishedAt *time.Time

	// Refunds are the refunds Stripe created for the job (forwarded POST
	// /v1/refunds answered 200; replays of an idempotency key excluded).
	Refunds []Refund
	// Submissions counts submissions the Upsampler stand-in accepted for it.
	Submissions int
	// StandInFails: the stand-in's seeded fate for its image is to fail.
	StandInFails bool
	// Download is the check of a completed job's link; nil if not checked.
	Download *DownloadCheck
}

// Paid reports whether the customer paid (a payment event was accepted).
func (o Observed) Paid() bool { return o.PaymentAcceptedAt != nil }

// Refund is one refund created at Stripe.
type Refund struct {
	PaymentIntentID string
	IdempotencyKey  string
}

// DownloadCheck is the result of fetching a completed job's download.
type DownloadCheck struct {
	HTTPStatus    int
	Width, Height int    // of the decoded image
	Err           string // transport or decoding error
}

// Limits are the deadlines the service promises, and how late is too late.
type Limits struct {
	PaymentTimeout    time.Duration
	ProcessingTimeout time.Duration
	// Slack covers what an outage may add: a killed worker's activity is
	// retried only once its start-to-close timeout passed (2 minutes for
	// Stripe calls).
	Slack time.Duration
	Now   time.Time
}

// CheckJobs applies the per-job invariants: creation, money, processing
// and deadlines. It also measures how late the jobs that did get there
// were: a job slowed down (by the faults, or a busy machine) is not stuck.
func CheckJobs(obs []Observed, lim Limits) ([]Violation, LateStats) {
	var out []Violation
	var late LateStats
	for _, o := range obs {
		if o.JobID == "" {
			out = append(out, Violation{InvCreated, "", fmt.Sprintf("job %d (%s) was never created", o.Plan.Index, o.Plan.Key)})
			continue
		}
		out = append(out, checkMoney(o)...)
		out = append(out, checkDeadlines(o, lim, &late)...)
	}
	return out, late
}

// LateStats count steps taken after their deadline (and its slack).
type LateStats struct {
	Steps int
	Worst time.Duration
}

// checkMoney: a paying customer gets the image or the money back, once; a
// late payer gets the money back, once, and no image; a customer who never
// paid gets nothing and costs nothing.
func checkMoney(o Observed) []Violation {
	v := func(inv, format string, args ...any) Violation {
		return Violation{inv, o.JobID, fmt.Sprintf(format, args...)}
	}
	var out []Violation
	for _, r := range o.Refunds {
		if r.PaymentIntentID != o.PaymentIntentID {
			out = append(out, v(InvPaid, "refund of payment %q, but the job recorded %q", r.PaymentIntentID, o.PaymentIntentID))
		}
	}
	switch {
	case !o.Paid() && o.Plan.Path != PathNever:
		out = append(out, v(InvPaid, "no payment event was ever accepted by the API"))
	case !o.Paid():
		if o.Status != jobs.StatusAbandoned {
			out = append(out, v(InvUnpaid, "never paid but ended %s", o.Status))
		}
		if o.PaymentStatus == jobs.PaymentPaid || o.PaymentStatus == jobs.PaymentRefunded || o.PaymentStatus == jobs.PaymentRefundFailed {
			out = append(out, v(InvUnpaid, "never paid but payment status %s", o.PaymentStatus))
		}
		if o.Submissions > 0 {
			out = append(out, v(InvUnpaid, "never paid but submitted to Upsampler %d times", o.Submissions))
		}
		if len(o.Refunds) > 0 {
			out = append(out, v(InvUnpaid, "never paid but refunded %d times", len(o.Refunds)))
		}
	case o.Plan.Path == PathLate:
		out = append(out, refundedOnce(o, InvLate, v)...)
		if o.Status != jobs.StatusAbandoned {
			out = append(out, v(InvLate, "paid after abandonment but ended %s", o.Status))
		}
		if o.Submissions > 0 {
			out = append(out, v(InvUnpaid, "paid only after abandonment but submitted to Upsampler %d times", o.Submissions))
		}
	case o.Status == jobs.StatusCompleted:
		out = append(out, delivered(o, v)...)
	case o.Status == jobs.StatusFailed || o.Status == jobs.StatusAbandoned:
		out = append(out, refundedOnce(o, InvPaid, v)...)
		if o.Status == jobs.StatusAbandoned && o.Submissions > 0 {
			out = append(out, v(InvUnpaid, "abandoned (its payment came too late) but submitted to Upsampler %d times", o.Submissions))
		}
	default:
		out = append(out, v(InvPaid, "paid but still %s", o.Status))
	}
	return out
}

func refundedOnce(o Observed, inv string, v func(string, string, ...any) Violation) []Violation {
	var out []Violation
	if len(o.Refunds) != 1 {
		out = append(out, v(inv, "ended %s with %d refunds at Stripe, want exactly 1", o.Status, len(o.Refunds)))
	}
	if o.PaymentStatus != jobs.PaymentRefunded {
		out = append(out, v(inv, "ended %s with payment status %s, want refunded", o.Status, o.PaymentStatus))
	}
	return out
}

func delivered(o Observed, v func(string, string, ...any) Violation) []Violation {
	var out []Violation
	if len(o.Refunds) > 0 {
		out = append(out, v(InvPaid, "completed and also refunded %d times", len(o.Refunds)))
	}
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

// Mail is one message the mail catcher received about a job.
type Mail struct {
	JobID     string
	Kind      string // X-Hires-Kind
	Admin     bool   // the admin's copy
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
// told of every outcome that concerns them.
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
	has := func(job, kind string) bool { return len(ids[slot{job, kind, false}]) > 0 }
	for _, o := range obs {
		if o.JobID == "" {
			continue
		}
		if !o.Paid() {
			for _, k := range []string{jobs.EmailPaymentReceived, jobs.EmailImageReady, jobs.EmailFailedRefunded, jobs.EmailExpiringSoon} {
				if has(o.JobID, k) {
					out = append(out, Violation{InvEmails, o.JobID, fmt.Sprintf("%q email to a customer who never paid", k)})
				}
			}
		}
		for _, k := range expectedEmails(o) {
			if !has(o.JobID, k) {
				out = append(out, Violation{InvNotified, o.JobID, fmt.Sprintf("ended %s/%s without a %q email", o.Status, o.PaymentStatus, k)})
			}
		}
	}
	return out, st
}

// expectedEmails are the customer emails a settled job must have had.
func expectedEmails(o Observed) []string {
	var want []string
	if o.PendingAt != nil {
		want = append(want, jobs.EmailPaymentReceived)
	}
	if o.Status == jobs.StatusCompleted {
		want = append(want, jobs.EmailImageReady)
	}
	if o.Paid() && o.PaymentStatus == jobs.PaymentRefunded {
		want = append(want, jobs.EmailFailedRefunded)
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
				out = append(out, Violation{InvNotified, o.JobID, fmt.Sprintf("ended %s without a %s event", o.Status, t)})
			}
		}
	}
	return out, st
}

// expectedEvents are the integration events a settled job must have had.
func expectedEvents(o Observed) []string {
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
