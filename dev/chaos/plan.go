// Package chaos runs the whole service under injected faults and checks,
// at the end, the invariants that must hold whatever happened: every paid
// job delivered or refunded exactly once, no refund asked for after one
// was confirmed, no Upsampler submission sent twice, no unpaid job
// processed, no job left past its deadlines, every workflow history under
// a bound computed from the settings, no duplicate emails or integration
// events.
//
// Run starts the real components (PostgreSQL, the Temporal dev server on a
// database file or, in cluster mode, Temporal's four roles on that
// PostgreSQL, stripe-mock behind the stateful Stripe double, the
// Upsampler stand-in, mailpit, an event receiver), the API and the worker
// as processes of a freshly built `hires` binary, parks a thousand unpaid
// jobs, drives hundreds more through them while it kills and restarts
// processes, terminates and cancels jobs, refuses refunds and settles
// delayed payments, and reads back what every component saw. The checks
// themselves (invariants.go) are pure functions of those observations,
// tested without any service.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"hires/dev/upsamplersim"
)

// Path is what the simulated customer does about a job's payment.
type Path string

// Payment paths.
const (
	PathPaid  Path = "paid"  // pays by card within the payment window
	PathLate  Path = "late"  // pays only after the job was abandoned
	PathNever Path = "never" // never pays
	// A bank debit (Checkout completed with payment_status unpaid), then:
	PathDelayed       Path = "delayed"        // async_payment_succeeded within ASYNC_PAYMENT_TIMEOUT
	PathDelayedLate   Path = "delayed-late"   // async_payment_succeeded after it: refunded
	PathDelayedFailed Path = "delayed-failed" // async_payment_failed: nothing charged
	// PathParked jobs are created before the traffic and never paid: they
	// sit awaiting payment, each with a running workflow, while the faults,
	// terminations and cancellations happen, and abandon at PAYMENT_TIMEOUT.
	PathParked Path = "parked"
)

// Paths lists the paths in report order.
var Paths = []Path{PathPaid, PathDelayed, PathLate, PathDelayedLate, PathNever, PathDelayedFailed, PathParked}

// paidPath: the customer's money is taken in time, so the job is made.
func (p Path) paidInTime() bool { return p == PathPaid || p == PathDelayed }

// paidLate: the money comes after the job was given up on.
func (p Path) paidLate() bool { return p == PathLate || p == PathDelayedLate }

// delayed: paid (or not) by a delayed method.
func (p Path) delayed() bool {
	return p == PathDelayed || p == PathDelayedLate || p == PathDelayedFailed
}

// Shares of the (unparked) jobs per path; the rest never pay.
var pathShares = []struct {
	path  Path
	share float64
}{
	{PathPaid, 0.45},
	{PathDelayed, 0.05},
	{PathDelayedLate, 0.04},
	{PathDelayedFailed, 0.03},
	{PathLate, 0.18},
}

// Shares of jobs with a variation of their path.
const (
	shareExpiredEvent = 0.5  // late/never: abandoned by checkout.session.expired, not by the timeout
	shareStaleExpiry  = 0.25 // paid: an expiry of the paid session arrives after the payment
	share8x           = 0.1
)

// Copies is how many times Stripe delivers each event.
const Copies = 3

// Act is what an admin (or Stripe) does to a job besides its payment path.
type Act string

// The acts. Each is planned on jobs whose seeded Upsampler fate makes it
// possible: a slow job is processing long enough to be stopped, a failing
// one is refunded.
const (
	ActNone Act = ""
	// Paid, slow jobs: terminated or cancelled while processing.
	ActTerminateProcessing Act = "terminate-processing"
	ActCancelProcessing    Act = "cancel-processing"
	// Paid jobs that fail at Upsampler, with their refunds refused by Stripe:
	// terminated or cancelled while the refund is being retried (refund
	// failed), after which Stripe accepts refunds again;
	ActTerminateRefunding Act = "terminate-refunding"
	ActCancelRefunding    Act = "cancel-refunding"
	// refunded by hand in the Stripe Dashboard (charge.refunded follows)
	// before REFUND_ATTENTION_AFTER;
	ActRefundByHand Act = "refund-by-hand"
	// or refused until the job needs an admin's attention, who then marks
	// the refund settled (POST /v1/admin/jobs/{id}/refund-settled).
	ActRefundAttention Act = "refund-attention"
	// Parked jobs: terminated or cancelled while awaiting payment.
	ActTerminateAwaiting Act = "terminate-awaiting"
	ActCancelAwaiting    Act = "cancel-awaiting"
)

// Acts lists them in report order.
var Acts = []Act{ActTerminateProcessing, ActCancelProcessing, ActTerminateRefunding, ActCancelRefunding,
	ActRefundByHand, ActRefundAttention, ActTerminateAwaiting, ActCancelAwaiting}

// refused: the plan has Stripe refuse the job's refunds (at first).
func (a Act) refused() bool {
	switch a {
	case ActTerminateRefunding, ActCancelRefunding, ActRefundByHand, ActRefundAttention:
		return true
	}
	return false
}

// terminates: the act terminates the workflow (Temporal runs none of its code).
func (a Act) terminates() bool {
	return a == ActTerminateProcessing || a == ActTerminateRefunding || a == ActTerminateAwaiting
}

// Shares of the candidates that get each act.
var actShares = []struct {
	act   Act
	share float64
}{
	// Of the paid (card) jobs Upsampler will fail:
	{ActRefundByHand, 0.2}, {ActRefundAttention, 0.2}, {ActTerminateRefunding, 0.12}, {ActCancelRefunding, 0.12},
	// of the paid slow ones:
	{ActTerminateProcessing, 0.15}, {ActCancelProcessing, 0.15},
	// of the parked ones:
	{ActTerminateAwaiting, 0.02}, {ActCancelAwaiting, 0.02},
}

// JobPlan is one job's script, drawn from the seed.
type JobPlan struct {
	Index int
	// Key is the job's Idempotency-Key: a creation retried after an outage
	// reuses it, as a real site would.
	Key  string
	Path Path
	Act  Act
	// ExpiredEvent: a late or never-paying job is abandoned by a
	// checkout.session.expired event instead of the payment timeout.
	ExpiredEvent bool
	// StaleExpiry: after a paid job's payment was accepted, an expiry of
	// its session arrives too (an out-of-order event).
	StaleExpiry bool
	// Width and Height are unique per job, so the source image URL (and
	// with it the stand-in's seeded fate) identifies the job.
	Width, Height int
	Resolution    string
	// Fate is what the stand-in will do with the job's image.
	Fate upsamplersim.Fate
	// CreateAt is when, from the start of the traffic, the site creates
	// it (parked jobs: created before, in order).
	CreateAt time.Duration
	// PayAfter is how long after its creation a paying job is paid (for a
	// delayed method: Checkout completed unpaid).
	PayAfter time.Duration
	// SettleAfter is how long after a delayed payment's Checkout that
	// Stripe settles it (PathDelayed, PathDelayedFailed).
	SettleAfter time.Duration
	// ActAt is when, from the start of the traffic, a parked job's act is
	// done; other acts follow the job's state.
	ActAt time.Duration
}

// Factor is the upscale factor of the plan's resolution.
func (p JobPlan) Factor() int {
	if p.Resolution == "8x" {
		return 8
	}
	return 4
}

// ImagePath is the job's source image on the sample site.
func (p JobPlan) ImagePath() string { return fmt.Sprintf("/images/%dx%d.png", p.Width, p.Height) }

// NewPlan scripts n jobs, created evenly over spread, and parked more
// before them, from seed and the stand-in's behaviour b (whose fates decide
// which jobs can be stopped while processing or refused a refund): parked
// jobs stay parked throughout, and the admins terminate or cancel a few
// more (their shares of parked). Counts are exact (rounded shares),
// assigned in a seeded order, so that two runs with the same seed and
// sizes do the same things.
func NewPlan(seed int64, n, parked int, spread time.Duration, b upsamplersim.Behavior) []JobPlan {
	r := rand.New(rand.NewPCG(uint64(seed), 0x6368616f73)) // "chaos"
	paths := pathList(n)
	r.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	plans := make([]JobPlan, n+parked+stoppedParked(parked))
	for i := range plans {
		p := JobPlan{
			Index: i,
			Key:   fmt.Sprintf("chaos-%d-%05d", seed, i),
			Path:  PathParked,
			// Small, unique sizes (60 widths per height): upscaling costs
			// CPU this machine shares with everything else.
			Width: 100 + i%60, Height: 100 + i/60,
			Resolution:  "4x",
			PayAfter:    500*time.Millisecond + time.Duration(r.Int64N(int64(6*time.Second))),
			SettleAfter: 10*time.Second + time.Duration(r.Int64N(int64(15*time.Second))),
		}
		if i < n {
			p.Path = paths[i]
			p.CreateAt = time.Duration(float64(spread) * float64(i) / float64(max(n, 1)))
		}
		if r.Float64() < share8x {
			p.Resolution = "8x"
		}
		switch {
		case p.Path == PathPaid:
			p.StaleExpiry = r.Float64() < shareStaleExpiry
		case p.Path == PathLate || p.Path == PathNever:
			p.ExpiredEvent = r.Float64() < shareExpiredEvent
		}
		p.Fate = b.Fate(p.ImagePath())
		plans[i] = p
	}
	// A bank debit settled in time must be delivered: trade a failing one
	// for a card payment that Upsampler makes.
	for i := range plans[:n] {
		if plans[i].Path != PathDelayed || !plans[i].Fate.Fail {
			continue
		}
		for j := range plans[:n] {
			if plans[j].Path == PathPaid && !plans[j].Fate.Fail {
				plans[i].Path, plans[j].Path = PathPaid, PathDelayed
				plans[i].StaleExpiry, plans[j].StaleExpiry = plans[j].StaleExpiry, false
				break
			}
		}
	}
	assignActs(r, plans, parked, spread)
	return plans
}

// stoppedParked is how many parked jobs the admins stop, on top of those
// that stay parked.
func stoppedParked(parked int) int {
	n := 0
	for _, s := range actShares {
		if s.act == ActTerminateAwaiting || s.act == ActCancelAwaiting {
			n += actCount(s.share, parked)
		}
	}
	return n
}

// actCount is an act's share of total candidates, rounded, and at least
// one of four or more.
func actCount(share float64, total int) int {
	k := int(float64(total)*share + 0.5)
	if k == 0 && share > 0 && total >= 4 {
		k = 1
	}
	return k
}

// assignActs gives each act its share of its candidates, in a seeded order.
func assignActs(r *rand.Rand, plans []JobPlan, parkedBase int, spread time.Duration) {
	var failing, slow, parked []int
	for i, p := range plans {
		switch {
		case p.Path == PathPaid && p.Fate.Fail:
			failing = append(failing, i)
		case p.Path == PathPaid && p.Fate.Slow:
			slow = append(slow, i)
		case p.Path == PathParked:
			parked = append(parked, i)
		}
	}
	for _, list := range [][]int{failing, slow, parked} {
		r.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	take := func(list *[]int, share float64, total int) []int {
		k := min(actCount(share, total), len(*list))
		out := (*list)[:k]
		*list = (*list)[k:]
		return out
	}
	nFailing, nSlow := len(failing), len(slow)
	var awaiting []int
	for _, s := range actShares {
		var picked []int
		switch s.act {
		case ActRefundByHand, ActRefundAttention, ActTerminateRefunding, ActCancelRefunding:
			picked = take(&failing, s.share, nFailing)
		case ActTerminateProcessing, ActCancelProcessing:
			picked = take(&slow, s.share, nSlow)
		default:
			picked = take(&parked, s.share, parkedBase)
			awaiting = append(awaiting, picked...)
		}
		for _, i := range picked {
			plans[i].Act = s.act
		}
	}
	// Parked jobs are stopped over the traffic's spread, in index order.
	slices.Sort(awaiting)
	for k, i := range awaiting {
		plans[i].ActAt = 5*time.Second + time.Duration(float64(spread)*float64(k)/float64(max(len(awaiting), 1)))
	}
}

// pathList has the exact number of jobs of each path, unshuffled.
func pathList(n int) []Path {
	out := make([]Path, 0, n)
	for _, s := range pathShares {
		k := min(int(float64(n)*s.share+0.5), n-len(out))
		for range k {
			out = append(out, s.path)
		}
	}
	for len(out) < n {
		out = append(out, PathNever)
	}
	return out
}
