package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"hires/dev/historycost"
)

// write saves bench.json, bench.md and the growth plots in dir.
func write(dir string, r *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(Markdown(r)), 0o644); err != nil {
		return err
	}
	return plotGrowth(dir, r.Growth)
}

// Markdown renders the results as README-ready tables.
func Markdown(r *Results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	p("Measured %s on %s, %d cores, %s RAM, Linux %s, %s; `make bench` took %s.\n\n",
		r.Started.Format("2006-01-02"), m.CPU, m.Cores, m.Memory, m.Kernel, m.Go, r.Took)

	p("#### Targets\n\n| figure | this run | target | met |\n|---|---:|---|---|\n")
	for _, t := range r.Targets {
		p("| %s | %g | %s | %s |\n", t.Name, t.Value, t.Goal, yesNo(t.Met))
	}

	p("\n#### `POST /v1/jobs` next to its unavoidable round trips (Checkout Session at stripe-mock + insert + workflow start, measured alone)\n\n")
	p("| concurrency | requests | API p50 ms | API p99 ms | round trips p50 ms | round trips p99 ms | ratio p50 | ratio p99 |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.Create {
		p("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", l.Concurrency, l.API.N, l.API.P50, l.API.P99,
			l.RoundTrips.P50, l.RoundTrips.P99, l.RatioP50, l.RatioP99)
	}

	w := r.Webhook
	p("\n#### Stripe webhook and payment to submit\n\n| figure | n | p50 ms | p99 ms |\n|---|---:|---:|---:|\n")
	p("| `POST /v1/webhooks/stripe` (checkout.session.completed), concurrency %d | %d | %.1f | %.1f |\n", w.Concurrency, w.API.N, w.API.P50, w.API.P99)
	p("| bare `SignalWorkflow`, same concurrency | %d | %.1f | %.1f |\n", w.Signal.N, w.Signal.P50, w.Signal.P99)
	p("| ratio | | %.2f | %.2f |\n", w.RatioP50, w.RatioP99)
	p("| payment webhook sent -> stand-in receives the job, same concurrency | %d | %.1f | %.1f |\n", r.PaymentToSubmit.N, r.PaymentToSubmit.P50, r.PaymentToSubmit.P99)
	q := r.PaymentToSubmitQuiet
	p("| payment webhook sent -> stand-in receives the job, one payment at a time | %d | %.1f | %.1f |\n", q.N, q.P50, q.P99)

	t := r.Throughput
	p("\n#### Sustained lifecycles (create, pay, upscale, deliver, expire after %s), %d jobs at concurrency %d\n\n", r.Settings["DOWNLOAD_TTL"], t.Jobs, t.Concurrency)
	p("| workflow | lifecycles/s |\n|---|---:|\n| ImageJob (the service, end to end) | %.2f |\n| baseline (same activities, signals, timers; no work) | %.2f |\n| ratio | %.2f |\n",
		t.PerSecond, t.Baseline, t.Ratio)

	p("\n#### Temporal cost per job, counted from this run's histories\n\n| path | history events | billable actions |\n|---|---:|---:|\n")
	for _, c := range r.Costs {
		p("| %s | %d | %d |\n", c.Path, c.Events, c.Actions)
	}
	if len(r.Costs) > 0 {
		p("\nThe happy path's actions, one by one:\n\n")
		b.WriteString(actionTable(r.Costs[0].Report))
	}

	p("\n#### Growth with parked jobs (awaiting payment, or paid and waiting for their download to expire)\n\n")
	p("| parked | POST p50 ms | POST p99 ms | webhook p50 ms | webhook p99 ms | pay->submit p99 ms | worker RSS MiB | API RSS MiB | Temporal RSS MiB | PostgreSQL PSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range r.Growth {
		p("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", g.Parked, g.Create.P50, g.Create.P99,
			g.Webhook.P50, g.Webhook.P99, g.PaymentToSubmit.P99, g.Memory.WorkerRSS, g.Memory.APIRSS, g.Memory.TemporalRSS, g.Memory.PostgresTotal)
	}

	p("\n#### Reconciliation sweep with parked jobs (one `FindOrphans` call, limit 200, no grace: list the running workflows, read every owed row, describe the candidates; median of %d calls)\n\n", sweepRuns)
	p("| parked | running workflows | owed rows | candidates | described | orphans | total ms | list running ms | read owed ms | describe ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, g := range r.Growth {
		w := g.Sweep
		if w.Error != "" {
			p("| %d | failed: %s | | | | | | | | |\n", g.Parked, strings.ReplaceAll(w.Error, "|", "/"))
			continue
		}
		p("| %d | %d | %d | %d | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", g.Parked, w.Running, w.Owed, w.Candidates,
			w.Described, w.Orphans, w.TotalMS, w.ListRunningMS, w.ReadOwedMS, w.DescribeMS)
	}
	return b.String()
}

// actionTable lists each billable event with the rule that bills it.
func actionTable(rep historycost.Report) string {
	var b strings.Builder
	b.WriteString("| # | event | what | actions |\n|---:|---|---|---:|\n")
	for i, it := range rep.Items {
		fmt.Fprintf(&b, "| %d | %s | %s | %d |\n", i+1, it.Kind, strings.ReplaceAll(it.Detail, "|", "/"), it.Count)
	}
	return b.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// machine describes the host from /proc.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown CPU"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.Memory = fmt.Sprintf("%.0f GiB", kib(v)/1024)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
