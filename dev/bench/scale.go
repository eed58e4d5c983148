package bench

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"hires/internal/jobs"
	"hires/internal/store"
	"hires/internal/temporalclient"
)

// The Temporals a scale run can measure.
const (
	TemporalDev     = "dev"     // temporal server start-dev: one process, SQLite in memory
	TemporalCluster = "cluster" // frontend, history, matching and worker on PostgreSQL
)

// ScaleConfig sizes a scale run (dev/cmd/bench-cluster).
type ScaleConfig struct {
	OutDir string `json:"-"`
	// Temporals are measured in this order, each on a fresh stack.
	Temporals []string `json:"temporals"`
	// Workers are the counts of `hires worker` processes measured on each.
	Workers []int `json:"workers"`
	// Lifecycles are driven at Concurrency for each worker count, after
	// Warmup lifecycles that are not counted.
	Lifecycles  int `json:"lifecycles"`
	Concurrency int `json:"concurrency"`
	Warmup      int `json:"warmup"`
	// Parked are the checkpoints (jobs awaiting payment) on the cluster,
	// created at ParkConcurrency with ParkedWorkers workers in rounds of
	// ParkAhead, each round once the stack has caught up with the one
	// before (so jobs are parked as fast as the cluster takes them, not
	// faster); Samples jobs are timed one at a time at each.
	Parked          []int `json:"parked"`
	ParkConcurrency int   `json:"park_concurrency"`
	ParkAhead       int   `json:"park_ahead"`
	ParkedWorkers   int   `json:"parked_workers"`
	Samples         int   `json:"samples"`

	Progress io.Writer `json:"-"`
}

// ScaleResults is everything a scale run measured.
type ScaleResults struct {
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Config   ScaleConfig       `json:"config"`
	// Settings are the service's; ServerTuning is both Temporals' extra
	// dynamic config; the cluster has 16 history shards.
	Settings      map[string]string `json:"settings"`
	ServerTuning  []string          `json:"temporal_dynamic_config"`
	HistoryShards int               `json:"cluster_history_shards"`
	// PostgresMaxConnections is the server's max_connections, which the
	// cluster's roles, the workers and the API share.
	PostgresMaxConnections int       `json:"postgres_max_connections"`
	Started                time.Time `json:"started"`
	Took                   string    `json:"took"`
	// Complete is false while the run goes on, or when it stopped early
	// (Stopped says why); what was measured until then is kept.
	Complete bool    `json:"complete"`
	Stopped  string  `json:"stopped,omitempty"`
	Stacks   []Stack `json:"stacks"`
	// Runs are the sustained lifecycles, by Temporal and worker count.
	Runs []ScaleRun `json:"lifecycles"`
	// Parked are the checkpoints on the cluster; the first, at the jobs the
	// earlier phases left, is the baseline the growth is counted from.
	Parked []ParkedCheckpoint `json:"parked"`
}

// Stack is one Temporal's stack: how long it took to start.
type Stack struct {
	Temporal     string  `json:"temporal"`
	StartSeconds float64 `json:"start_seconds"`
}

// ScaleRun is sustained lifecycles on one Temporal with some workers.
type ScaleRun struct {
	Temporal    string  `json:"temporal"`
	Workers     int     `json:"workers"`
	Lifecycles  int     `json:"lifecycles"` // completed and counted
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"lifecycles_per_second"`
	// Create is POST /v1/jobs's answer; Webhook the signed
	// checkout.session.completed's; PaymentToCompleted from sending that
	// webhook to the job's completion (stored result, download ready) as
	// the job record timestamps it.
	Create             Latency `json:"create_job"`
	Webhook            Latency `json:"stripe_webhook"`
	PaymentToCompleted Latency `json:"payment_to_completed"`
	// CPU is each process group's CPU time over the counted lifecycles;
	// TemporalRoles splits the cluster's.
	CPU           []CPUUse `json:"cpu"`
	TemporalRoles []CPUUse `json:"temporal_roles_cpu,omitempty"`
	// LoadAverage is /proc/loadavg when the phase began.
	LoadAverage string `json:"load_average"`
	Errors      int    `json:"errors"`
	FirstError  string `json:"first_error,omitempty"`
	// WarmupErrors are the failed lifecycles of the warm-up.
	WarmupErrors     int    `json:"warmup_errors,omitempty"`
	WarmupFirstError string `json:"warmup_first_error,omitempty"`
	// Slowest is the job with the longest payment->completed.
	Slowest *SlowJob `json:"slowest_payment_to_completed,omitempty"`
}

// ParkedCheckpoint is what was measured with a number of jobs parked.
type ParkedCheckpoint struct {
	// Parked is the jobs awaiting payment that this run created;
	// Running is the running job workflows Temporal's visibility counts
	// (which lags behind the workflows when the history service is busy).
	Parked  int `json:"parked"`
	Running int `json:"running_workflows"`
	// ParkSeconds and ParkRate are the creation of the jobs since the last
	// checkpoint, at the configured concurrency.
	ParkSeconds float64 `json:"park_seconds"`
	ParkRate    float64 `json:"park_jobs_per_second"`
	ParkErrors  int     `json:"park_errors"`
	// ParkFirstError is the first of ParkErrors.
	ParkFirstError string `json:"park_first_error,omitempty"`
	// SettleSeconds is how long the workers then took to do the new jobs'
	// work (see settle), at least 5 s; Unsettled is the outbox's messages
	// still due when it gave up, and ReportedBacklog the task queue's
	// approximate backlog at the end.
	SettleSeconds   float64 `json:"settle_seconds"`
	Unsettled       int64   `json:"unsettled_jobs"`
	ReportedBacklog int64   `json:"reported_backlog"`
	Databases       DBSizes `json:"databases"`
	// PerJobKiB is the databases' growth since the first checkpoint per
	// job parked since then.
	PerJobKiB   float64 `json:"growth_kib_per_parked_job"`
	Connections int     `json:"postgres_connections"`
	// Memory is the resident memory of each process, in MiB.
	Memory []ProcMem `json:"memory"`
	// Create and PaymentToCompleted are Samples jobs created, then paid
	// and followed to completion, one at a time.
	Create             Latency `json:"create_job"`
	PaymentToCompleted Latency `json:"payment_to_completed"`
	LoadAverage        string  `json:"load_average"`
	Errors             int     `json:"errors"`
	FirstError         string  `json:"first_error,omitempty"`
	// Slowest is the sample with the longest payment->completed.
	Slowest *SlowJob `json:"slowest_payment_to_completed,omitempty"`
}

// SlowJob is one job's payment->completed, with the longest waits of its
// workflow's history, to tell queueing from a timeout or a retry.
type SlowJob struct {
	JobID string  `json:"job_id"`
	MS    float64 `json:"payment_to_completed_ms"`
	Gaps  []Gap   `json:"longest_gaps"`
}

// Gap is the time between two consecutive events of a history.
type Gap struct {
	From string  `json:"from"`
	To   string  `json:"to"`
	MS   float64 `json:"ms"`
}

// DBSizes are pg_database_size of each database, in MiB.
type DBSizes struct {
	Temporal   float64 `json:"temporal_mib"`
	Visibility float64 `json:"temporal_visibility_mib"`
	App        float64 `json:"hires_mib"`
	Total      float64 `json:"total_mib"`
}

// ProcMem is one process's resident memory.
type ProcMem struct {
	Name string  `json:"name"`
	RSS  float64 `json:"rss_mib,omitempty"`
	Peak float64 `json:"peak_mib,omitempty"`
	// PSS is used for PostgreSQL (the server and its backends, shared
	// pages split), where RSS would count shared buffers many times.
	PSS float64 `json:"pss_mib,omitempty"`
}

// RunScale measures lifecycles on each Temporal and worker count, and parked
// jobs on the cluster, writing cluster.json and cluster.md to cfg.OutDir
// after every phase. It returns an error only when a stack cannot run (or
// ctx ends); the results measured until then are written either way.
func RunScale(ctx context.Context, cfg ScaleConfig) (_ *ScaleResults, err error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	r := &ScaleResults{Config: cfg, Started: time.Now().UTC(), Machine: machine(), Settings: settings(),
		ServerTuning: serverTuning, HistoryShards: 16}
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "bench-cluster: [%s] "+format+"\n", append([]any{time.Since(r.Started).Round(time.Second)}, args...)...)
	}
	r.Versions = versions(ctx)
	dir, err := os.MkdirTemp("", "hires-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer func() {
		r.Took = time.Since(r.Started).Round(time.Second).String()
		if err != nil {
			r.Stopped = err.Error()
			err = fmt.Errorf("%w (the components' output is in %s)", err, filepath.Join(dir, "stack.log"))
		} else {
			r.Complete = true
			os.RemoveAll(dir)
		}
		if werr := writeScale(cfg.OutDir, r); werr != nil && err == nil {
			err = werr
		}
	}()
	logf, err := os.Create(filepath.Join(dir, "stack.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	for _, mode := range cfg.Temporals {
		if err := scaleOn(ctx, mode, filepath.Join(dir, mode), logf, cfg, r, say); err != nil {
			return r, fmt.Errorf("%s: %w", mode, err)
		}
	}
	return r, nil
}

// scaleOn runs every phase on one Temporal, on a fresh stack.
func scaleOn(ctx context.Context, mode, dir string, logf io.Writer, cfg ScaleConfig, r *ScaleResults,
	say func(string, ...any)) error {
	say("%s: starting the stack", mode)
	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s, err := startStackOn(ctx, dir, r.Settings, logf, mode == TemporalCluster)
	if err != nil {
		return err
	}
	defer s.stop()
	r.Stacks = append(r.Stacks, Stack{Temporal: mode, StartSeconds: round2(time.Since(start).Seconds())})
	if r.Versions["postgresql"] == "" {
		r.Versions["postgresql"], r.PostgresMaxConnections = postgresVersion(ctx, s)
	}
	c, err := temporalclient.Dial(s.TemporalAddress, "default", slog.New(slog.NewTextHandler(logf, nil)))
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := store.Open(ctx, s.Env["DATABASE_URL"])
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := newDriver(s, c, st)
	if err != nil {
		return err
	}
	say("%s: up in %.0fs", mode, time.Since(start).Seconds())

	for _, w := range cfg.Workers {
		if err := s.restartWith(ctx, nil, w); err != nil {
			return err
		}
		say("%s, %d worker(s): %d lifecycles at concurrency %d (after %d to warm up)", mode, w, cfg.Lifecycles, cfg.Concurrency, cfg.Warmup)
		run, err := measureLifecycles(ctx, d, cfg, mode, w)
		if err != nil {
			return err
		}
		r.Runs = append(r.Runs, run)
		if run.WarmupErrors > 0 {
			say("%s, %d worker(s): warm-up%s", mode, w, errorNote(run.WarmupErrors, run.WarmupFirstError))
		}
		say("%s, %d worker(s): %.2f lifecycles/s; create p50 %.0f ms p99 %.0f ms; payment->completed p50 %.0f ms p99 %.0f ms%s",
			mode, w, run.PerSecond, run.Create.P50, run.Create.P99, run.PaymentToCompleted.P50, run.PaymentToCompleted.P99, errorNote(run.Errors, run.FirstError))
		if err := writeScale(cfg.OutDir, r); err != nil {
			return err
		}
	}
	if mode != TemporalCluster || len(cfg.Parked) == 0 {
		return nil
	}
	workers := cfg.ParkedWorkers
	if workers == 0 {
		workers = slices.Max(cfg.Workers)
	}
	if err := s.restartWith(ctx, nil, workers); err != nil {
		return err
	}
	return measureParked(ctx, d, cfg, r, say)
}

// measureLifecycles drives whole lifecycles (create, pay, upscale,
// deliver, expire) and times them, then reads when each job completed.
func measureLifecycles(ctx context.Context, d *driver, cfg ScaleConfig, mode string, workers int) (ScaleRun, error) {
	run := ScaleRun{Temporal: mode, Workers: workers, Concurrency: cfg.Concurrency, LoadAverage: loadAverage()}
	if cfg.Warmup > 0 {
		errs, first, err := tolerant(ctx, cfg.Warmup, min(cfg.Concurrency, cfg.Warmup), cfg.Warmup, func(ctx context.Context, _ int) error {
			_, _, err := d.timedLifecycle(ctx)
			return err
		})
		if err != nil {
			return run, err
		}
		run.WarmupErrors, run.WarmupFirstError = errs, first
	}
	groups := d.s.cpuGroups()
	var creates samples
	var mu sync.Mutex
	var ids []string
	before := takeCPU(groups)
	start := time.Now()
	errs, first, err := tolerant(ctx, cfg.Lifecycles, cfg.Concurrency, max(10, cfg.Lifecycles/10), func(ctx context.Context, _ int) error {
		id, took, err := d.timedLifecycle(ctx)
		if err != nil {
			return err
		}
		creates.add(took)
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return nil
	})
	wall := time.Since(start).Seconds()
	after := takeCPU(groups)
	if err != nil {
		return run, err
	}
	run.Errors, run.FirstError = errs, first
	run.Lifecycles, run.Seconds = len(ids), round2(wall)
	run.PerSecond = round2(float64(len(ids)) / wall)
	run.Create = summarize(creates.d)
	run.CPU = cpuBetween(groups.whole(), before, after, wall, len(ids))
	run.TemporalRoles = cpuParts(groups, before, after, wall, len(ids))
	hooks, done, doneIDs, err := d.completions(ctx, ids)
	if err != nil {
		run.Errors++
		run.FirstError = cmpOr(run.FirstError, err.Error())
	}
	run.Webhook, run.PaymentToCompleted = summarize(hooks), summarize(done)
	run.Slowest = d.slowest(ctx, doneIDs, done)
	return run, nil
}

// timedLifecycle drives one job from creation to the end of its workflow,
// returning its ID and how long POST /v1/jobs took.
func (d *driver) timedLifecycle(ctx context.Context) (string, time.Duration, error) {
	id, took, err := d.createJob(ctx)
	if err != nil {
		return "", 0, err
	}
	s, err := d.paidSession(ctx, id)
	if err != nil {
		return "", 0, err
	}
	hook, err := d.payWebhook(ctx, s)
	if err != nil {
		return "", 0, err
	}
	d.mu.Lock()
	d.hookTook[id] = hook
	d.mu.Unlock()
	return id, took, d.waitCompleted(ctx, id)
}

// waitCompleted waits for a job's workflow to end completed. A transient
// error while waiting (the server timing out or unavailable under load) is
// the wait's, not the job's: it waits on, for up to 5 minutes in all.
func (d *driver) waitCompleted(ctx context.Context, id string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		var st jobs.State
		err := d.temporal.GetWorkflow(wctx, jobs.WorkflowID(id), "").Get(wctx, &st)
		cancel()
		switch {
		case err == nil && st.Status != jobs.StatusCompleted:
			return fmt.Errorf("job %s ended %s, want %s", id, st.Status, jobs.StatusCompleted)
		case err == nil:
			return nil
		case ctx.Err() != nil || time.Now().After(deadline) || !transient(err):
			return fmt.Errorf("job %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// transient tells the errors a wait retries.
func transient(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	var unavailable *serviceerror.Unavailable
	var exhausted *serviceerror.ResourceExhausted
	return errors.As(err, &deadline) || errors.As(err, &unavailable) || errors.As(err, &exhausted) ||
		errors.Is(err, context.DeadlineExceeded)
}

// completions reads, for jobs already completed, how long their payment
// webhook's answer took and the time from sending it to the job's
// completion as the job record has it.
func (d *driver) completions(ctx context.Context, ids []string) (hooks, done []time.Duration, doneIDs []string, err error) {
	for _, id := range ids {
		j, gerr := d.store.Get(ctx, id)
		if gerr != nil || j.ProcessingCompletedAt == nil {
			err = cmpOr(err, fmt.Errorf("job %s: no completion time (%v)", id, gerr))
			continue
		}
		d.mu.Lock()
		paid, hook := d.paidAt[id], d.hookTook[id]
		d.mu.Unlock()
		hooks = append(hooks, hook)
		done = append(done, j.ProcessingCompletedAt.Sub(paid))
		doneIDs = append(doneIDs, id)
	}
	return hooks, done, doneIDs, err
}

// measureParked parks jobs awaiting payment up to each checkpoint and
// measures the databases, the processes' memory and the latencies there.
func measureParked(ctx context.Context, d *driver, cfg ScaleConfig, r *ScaleResults, say func(string, ...any)) error {
	parked := 0
	checkpoint := func(cp ParkedCheckpoint) error {
		settle, unsettled, backlog, err := d.settle(ctx)
		if err != nil {
			return err
		}
		cp.SettleSeconds, cp.Unsettled, cp.ReportedBacklog = round2(settle.Seconds()), unsettled, backlog
		cp.Parked, cp.LoadAverage = parked, loadAverage()
		if n, err := d.runningJobs(ctx); err == nil {
			cp.Running = n
		}
		if cp.Databases, cp.Connections, err = d.s.databases(ctx); err != nil {
			return fmt.Errorf("database sizes: %w", err)
		}
		if len(r.Parked) > 0 && parked > r.Parked[0].Parked {
			grown := cp.Databases.Total - r.Parked[0].Databases.Total
			cp.PerJobKiB = round2(grown * 1024 / float64(parked-r.Parked[0].Parked))
		}
		cp.Memory = d.s.processMemory()
		var creates, done []time.Duration
		var doneIDs []string
		for range cfg.Samples {
			id, c, p, err := d.sampleJob(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				cp.Errors++
				cp.FirstError = cmpOr(cp.FirstError, err.Error())
				continue
			}
			creates, done, doneIDs = append(creates, c), append(done, p), append(doneIDs, id)
		}
		cp.Create, cp.PaymentToCompleted = summarize(creates), summarize(done)
		cp.Slowest = d.slowest(ctx, doneIDs, done)
		r.Parked = append(r.Parked, cp)
		say("%d parked (%d running): databases %.0f MiB (%.2f KiB/job); create p50 %.0f ms; payment->completed p50 %.0f ms p99 %.0f ms%s",
			cp.Parked, cp.Running, cp.Databases.Total, cp.PerJobKiB, cp.Create.P50, cp.PaymentToCompleted.P50, cp.PaymentToCompleted.P99,
			errorNote(cp.Errors, cp.FirstError))
		return writeScale(cfg.OutDir, r)
	}
	say("parked: baseline before parking")
	if err := checkpoint(ParkedCheckpoint{}); err != nil {
		return err
	}
	targets := slices.Clone(cfg.Parked)
	sort.Ints(targets)
	for _, target := range targets {
		need := target - parked
		if need <= 0 {
			continue
		}
		say("parking %d jobs (to %d) at concurrency %d, in rounds of %d", need, target, cfg.ParkConcurrency, cfg.ParkAhead)
		start := time.Now()
		made, errs, first, err := d.park(ctx, need, cfg.ParkConcurrency, cfg.ParkAhead)
		took := time.Since(start).Seconds()
		if err != nil {
			return err
		}
		parked += made
		cp := ParkedCheckpoint{ParkSeconds: round2(took), ParkRate: round2(float64(made) / took), ParkErrors: errs}
		cp.ParkFirstError = first
		say("parked %d in %.0fs (%.1f/s)%s", made, took, cp.ParkRate, errorNote(errs, first))
		if err := checkpoint(cp); err != nil {
			return err
		}
	}
	return nil
}

// park creates n jobs in rounds of ahead jobs; before each round it waits
// until the stack has caught up with the jobs before: the last ones
// created have run their first workflow task, visibility lists all but
// ahead/2 of them as running, and at most ahead/2 outbox messages are due.
// So the rate it reports is the rate the stack takes parked jobs, and a
// checkpoint measures a settled stack, not a queue behind it.
func (d *driver) park(ctx context.Context, n, concurrency, ahead int) (made, errs int, first string, err error) {
	base, err := d.runningJobs(ctx)
	if err != nil {
		return 0, 0, "", fmt.Errorf("park: %w", err)
	}
	maxErrors := max(100, n/100)
	var last []string // the latest jobs created, newest last
	for made < n && errs <= maxErrors {
		if err := d.waitCaughtUp(ctx, last, base+made-ahead/2, int64(ahead/2)); err != nil {
			return made, errs, first, err
		}
		var mu sync.Mutex
		last = last[:0]
		e, f, err := tolerant(ctx, min(ahead, n-made), concurrency, maxErrors-errs, func(ctx context.Context, _ int) error {
			id, _, err := d.createJob(ctx)
			if err == nil {
				mu.Lock()
				made++
				last = append(last, id)
				mu.Unlock()
			}
			return err
		})
		if err != nil {
			return made, errs, first, err
		}
		errs, first = errs+e, cmpOr(first, f)
		last = last[max(0, len(last)-5):]
	}
	return made, errs, first, nil
}

// waitCaughtUp waits, at most 10 minutes, until each workflow of ids has
// run its first workflow task, visibility lists at least running job
// workflows as running, and at most due outbox messages are due.
func (d *driver) waitCaughtUp(ctx context.Context, ids []string, running int, due int64) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		behind, err := d.behind(ctx, ids, running, due)
		if err != nil || behind == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("park: the stack has not caught up after 10 minutes: %s", behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// behind says what the stack has not caught up with yet ("" if nothing).
func (d *driver) behind(ctx context.Context, ids []string, running int, due int64) (string, error) {
	for _, id := range ids {
		resp, err := d.temporal.DescribeWorkflowExecution(ctx, jobs.WorkflowID(id), "")
		if err != nil {
			return "", fmt.Errorf("describe job %s: %w", id, err)
		}
		if resp.GetPendingWorkflowTask() != nil {
			return "job " + id + " has not run its first workflow task", nil
		}
	}
	if n, err := d.runningJobs(ctx); err != nil {
		return "", err
	} else if n < running {
		return fmt.Sprintf("visibility lists %d running jobs, want %d", n, running), nil
	}
	if n, err := d.dueMessages(ctx); err != nil {
		return "", err
	} else if n > due {
		return fmt.Sprintf("%d outbox messages due", n), nil
	}
	return "", nil
}

// sampleJob creates a job, pays it and follows it to completion, returning
// how long POST /v1/jobs took and the time from the payment webhook to the
// job's completion.
func (d *driver) sampleJob(ctx context.Context) (id string, create, done time.Duration, err error) {
	id, create, err = d.createJob(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	s, err := d.paidSession(ctx, id)
	if err != nil {
		return "", 0, 0, err
	}
	if _, err := d.payWebhook(ctx, s); err != nil {
		return "", 0, 0, err
	}
	wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		j, err := d.store.Get(wait, id)
		if err == nil && j.ProcessingCompletedAt != nil {
			d.mu.Lock()
			paid := d.paidAt[id]
			d.mu.Unlock()
			return id, create, j.ProcessingCompletedAt.Sub(paid), nil
		}
		if err == nil && j.Status.Final() && j.Status != jobs.StatusCompleted {
			return "", 0, 0, fmt.Errorf("job %s ended %s", id, j.Status)
		}
		select {
		case <-wait.Done():
			return "", 0, 0, fmt.Errorf("job %s: not completed within 2 minutes of its payment", id)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// errAborted stops a tolerant phase that failed too often.
var errAborted = errors.New("too many failures")

// tolerant runs fn(0..n-1) on c goroutines like parallel, counting
// failures instead of stopping at the first: a figure never fails the run.
// Past maxErrors failures the phase stops early. Only ctx's end is returned
// as an error.
func tolerant(ctx context.Context, n, c, maxErrors int, fn func(ctx context.Context, i int) error) (errs int, first string, err error) {
	var mu sync.Mutex
	err = parallel(ctx, n, c, func(ctx context.Context, i int) error {
		ferr := fn(ctx, i)
		if ferr == nil || ctx.Err() != nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		errs++
		if first == "" {
			first = strings.TrimSpace(ferr.Error())
		}
		if errs > maxErrors {
			return errAborted
		}
		return nil
	})
	if ctx.Err() != nil {
		return errs, first, ctx.Err()
	}
	if errors.Is(err, errAborted) {
		first = fmt.Sprintf("stopped after %d failures; first: %s", errs, first)
	}
	return errs, first, nil
}

func errorNote(n int, first string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d failed (%s)", n, first)
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// ParseCounts reads a list of positive integers separated by commas
// ("1,2,4"; "10000,100_000" and "10k" are accepted too).
func ParseCounts(flag, v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		f = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(f)), "_", "")
		mult := 1
		if t, ok := strings.CutSuffix(f, "k"); ok {
			f, mult = t, 1000
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: want positive integers separated by commas, got %q", flag, v)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// ParseTemporals reads -temporal: "dev", "cluster" or both, in the order given.
func ParseTemporals(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f != TemporalDev && f != TemporalCluster {
			return nil, fmt.Errorf("-temporal: want dev, cluster or dev,cluster, got %q", v)
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("-temporal: %s given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// ErrHelp is ParseScaleFlags's answer to -h.
var ErrHelp = flag.ErrHelp

// ParseScaleFlags reads dev/cmd/bench-cluster's flags; usage and errors go to out.
func ParseScaleFlags(args []string, out io.Writer) (ScaleConfig, error) {
	cfg := ScaleConfig{}
	fs := flag.NewFlagSet("bench-cluster", flag.ContinueOnError)
	fs.SetOutput(out)
	temporals := fs.String("temporal", "dev,cluster", "which Temporals to measure, in order, each on a fresh stack: dev, cluster or both")
	workers := fs.String("workers", "1,2,4", "worker process counts to measure on each Temporal")
	parked := fs.String("parked", "10000,100000", "parked-job checkpoints on the cluster (jobs awaiting payment); \"\" for none")
	fs.StringVar(&cfg.OutDir, "out", "docs/bench", "directory for cluster.json and cluster.md")
	fs.IntVar(&cfg.Lifecycles, "lifecycles", 300, "whole lifecycles counted per worker count")
	fs.IntVar(&cfg.Concurrency, "concurrency", 50, "lifecycles in flight at once")
	fs.IntVar(&cfg.Warmup, "warmup", 20, "lifecycles run, not counted, before each count")
	fs.IntVar(&cfg.ParkConcurrency, "park-concurrency", 16, "POST /v1/jobs in flight at once while parking")
	fs.IntVar(&cfg.ParkAhead, "park-ahead", 400, "jobs parked per round; each round waits until the stack has caught up with the ones before")
	fs.IntVar(&cfg.ParkedWorkers, "parked-workers", 0, "worker processes while parking (0: the largest of -workers)")
	fs.IntVar(&cfg.Samples, "samples", 30, "jobs created, paid and followed to completion one at a time at each checkpoint")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if cfg.Temporals, err = ParseTemporals(*temporals); err != nil {
		return cfg, err
	}
	if cfg.Workers, err = ParseCounts("workers", *workers); err != nil {
		return cfg, err
	}
	if strings.TrimSpace(*parked) != "" {
		if cfg.Parked, err = ParseCounts("parked", *parked); err != nil {
			return cfg, err
		}
	}
	if cfg.Lifecycles < 1 || cfg.Concurrency < 1 || cfg.ParkConcurrency < 1 || cfg.Samples < 1 {
		return cfg, errors.New("-lifecycles, -concurrency, -park-concurrency and -samples must be at least 1")
	}
	if cfg.ParkAhead < 2 {
		return cfg, errors.New("-park-ahead must be at least 2")
	}
	if cfg.Warmup < 0 || cfg.ParkedWorkers < 0 {
		return cfg, errors.New("-warmup and -parked-workers must not be negative")
	}
	return cfg, nil
}

// settle waits until the parked jobs' work is done: the outbox has no
// message due (their job.created events delivered) and the job task
// queue's reported backlog is back to zero (their workflows have run their
// first task), at least 5 s and at most 30 minutes. Temporal's backlog
// count is approximate (it counts tasks of finished work until they reach
// the queue's head), so once the outbox is empty it is given 30 s more,
// then taken as reported. It returns how long that took, the messages
// still due and the backlog last reported.
func (d *driver) settle(ctx context.Context) (took time.Duration, unsettled, backlog int64, err error) {
	start := time.Now()
	minWait, maxWait, grace := 5*time.Second, 30*time.Minute, 30*time.Second
	var settledAt time.Time
	for {
		select {
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		case <-time.After(time.Second):
		}
		waited := time.Since(start)
		if waited < minWait {
			continue
		}
		if unsettled, err = d.dueMessages(ctx); err != nil {
			return 0, 0, 0, err
		}
		if unsettled == 0 && settledAt.IsZero() {
			settledAt = time.Now()
		}
		backlog = d.backlog(ctx)
		switch {
		case unsettled == 0 && backlog == 0, unsettled == 0 && time.Since(settledAt) >= grace, waited >= maxWait:
			return waited, unsettled, max(backlog, 0), nil
		}
	}
}

// dueMessages counts the outbox's messages due and not yet delivered.
func (d *driver) dueMessages(ctx context.Context) (int64, error) {
	n, err := d.store.DueMessages(ctx)
	return int64(n), err
}

// backlog is the job task queue's approximate backlog, workflow and
// activity tasks together; -1 when the server does not report it.
func (d *driver) backlog(ctx context.Context) int64 {
	var n int64
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		resp, err := d.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: jobs.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: typ, ReportStats: true,
		})
		if err != nil || resp.GetStats() == nil {
			return -1
		}
		n += resp.GetStats().GetApproximateBacklogCount()
	}
	return n
}

// slowest describes the job with the longest payment->completed: its
// workflow history's three longest gaps. Reading the history is best effort.
func (d *driver) slowest(ctx context.Context, ids []string, done []time.Duration) *SlowJob {
	if len(ids) == 0 {
		return nil
	}
	i := 0
	for j := range done {
		if done[j] > done[i] {
			i = j
		}
	}
	sj := &SlowJob{JobID: ids[i], MS: ms(done[i])}
	if h, err := history(ctx, d.temporal, jobs.WorkflowID(ids[i])); err == nil {
		sj.Gaps = longestGaps(h, 3)
	}
	return sj
}

// longestGaps are the n longest times between consecutive events of a
// history, longest first (an activity's attempt shows as its scheduled
// event's type, a timer's as TimerStarted).
func longestGaps(h *historypb.History, n int) []Gap {
	ev := h.GetEvents()
	var gaps []Gap
	for i := 1; i < len(ev); i++ {
		gaps = append(gaps, Gap{From: eventName(ev[i-1]), To: eventName(ev[i]),
			MS: ms(ev[i].GetEventTime().AsTime().Sub(ev[i-1].GetEventTime().AsTime()))})
	}
	slices.SortStableFunc(gaps, func(a, b Gap) int { return cmp.Compare(b.MS, a.MS) })
	return gaps[:min(n, len(gaps))]
}

// eventName is an event's type, with the activity's name when scheduled.
func eventName(e *historypb.HistoryEvent) string {
	name := e.GetEventType().String()
	if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
		name += " " + a.GetActivityType().GetName()
	}
	return fmt.Sprintf("#%d %s", e.GetEventId(), name)
}
