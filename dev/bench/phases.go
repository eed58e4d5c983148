package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"hires/activities"
	"hires/dev/historycost"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// measureCosts counts events and actions from real histories of each path.
func measureCosts(ctx context.Context, d *driver, r *Results, happy string) error {
	abandoned, err := d.abandonedJob(ctx)
	if err != nil {
		return err
	}
	failed, err := d.failedJob(ctx)
	if err != nil {
		return err
	}
	baseline, err := d.baselineLifecycle(ctx, d.baseline)
	if err != nil {
		return err
	}
	for _, p := range []struct{ name, path, workflowID string }{
		{"happy", "happy (paid, delivered, expired)", jobs.WorkflowID(happy)},
		{"abandoned", "abandoned (checkout expired)", jobs.WorkflowID(abandoned)},
		{"failed_refunded", "failed and refunded", jobs.WorkflowID(failed)},
		{"baseline", "baseline workflow (no work)", baseline},
	} {
		h, err := history(ctx, d.temporal, p.workflowID)
		if err != nil {
			return err
		}
		if err := saveHistory(r.outDir, p.name, h); err != nil {
			return err
		}
		rep := historycost.Count(h)
		r.Costs = append(r.Costs, PathCost{Path: p.path, WorkflowID: p.workflowID, Events: rep.Events, Actions: rep.Actions, Report: rep})
	}
	return nil
}

// abandonedJob creates a job whose Checkout Session expires unpaid.
func (d *driver) abandonedJob(ctx context.Context) (string, error) {
	id, _, err := d.createJob(ctx)
	if err != nil {
		return "", err
	}
	if _, err := paysim.Expire(ctx, d.pay, id); err != nil {
		return "", err
	}
	return id, d.waitEnd(ctx, id, jobs.StatusAbandoned)
}

// failedJob pays for a job that Upsampler then fails, so it is refunded.
func (d *driver) failedJob(ctx context.Context) (string, error) {
	b := d.s.Upsampler.Behavior()
	b.FailNext = 1
	if err := d.s.Upsampler.SetBehavior(b); err != nil {
		return "", err
	}
	id, err := d.createAndPay(ctx)
	if err != nil {
		return "", err
	}
	return id, d.waitEnd(ctx, id, jobs.StatusFailed)
}

// waitEnd waits for the job's workflow to end, in status want.
func (d *driver) waitEnd(ctx context.Context, id string, want jobs.Status) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var st jobs.State
	if err := d.temporal.GetWorkflow(ctx, jobs.WorkflowID(id), "").Get(ctx, &st); err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if st.Status != want {
		return fmt.Errorf("job %s ended %s, want %s", id, st.Status, want)
	}
	return nil
}

// growthSteps are the parked counts the growth series is taken at.
func growthSteps(parked int) []int {
	var out []int
	for _, f := range []float64{0.1, 0.25, 0.5, 1} {
		n := int(float64(parked) * f)
		if n > 0 && (len(out) == 0 || n > out[len(out)-1]) {
			out = append(out, n)
		}
	}
	return out
}

// measureGrowth parks jobs (awaiting payment, and a sample paid and waiting
// for their download to expire) and takes the figures at each step.
func measureGrowth(ctx context.Context, d *driver, cfg Config, r *Results, say func(string, ...any)) error {
	// Parked jobs must stay parked: downloads live a day from here on.
	if err := d.s.restart(ctx, map[string]string{"DOWNLOAD_TTL": "24h", "EXPIRY_REMINDER_LEAD": "2h"}); err != nil {
		return err
	}
	const sample, sampleConcurrency, createConcurrency = 50, 4, 16
	for _, target := range growthSteps(cfg.Parked) {
		running, err := d.runningJobs(ctx)
		if err != nil {
			return err
		}
		if running >= target {
			continue // the earlier phases parked this many already
		}
		var create samples
		var ids []string
		idc := make(chan string, max(target-running, 0))
		if err := parallel(ctx, target-running, createConcurrency, func(ctx context.Context, _ int) error {
			id, took, err := d.createJob(ctx)
			create.add(took)
			idc <- id
			return err
		}); err != nil {
			return err
		}
		close(idc)
		for id := range idc {
			ids = append(ids, id)
		}
		ids = ids[:min(sample, len(ids))]
		var hook samples
		if err := parallel(ctx, len(ids), sampleConcurrency, func(ctx context.Context, i int) error {
			s, err := d.paidSession(ctx, ids[i])
			if err != nil {
				return err
			}
			took, err := d.payWebhook(ctx, s)
			hook.add(took)
			return err
		}); err != nil {
			return err
		}
		p2s, err := d.paymentToSubmit(ctx, ids)
		if err != nil {
			return err
		}
		time.Sleep(5 * time.Second) // let the paid sample settle before reading memory
		if running, err = d.runningJobs(ctx); err != nil {
			return err
		}
		cp := Checkpoint{Parked: running, Create: create.summary(), Webhook: hook.summary(),
			PaymentToSubmit: summarize(p2s), Memory: d.s.memory()}
		cp.Sweep = d.sweep(ctx)
		r.Growth = append(r.Growth, cp)
		say("%d jobs parked: worker %.0f MiB, API %.0f MiB, Temporal %.0f MiB; POST p50 %.1f ms; sweep %.0f ms (%d running, %d owed, %d candidates)%s",
			cp.Parked, cp.Memory.WorkerRSS, cp.Memory.APIRSS, cp.Memory.TemporalRSS, cp.Create.P50,
			cp.Sweep.TotalMS, cp.Sweep.Running, cp.Sweep.Owed, cp.Sweep.Candidates, errNote(cp.Sweep.Error))
	}
	return nil
}

// sweepRuns is how many sweeps each checkpoint times; it reports the median.
const sweepRuns = 3

// sweep times the reconciliation sweep's search as the Reconcile workflow
// runs it (limit 200), with no grace so that it reads every owed row,
// including the jobs parked a moment ago. A failure is reported, not
// returned: the bench never fails on a figure.
func (d *driver) sweep(ctx context.Context) Sweep {
	var runs []activities.SweepStats
	for range sweepRuns {
		_, st, err := activities.FindOrphansTimed(ctx, d.temporal, d.store, activities.FindOrphansInput{Limit: 200})
		if err != nil {
			return Sweep{Error: err.Error()}
		}
		runs = append(runs, st)
	}
	slices.SortFunc(runs, func(a, b activities.SweepStats) int { return cmp.Compare(a.Total, b.Total) })
	st := runs[len(runs)/2]
	return Sweep{Running: st.Running, Owed: st.Owed, Candidates: st.Candidates, Described: st.Described,
		Orphans: st.Orphans, TotalMS: ms(st.Total), ListRunningMS: ms(st.ListRunning), ReadOwedMS: ms(st.ReadOwed),
		DescribeMS: ms(st.Describe)}
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

// runningJobs counts the job workflows still running.
func (d *driver) runningJobs(ctx context.Context) (int, error) {
	resp, err := d.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", jobs.WorkflowName),
	})
	if err != nil {
		return 0, fmt.Errorf("count running jobs: %w", err)
	}
	return int(resp.GetCount()), nil
}

// targets compares the figures with the goals.
func targets(r *Results) []Target {
	var worstP50, worstP99 float64
	for _, l := range r.Create {
		worstP50, worstP99 = max(worstP50, l.RatioP50), max(worstP99, l.RatioP99)
	}
	var happyActions, workerRSS float64
	if len(r.Costs) > 0 {
		happyActions = float64(r.Costs[0].Actions)
	}
	if len(r.Growth) > 0 {
		workerRSS = r.Growth[len(r.Growth)-1].Memory.WorkerRSS
	}
	return []Target{
		{"POST /v1/jobs p50 / round trips p50 (worst level)", worstP50, "<= 1.5", worstP50 <= 1.5},
		{"POST /v1/jobs p99 / round trips p99 (worst level)", worstP99, "<= 1.5", worstP99 <= 1.5},
		{"Stripe webhook p50 / bare signal p50", r.Webhook.RatioP50, "<= 1.3", r.Webhook.RatioP50 <= 1.3},
		{"Stripe webhook p99 / bare signal p99", r.Webhook.RatioP99, "<= 1.3", r.Webhook.RatioP99 <= 1.3},
		{"payment to submit p99, one payment at a time (ms)", r.PaymentToSubmitQuiet.P99, "< 100", r.PaymentToSubmitQuiet.N > 0 && r.PaymentToSubmitQuiet.P99 < 100},
		{fmt.Sprintf("payment to submit p99, %d payments at concurrency %d (ms)", r.PaymentToSubmit.N, r.Webhook.Concurrency), r.PaymentToSubmit.P99, "< 100", r.PaymentToSubmit.P99 < 100},
		{"lifecycles/s / baseline lifecycles/s", r.Throughput.Ratio, ">= 0.7", r.Throughput.Ratio >= 0.7},
		{"Temporal actions, happy path", happyActions, "<= 15", happyActions <= 15},
		{fmt.Sprintf("worker RSS with %d jobs parked (MiB)", lastParked(r)), workerRSS, "< 150", workerRSS < 150},
	}
}

func lastParked(r *Results) int {
	if len(r.Growth) == 0 {
		return 0
	}
	return r.Growth[len(r.Growth)-1].Parked
}
