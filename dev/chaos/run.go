package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"hires/dev/upsamplersim"
)

// Options configure a run.
type Options struct {
	// Jobs are driven through the faults; Parked more are created first
	// and never paid.
	Jobs   int
	Parked int
	Seed   int64
	// Mode is the run's Temporal: the dev server (the default) or the
	// cluster, whose roles the faults kill one at a time.
	Mode Mode
	// KeepLogs keeps the run's directory (logs, databases) after a run
	// that passed; a failed run always keeps it.
	KeepLogs bool
	Settings Settings
	// NoFaults runs the same traffic without injecting any fault: a
	// baseline to tell the faults' effects from the load's.
	NoFaults bool
	// Progress receives a line per step and per fault; nil discards them.
	Progress io.Writer
}

// StandInBehavior is how the Upsampler stand-in misbehaves in a run: a
// fifth of the jobs fail, a quarter of the others are slow, every
// callback comes twice, and the answer to the first submission of 15% of
// the images is lost (a 502 or a dropped connection) after the job was
// accepted.
func StandInBehavior(seed int64) upsamplersim.Behavior {
	return upsamplersim.Behavior{
		ProcessingDelay: time.Second, FailRate: 0.2, SlowRate: 0.25, SlowDelay: 8 * time.Second,
		Seed: seed, WebhookRetries: 2, DuplicateWebhooks: true, LoseAnswerRate: 0.15,
	}
}

// Slack is how late a deadline may be met: a SIGKILLed worker's activity
// is retried only when its start-to-close timeout ends (2 minutes for
// Stripe calls), and the outages add their own downtime.
const Slack = 3 * time.Minute

// Report is what a run did and found.
type Report struct {
	Jobs     int
	Parked   int
	Seed     int64
	Mode     Mode
	Dir      string
	Settings Settings
	Behavior upsamplersim.Behavior // of the Upsampler stand-in
	Timings  Timings

	Observed []Observed
	Late     LateStats
	Faults   []FaultRecord
	Drive    DriveStats
	Refunds  RefundStats
	StandIn  StandInStats
	Mail     MailStats
	Events   EventStats
	// EventsRefused first deliveries the receiver refused (then retried);
	// EventsInvalid deliveries with a bad signature or body.
	EventsRefused, EventsInvalid int
	Services                     []ServiceStats
	// Bounds are the history bounds checked; Histories what they saw.
	Bounds    HistoryBounds
	Histories HistoryStats
	Lost      LostAnswers
	// Awaiting counts the jobs awaiting payment (their workflows running)
	// at each moment a paid job was terminated or cancelled.
	Awaiting AwaitingStats
	// LongestMakeup sums up each kind's longest history.
	LongestMakeup map[string]string

	Violations []Violation
}

// Timings split the wall time of a run.
type Timings struct {
	Setup, Park, Traffic, Settle, Check, Total time.Duration
}

// RefundStats count refund calls at the Stripe boundary.
type RefundStats struct {
	Calls    int // POST /v1/refunds received by the double
	Created  int // a refund made
	Replayed int // answered from the idempotency store
	Refused  int // refused by the double (a refusal on demand, already refunded)
	Failed   int // anything else
}

// StandInStats count what the Upsampler stand-in did.
type StandInStats struct {
	Jobs, Failed, Slow int
}

// ServiceStats count a process's lives.
type ServiceStats struct {
	Name      string
	Starts    int
	SelfExits int // exits no fault caused (restarted by the supervisor)
}

// Run brings the stack up, drives the plan through the fault schedule,
// waits for every job to settle and checks the invariants. The error is
// about the run itself (a component that would not start); broken
// invariants are in the report.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	began := time.Now()
	logf := progress(o.Progress, began)
	dir, err := os.MkdirTemp("", "hires-chaos-")
	if err != nil {
		return nil, err
	}
	if o.Mode == "" {
		o.Mode = ModeDevServer
	}
	rep = &Report{Jobs: o.Jobs, Parked: o.Parked, Seed: o.Seed, Mode: o.Mode, Dir: dir, Settings: o.Settings, Behavior: StandInBehavior(o.Seed)}
	defer func() {
		if o.KeepLogs || err != nil || len(rep.Violations) > 0 {
			logf("logs and data kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	logf("starting PostgreSQL, Temporal (%s), stripe-mock, mailpit, the stand-in; building hires", o.Mode)
	st, err := startStack(ctx, dir, o.Mode, o.Settings, rep.Behavior, o.Seed)
	if err != nil {
		return nil, fmt.Errorf("start the stack: %w", err)
	}
	defer st.stop()
	rep.Timings.Setup = time.Since(began)

	spread := max(20*time.Second, time.Duration(o.Jobs)*200*time.Millisecond)
	plan := NewPlan(o.Seed, o.Jobs, o.Parked, spread, rep.Behavior)
	faults := o.Mode.Schedule(spread + o.Settings.PaymentTimeout + 15*time.Second)
	if o.NoFaults {
		faults = nil
	}
	rep.Bounds = NewHistoryBounds(o.Settings, HistoryInputs{
		Copies: Copies, CallbackCopies: callbackCopies(rep.Behavior), WebhookRetries: rep.Behavior.WebhookRetries,
		Faults: len(faults), Lossy: rep.Behavior.LoseAnswerRate > 0,
	})
	d := newDriver(st, o.Settings, o.Seed, plan, logf)
	parked := len(plan) - o.Jobs
	logf("stack up; parking %d unpaid jobs (%d for the admins to stop), %d at a time", parked, parked-o.Parked, parkConcurrency)
	parkStart := time.Now()
	d.park(ctx)
	rep.Timings.Park = time.Since(parkStart)
	logf("%d jobs parked in %s; %d jobs over %s, %d faults", parked, rep.Timings.Park.Round(time.Second), o.Jobs, spread, len(faults))

	trafficStart := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep.Faults = st.runFaults(ctx, trafficStart, faults, logf)
	}()
	d.run(ctx, trafficStart)
	wg.Wait()
	rep.Timings.Traffic = time.Since(trafficStart)

	logf("traffic done; waiting for every job to settle")
	settleStart := time.Now()
	if err := d.awaitSettled(ctx, time.Now().Add(Slack+time.Minute)); err != nil {
		logf("%v", err) // the invariants report each job
	}
	// A notification lost with a killed worker is retried after its
	// one-minute start-to-close timeout.
	d.awaitNotified(ctx, time.Now().Add(2*time.Minute))
	rep.Timings.Settle = time.Since(settleStart)

	checkStart := time.Now()
	if err := d.check(ctx, rep); err != nil {
		return rep, fmt.Errorf("read back the results: %w", err)
	}
	rep.Timings.Check = time.Since(checkStart)
	rep.Timings.Total = time.Since(began)
	return rep, nil
}

// awaitNotified gives emails and events, sent in the background, time to
// arrive: until nothing expected is missing, or the deadline.
func (d *driver) awaitNotified(ctx context.Context, deadline time.Time) {
	for {
		obs, err := d.observe(ctx, false)
		mails, merr := d.st.mails(ctx)
		ds, _, _ := d.st.hooks.deliveries()
		missing := 0
		if err == nil && merr == nil {
			ev, _ := CheckEmails(mails, obs)
			vv, _ := CheckEvents(ds, obs)
			for _, v := range append(ev, vv...) {
				if v.Invariant == InvNotified {
					missing++
				}
			}
			if missing == 0 {
				return
			}
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 3*time.Second) {
			return
		}
	}
}

// check reads everything back and applies the invariants.
func (d *driver) check(ctx context.Context, rep *Report) error {
	sleepCtx(ctx, 3*time.Second) // let stray repeats land before counting
	obs, err := d.observe(ctx, true)
	if err != nil {
		return err
	}
	mails, err := d.st.mails(ctx)
	if err != nil {
		return fmt.Errorf("read the emails: %w", err)
	}
	ds, refused, invalid := d.st.hooks.deliveries()
	lim := Limits{PaymentTimeout: d.settings.PaymentTimeout, ProcessingTimeout: d.settings.ProcessingTimeout,
		LostAnswerWait: d.settings.LostAnswerWait, Slack: Slack, Histories: rep.Bounds, Now: time.Now()}

	rep.Observed = obs
	rep.Violations, rep.Late = CheckJobs(obs, lim)
	rep.Histories, rep.Lost, rep.Awaiting = CollectHistories(obs), CountLostAnswers(obs), CountAwaiting(obs)
	// The longest histories are kept in the run's directory, summed up in the report.
	rep.LongestMakeup = map[string]string{}
	for kind, h := range rep.Histories.Longest {
		path := filepath.Join(rep.Dir, "longest-"+kind+"-history.json")
		makeup, err := keepHistory(ctx, d.st.tc, h.WorkflowID, path)
		if err != nil {
			makeup = "not read: " + err.Error()
		}
		rep.LongestMakeup[kind] = makeup
	}
	ev, mailStats := CheckEmails(mails, obs)
	vv, eventStats := CheckEvents(ds, obs)
	rep.Violations = append(append(rep.Violations, ev...), vv...)
	rep.Mail, rep.Events, rep.EventsRefused, rep.EventsInvalid = mailStats, eventStats, refused, invalid
	if invalid > 0 {
		rep.Violations = append(rep.Violations, Violation{InvEvents, "", fmt.Sprintf("%d deliveries with a bad signature or body", invalid)})
	}
	d.mu.Lock()
	rep.Drive = d.stats
	d.mu.Unlock()
	rep.Refunds = d.st.refundStats()
	rep.StandIn = standInStats(d.st.standIn)
	for _, svc := range []*service{d.st.api, d.st.worker} {
		starts, exits := svc.counts()
		rep.Services = append(rep.Services, ServiceStats{Name: svc.name, Starts: starts, SelfExits: exits})
	}
	return nil
}

func (s *stack) refundStats() RefundStats {
	var st RefundStats
	for _, c := range s.stripe.Calls() {
		if c.Method != "POST" || c.Path != "/v1/refunds" {
			continue
		}
		st.Calls++
		switch {
		case c.Replayed:
			st.Replayed++
		case c.Forwarded && c.Status == 200:
			st.Created++
		case !c.Forwarded && c.Status == 400:
			st.Refused++
		default:
			st.Failed++
		}
	}
	return st
}

// callbackCopies is how many callbacks the stand-in sends per job.
func callbackCopies(b upsamplersim.Behavior) int {
	if b.DuplicateWebhooks {
		return 2
	}
	return 1
}

func standInStats(s *upsamplersim.Server) StandInStats {
	b := s.Behavior()
	var st StandInStats
	for _, j := range s.Jobs() {
		st.Jobs++
		f := b.Fate(j.InputImageURL)
		if f.Fail {
			st.Failed++
		}
		if f.Slow {
			st.Slow++
		}
	}
	return st
}

// progress returns a logger of timestamped lines (relative to began).
func progress(w io.Writer, began time.Time) func(string, ...any) {
	var mu sync.Mutex
	return func(format string, args ...any) {
		if w == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "[%6s] %s\n", time.Since(began).Round(time.Second), fmt.Sprintf(format, args...))
	}
}
