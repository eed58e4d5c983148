// Package bench measures the service on the real local stack (PostgreSQL,
// the Temporal dev server, stripe-mock, the Upsampler stand-in answering at
// once, the API and the worker as processes of the real binary) and puts
// every figure next to a baseline measured in the same run. `make bench`
// runs it; it reports targets met or missed and never fails on a figure.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"hires/dev/historycost"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/temporalclient"
)

// Config sizes a run.
type Config struct {
	OutDir string // where bench.json, bench.md and the plots go
	// Parked is how many running jobs the memory figures are taken at; the
	// growth series stops at 1/10, 1/4, 1/2 and all of it.
	Parked int
	// Requests per concurrency level for the POST /v1/jobs figures.
	Requests int
	Levels   []int
	// Webhooks paid at WebhookConcurrency for the webhook figures.
	Webhooks           int
	WebhookConcurrency int
	// QuietPayments are then paid one at a time for the payment-to-submit figure.
	QuietPayments int
	// Lifecycles driven at LifecycleConcurrency for the throughput figures.
	Lifecycles           int
	LifecycleConcurrency int
	Progress             io.Writer
}

// Results is everything one run measured.
type Results struct {
	Machine         Machine       `json:"machine"`
	Config          Config        `json:"config"`
	Started         time.Time     `json:"started"`
	Took            string        `json:"took"`
	Create          []CreateLevel `json:"create_job"`
	Webhook         WebhookResult `json:"stripe_webhook"`
	PaymentToSubmit Latency       `json:"payment_to_submit"`
	// PaymentToSubmitQuiet is the same, one payment at a time.
	PaymentToSubmitQuiet Latency           `json:"payment_to_submit_one_at_a_time"`
	Throughput           Throughput        `json:"throughput"`
	Costs                []PathCost        `json:"temporal_costs"`
	Growth               []Checkpoint      `json:"growth"`
	Targets              []Target          `json:"targets"`
	Settings             map[string]string `json:"settings"`

	outDir string
}

// CreateLevel is POST /v1/jobs at one concurrency, next to its round trips.
type CreateLevel struct {
	Concurrency int     `json:"concurrency"`
	API         Latency `json:"api"`
	RoundTrips  Latency `json:"round_trips"`
	RatioP50    float64 `json:"ratio_p50"`
	RatioP99    float64 `json:"ratio_p99"`
}

// WebhookResult is the Stripe webhook's answer time next to a bare signal.
type WebhookResult struct {
	Concurrency int     `json:"concurrency"`
	API         Latency `json:"api"`
	Signal      Latency `json:"bare_signal"`
	RatioP50    float64 `json:"ratio_p50"`
	RatioP99    float64 `json:"ratio_p99"`
}

// Throughput is whole lifecycles per second, ours and the baseline's.
type Throughput struct {
	Jobs        int     `json:"jobs"`
	Concurrency int     `json:"concurrency"`
	PerSecond   float64 `json:"jobs_per_second"`
	Baseline    float64 `json:"baseline_per_second"`
	Ratio       float64 `json:"ratio"`
}

// PathCost is what one path of a job costs on Temporal.
type PathCost struct {
	Path       string             `json:"path"`
	WorkflowID string             `json:"workflow_id"`
	Events     int                `json:"history_events"`
	Actions    int                `json:"actions"`
	Report     historycost.Report `json:"report"`
}

// Checkpoint is the figures taken with a number of jobs parked.
type Checkpoint struct {
	Parked          int     `json:"parked_workflows"`
	Create          Latency `json:"create_job"`
	Webhook         Latency `json:"stripe_webhook"`
	PaymentToSubmit Latency `json:"payment_to_submit"`
	Memory          Memory  `json:"memory"`
	Sweep           Sweep   `json:"reconcile_sweep"`
}

// Sweep is one reconciliation sweep (activities.FindOrphans, as the
// Reconcile workflow runs it) with the jobs parked: what it saw and how
// long each part took, in milliseconds; the median of sweepRuns calls.
type Sweep struct {
	Running       int     `json:"running_workflows"`
	Owed          int     `json:"owed_rows"`
	Candidates    int     `json:"candidates"`
	Described     int     `json:"described"`
	Orphans       int     `json:"orphans"`
	TotalMS       float64 `json:"total_ms"`
	ListRunningMS float64 `json:"list_running_ms"`
	ReadOwedMS    float64 `json:"read_owed_ms"`
	DescribeMS    float64 `json:"describe_ms"`
	// Error is why the sweep failed, if it did; the run goes on.
	Error string `json:"error,omitempty"`
}

// Target is one goal and whether this run met it.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
}

// Machine is what the figures were measured on.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// settings are the service's for the latency and lifecycle phases: a short
// download life so that a whole lifecycle takes seconds.
func settings() map[string]string {
	return map[string]string{
		"PAYMENT_TIMEOUT":      "24h",
		"DOWNLOAD_TTL":         "2s",
		"EXPIRY_REMINDER_LEAD": "1s",
		"RETRY_WINDOW":         "1s", // a failed job's workflow ends soon after its refund
		"RATE_LIMIT_CREATE":    "100000000",
		"RATE_LIMIT_DOWNLOAD":  "100000000",
		"RATE_LIMIT_PAGE":      "100000000",
	}
}

// Run measures everything and writes the results to cfg.OutDir.
func Run(ctx context.Context, cfg Config) (_ *Results, err error) {
	r := &Results{Config: cfg, Started: time.Now().UTC(), Machine: machine(), Settings: settings(), outDir: cfg.OutDir}
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "bench: [%s] "+format+"\n", append([]any{time.Since(r.Started).Round(time.Second)}, args...)...)
	}
	dir, err := os.MkdirTemp("", "hires-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { // the components' output stays for a look when something broke
		if err != nil {
			err = fmt.Errorf("%w (the components' output is in %s)", err, filepath.Join(dir, "stack.log"))
			return
		}
		os.RemoveAll(dir)
	}()
	logf, err := os.Create(filepath.Join(dir, "stack.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	say("starting the local stack")
	s, err := startStack(ctx, dir, r.Settings, logf)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	c, err := temporalclient.Dial(s.TemporalAddress, "default", slog.New(slog.NewTextHandler(logf, nil)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	bw := newBaselineWorker(c)
	if err := bw.Start(); err != nil {
		return nil, err
	}
	defer bw.Stop()
	st, err := store.Open(ctx, s.Env["DATABASE_URL"])
	if err != nil {
		return nil, err
	}
	defer st.Close()
	d, err := newDriver(s, c, st)
	if err != nil {
		return nil, err
	}

	say("POST /v1/jobs at concurrency %v, %d requests each", cfg.Levels, cfg.Requests)
	unpaid, parked, err := measureCreate(ctx, d, cfg, r)
	if err != nil {
		return nil, err
	}
	say("Stripe webhooks: %d at concurrency %d", cfg.Webhooks, cfg.WebhookConcurrency)
	if err := measureWebhooks(ctx, d, cfg, r, unpaid, parked); err != nil {
		return nil, err
	}
	say("lifecycles: %d at concurrency %d, then the baseline", cfg.Lifecycles, cfg.LifecycleConcurrency)
	happy, err := measureThroughput(ctx, d, cfg, r)
	if err != nil {
		return nil, err
	}
	say("%.2f lifecycles/s, baseline %.2f/s", r.Throughput.PerSecond, r.Throughput.Baseline)
	say("Temporal actions per path")
	if err := measureCosts(ctx, d, r, happy); err != nil {
		return nil, err
	}
	say("parking up to %d jobs", cfg.Parked)
	if err := measureGrowth(ctx, d, cfg, r, say); err != nil {
		return nil, err
	}
	r.Targets = targets(r)
	r.Took = time.Since(r.Started).Round(time.Second).String()
	return r, write(cfg.OutDir, r)
}

// measureCreate times the API against its unavoidable round trips at each
// level; it returns the jobs created (unpaid) and the parked workflows.
func measureCreate(ctx context.Context, d *driver, cfg Config, r *Results) (unpaid, parked []string, err error) {
	var mu sync.Mutex
	warm := 20
	if err := parallel(ctx, warm, 4, func(ctx context.Context, _ int) error {
		_, _, err := d.createJob(ctx)
		if err == nil {
			_, _, err = d.roundTrips(ctx)
		}
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("warm-up: %w", err)
	}
	for _, level := range cfg.Levels {
		var api, base samples
		// Each step makes one request and its round trips, in alternating
		// order, so both see the same load.
		if err := parallel(ctx, cfg.Requests, level, func(ctx context.Context, i int) error {
			return inTurn(i, func() error {
				wf, took, err := d.roundTrips(ctx)
				base.add(took)
				mu.Lock()
				parked = append(parked, wf)
				mu.Unlock()
				return err
			}, func() error {
				id, took, err := d.createJob(ctx)
				api.add(took)
				mu.Lock()
				unpaid = append(unpaid, id)
				mu.Unlock()
				return err
			})
		}); err != nil {
			return nil, nil, err
		}
		a, b := api.summary(), base.summary()
		r.Create = append(r.Create, CreateLevel{Concurrency: level, API: a, RoundTrips: b,
			RatioP50: ratio(a.P50, b.P50), RatioP99: ratio(a.P99, b.P99)})
	}
	return unpaid, parked, nil
}

// measureWebhooks pays jobs through the Stripe webhook and signals parked
// workflows directly, at the same concurrency.
func measureWebhooks(ctx context.Context, d *driver, cfg Config, r *Results, unpaid, parked []string) error {
	n := min(cfg.Webhooks, len(unpaid), len(parked))
	sessions := make([]paidSession, n)
	for i := range n {
		s, err := d.paidSession(ctx, unpaid[i])
		if err != nil {
			return err
		}
		sessions[i] = paidSession{id: unpaid[i], s: s}
	}
	var hook, sig samples
	if err := parallel(ctx, n, cfg.WebhookConcurrency, func(ctx context.Context, i int) error {
		return inTurn(i, func() error {
			took, err := d.signalParked(ctx, parked[i])
			sig.add(took)
			return err
		}, func() error {
			took, err := d.payWebhook(ctx, sessions[i].s)
			hook.add(took)
			return err
		})
	}); err != nil {
		return err
	}
	a, b := hook.summary(), sig.summary()
	r.Webhook = WebhookResult{Concurrency: cfg.WebhookConcurrency, API: a, Signal: b,
		RatioP50: ratio(a.P50, b.P50), RatioP99: ratio(a.P99, b.P99)}
	ids := make([]string, n)
	for i, s := range sessions {
		ids[i] = s.id
	}
	p2s, err := d.paymentToSubmit(ctx, ids)
	if err != nil {
		return err
	}
	r.PaymentToSubmit = summarize(p2s)

	// Then one payment at a time, once the burst has settled: the latency a
	// single customer sees.
	quietIDs := unpaid[n:min(n+cfg.QuietPayments, len(unpaid))]
	for len(quietIDs) < cfg.QuietPayments {
		id, _, err := d.createJob(ctx)
		if err != nil {
			return err
		}
		quietIDs = append(quietIDs, id)
	}
	time.Sleep(10 * time.Second)
	var quiet []time.Duration
	for _, id := range quietIDs {
		s, err := d.paidSession(ctx, id)
		if err != nil {
			return err
		}
		if _, err := d.payWebhook(ctx, s); err != nil {
			return err
		}
		one, err := d.paymentToSubmit(ctx, []string{id})
		if err != nil {
			return err
		}
		quiet = append(quiet, one...)
	}
	r.PaymentToSubmitQuiet = summarize(quiet)
	return nil
}

// measureThroughput drives whole lifecycles, ours then the baseline's, and
// returns one completed job's workflow ID.
func measureThroughput(ctx context.Context, d *driver, cfg Config, r *Results) (string, error) {
	var happy string
	var once sync.Once
	start := time.Now()
	if err := parallel(ctx, cfg.Lifecycles, cfg.LifecycleConcurrency, func(ctx context.Context, _ int) error {
		id, err := d.lifecycle(ctx)
		once.Do(func() { happy = id })
		return err
	}); err != nil {
		return "", err
	}
	ours := float64(cfg.Lifecycles) / time.Since(start).Seconds()

	in, err := baselineFor(ctx, d, happy)
	if err != nil {
		return "", err
	}
	d.baseline = in
	start = time.Now()
	if err := parallel(ctx, cfg.Lifecycles, cfg.LifecycleConcurrency, func(ctx context.Context, _ int) error {
		_, err := d.baselineLifecycle(ctx, in)
		return err
	}); err != nil {
		return "", err
	}
	base := float64(cfg.Lifecycles) / time.Since(start).Seconds()
	r.Throughput = Throughput{Jobs: cfg.Lifecycles, Concurrency: cfg.LifecycleConcurrency,
		PerSecond: round2(ours), Baseline: round2(base), Ratio: ratio(ours, base)}
	return happy, nil
}

// baselineFor sizes the baseline from a real happy-path history.
func baselineFor(ctx context.Context, d *driver, jobID string) (BaselineInput, error) {
	h, err := history(ctx, d.temporal, jobs.WorkflowID(jobID))
	if err != nil {
		return BaselineInput{}, err
	}
	acts := 0
	for _, e := range h.Events {
		if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			acts++
		}
	}
	ttl, _ := time.ParseDuration(d.s.Env["DOWNLOAD_TTL"])
	lead, _ := time.ParseDuration(d.s.Env["EXPIRY_REMINDER_LEAD"])
	return BaselineInput{Activities: acts - 1, PaymentTimeout: 24 * time.Hour, PollInterval: 30 * time.Second,
		ReminderAfter: ttl - lead, ExpireAfter: lead}, nil
}

type paidSession struct {
	id string
	s  payments.Session
}

func round2(v float64) float64 { return ratio(v, 1) }

// inTurn runs a and b, a first on even steps and b first on odd ones.
func inTurn(i int, a, b func() error) error {
	if i%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}
