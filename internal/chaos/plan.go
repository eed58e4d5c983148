// Package chaos runs the whole service under injected faults and checks,
// at the end, the invariants that must hold whatever happened: every paid
// job delivered or refunded exactly once, no unpaid job processed, no job
// left past its deadlines, no duplicate emails or integration events.
//
// Run starts the real components (PostgreSQL, the Temporal dev server on a
// database file, stripe-mock behind a recording proxy, the Upsampler
// stand-in, mailpit, an event receiver), the API and the worker as
// processes of a freshly built `hires` binary, drives hundreds of jobs
// through them while it kills and restarts processes, and reads back what
// every component saw. The checks themselves (invariants.go) are pure
// functions of those observations, tested without any service.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Path is what the simulated customer does about a job's payment.
type Path string

// Payment paths.
const (
	PathPaid  Path = "paid"  // pays within the payment window
	PathLate  Path = "late"  // pays only after the job was abandoned
	PathNever Path = "never" // never pays
)

// Paths lists the paths in report order.
var Paths = []Path{PathPaid, PathLate, PathNever}

// Shares of jobs per path; the rest never pay.
const (
	sharePaid = 0.55
	shareLate = 0.20
)

// Shares of jobs with a variation of their path.
const (
	shareExpiredEvent = 0.5  // late/never: abandoned by checkout.session.expired, not by the timeout
	shareStaleExpiry  = 0.25 // paid: an expiry of the paid session arrives after the payment
	share8x           = 0.1
)

// Copies is how many times Stripe delivers each event.
const Copies = 3

// JobPlan is one job's script, drawn from the seed.
type JobPlan struct {
	Index int
	// Key is the job's Idempotency-Key: a creation retried after an outage
	// reuses it, as a real site would.
	Key  string
	Path Path
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
	// CreateAt is when, from the start of the run, the site creates it.
	CreateAt time.Duration
	// PayAfter is how long after its creation a paid job is paid.
	PayAfter time.Duration
}

// Factor is the upscale factor of the plan's resolution.
func (p JobPlan) Factor() int {
	if p.Resolution == "8x" {
		return 8
	}
	return 4
}

// NewPlan scripts n jobs from seed, created evenly over spread. Path
// counts are exact (rounded shares), assigned to jobs in a seeded order,
// so that two runs with the same seed and n do the same things.
func NewPlan(seed int64, n int, spread time.Duration) []JobPlan {
	r := rand.New(rand.NewPCG(uint64(seed), 0x6368616f73)) // "chaos"
	paths := pathList(n)
	r.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	plans := make([]JobPlan, n)
	for i := range plans {
		p := JobPlan{
			Index: i,
			Key:   fmt.Sprintf("chaos-%d-%04d", seed, i),
			Path:  paths[i],
			// Small, unique sizes (60 widths per height): upscaling costs
			// CPU this machine shares with everything else.
			Width: 100 + i%60, Height: 100 + i/60,
			Resolution: "4x",
			CreateAt:   time.Duration(float64(spread) * float64(i) / float64(max(n, 1))),
			PayAfter:   500*time.Millisecond + time.Duration(r.Int64N(int64(6*time.Second))),
		}
		if r.Float64() < share8x {
			p.Resolution = "8x"
		}
		switch p.Path {
		case PathPaid:
			p.StaleExpiry = r.Float64() < shareStaleExpiry
		default:
			p.ExpiredEvent = r.Float64() < shareExpiredEvent
		}
		plans[i] = p
	}
	return plans
}

// pathList has the exact number of jobs of each path, unshuffled.
func pathList(n int) []Path {
	paid := int(float64(n)*sharePaid + 0.5)
	late := min(int(float64(n)*shareLate+0.5), n-paid)
	out := make([]Path, 0, n)
	for i := range n {
		switch {
		case i < paid:
			out = append(out, PathPaid)
		case i < paid+late:
			out = append(out, PathLate)
		default:
			out = append(out, PathNever)
		}
	}
	return out
}
