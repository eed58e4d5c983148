package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// writeScale saves cluster.json and cluster.md in dir.
func writeScale(dir string, r *ScaleResults) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cluster.md"), []byte(ScaleMarkdown(r)), 0o644)
}

// ScaleMarkdown renders a scale run as README-ready tables.
func ScaleMarkdown(r *ScaleResults) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m, c := r.Machine, r.Config
	state := "took " + r.Took
	if !r.Complete {
		state = "stopped early after " + r.Took
		if r.Stopped != "" {
			state += " (" + cell(r.Stopped) + ")"
		} else {
			state = "was still running (" + r.Took + " in)"
		}
	}
	p("Measured %s on %s, %d cores, %s RAM, Linux %s, %s; `make bench-cluster` %s.\n\n",
		r.Started.Format("2006-01-02"), m.CPU, m.Cores, m.Memory, m.Kernel, m.Go, state)

	parking := "no parked checkpoints"
	if len(c.Parked) > 0 && slices.Contains(c.Temporals, TemporalCluster) {
		parking = fmt.Sprintf("parked checkpoints %s on the cluster, created at concurrency %d in rounds of %d, with %s, %d jobs timed one at a time at each",
			joinInts(c.Parked), c.ParkConcurrency, c.ParkAhead, parkedWorkers(c), c.Samples)
	}
	p("Settings: %s; worker processes %s; %d lifecycles per worker count at concurrency %d, after %d not counted; %s.\n\n",
		strings.Join(c.Temporals, " then "), joinInts(c.Workers), c.Lifecycles, c.Concurrency, c.Warmup, parking)
	p("The service runs with %s (the workers' capacities, `WORKER_MAX_CONCURRENT_*` and `WORKER_STICKY_CACHE_SIZE`, at their defaults); both Temporals with %s; the cluster has %d history shards and keeps its databases on the app's PostgreSQL (`max_connections` %d), whose data is throw-away (fsync off).\n\n",
		envList(r.Settings), strings.Join(r.ServerTuning, ", "), r.HistoryShards, r.PostgresMaxConnections)
	if len(r.Versions) > 0 {
		p("| component | version |\n|---|---|\n")
		keys := make([]string, 0, len(r.Versions))
		for k := range r.Versions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("| %s | %s |\n", k, cell(r.Versions[k]))
		}
		p("\n")
	}
	if len(r.Stacks) > 0 {
		var parts []string
		for _, s := range r.Stacks {
			parts = append(parts, fmt.Sprintf("%s %.0f s", s.Temporal, s.StartSeconds))
		}
		p("Stack start-up (PostgreSQL, Temporal, the other components): %s.\n\n", strings.Join(parts, ", "))
	}

	p("#### Sustained lifecycles (create, pay, upscale, deliver, expire after %s), by Temporal and worker processes\n\n", r.Settings["DOWNLOAD_TTL"])
	p("| Temporal | workers | lifecycles | lifecycles/s | create p50 ms | create p90 ms | create p99 ms | payment->completed p50 ms | p90 ms | p99 ms | webhook p50 ms | webhook p99 ms | failed | load average |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Runs {
		p("| %s | %d | %d | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n", x.Temporal, x.Workers, x.Lifecycles,
			x.PerSecond, x.Create.P50, x.Create.P90, x.Create.P99, x.PaymentToCompleted.P50, x.PaymentToCompleted.P90,
			x.PaymentToCompleted.P99, x.Webhook.P50, x.Webhook.P99, failed(x.Errors, x.FirstError), x.LoadAverage)
	}
	for _, x := range r.Runs {
		if x.WarmupErrors > 0 {
			p("\n%s, %d worker(s): %d of the warm-up's lifecycles failed (%s).\n", x.Temporal, x.Workers, x.WarmupErrors, cell(x.WarmupFirstError))
		}
	}
	var slow []string
	for _, x := range r.Runs {
		if x.Slowest != nil {
			slow = append(slow, fmt.Sprintf("%s, %d worker(s): %s", x.Temporal, x.Workers, slowLine(x.Slowest)))
		}
	}
	b.WriteString(slowList(slow))
	b.WriteString(cpuTable(r.Runs))

	if len(r.Parked) > 0 {
		b.WriteString(parkedTables(r))
	}
	return b.String()
}

// cpuTable is the CPU seconds of each group over each run's counted
// lifecycles, with the cores they kept busy, then the cluster's roles.
func cpuTable(runs []ScaleRun) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	var groups []string
	for _, x := range runs {
		for _, u := range x.CPU {
			if !slices.Contains(groups, u.Group) {
				groups = append(groups, u.Group)
			}
		}
	}
	b.WriteString("\nCPU seconds used during the counted lifecycles (cores kept busy on average), from /proc; \"rest of the machine\" is every other process on it:\n\n")
	b.WriteString("| Temporal | workers | wall s | " + strings.Join(groups, " | ") + " | CPU ms per lifecycle |\n")
	b.WriteString("|---|---:|---:|" + strings.Repeat("---:|", len(groups)+1) + "\n")
	for _, x := range runs {
		fmt.Fprintf(&b, "| %s | %d | %.1f |", x.Temporal, x.Workers, x.Seconds)
		var stack float64 // the service's own processes and Temporal
		for _, g := range groups {
			i := slices.IndexFunc(x.CPU, func(u CPUUse) bool { return u.Group == g })
			if i < 0 {
				b.WriteString(" |")
				continue
			}
			u := x.CPU[i]
			fmt.Fprintf(&b, " %.1f (%.2f) |", u.Seconds, u.Cores)
			if g == groupTemporal || g == groupWorkers || g == groupAPI || g == groupPostgres {
				stack += u.PerLifecycleMS
			}
		}
		fmt.Fprintf(&b, " %.0f |\n", stack)
	}
	b.WriteString("\n(CPU ms per lifecycle counts Temporal, the workers, the API and PostgreSQL.)\n")

	var roles []string
	for _, x := range runs {
		for _, u := range x.TemporalRoles {
			if !slices.Contains(roles, u.Group) {
				roles = append(roles, u.Group)
			}
		}
	}
	if len(roles) == 0 {
		return b.String()
	}
	b.WriteString("\nThe cluster's CPU seconds by role:\n\n| workers | " + strings.Join(roles, " | ") + " |\n|---:|" + strings.Repeat("---:|", len(roles)) + "\n")
	for _, x := range runs {
		if len(x.TemporalRoles) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %d |", x.Workers)
		for _, role := range roles {
			i := slices.IndexFunc(x.TemporalRoles, func(u CPUUse) bool { return u.Group == role })
			if i < 0 {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(&b, " %.1f |", x.TemporalRoles[i].Seconds)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// parkedTables are the databases, memory and latencies at each checkpoint.
func parkedTables(r *ScaleResults) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	p("\n#### Jobs parked on the cluster (awaiting payment), created through the API at concurrency %d with %s\n\n", c.ParkConcurrency, parkedWorkers(c))
	p("Jobs are parked in rounds of %d; each round waits until the stack has caught up with the jobs before (the round's last jobs have run their first workflow task, visibility lists all but half a round as running, at most half a round of outbox messages is due): the parking rate is the rate the cluster takes parked jobs. ", c.ParkAhead)
	p("The first row is before any was parked (the jobs of the lifecycle runs are kept by Temporal's retention); growth per job is counted from it. ")
	p("Settled: the time until the parked jobs' work was done (their job.created events delivered from the outbox, the task queue's backlog worked off), with the messages still due when the wait gave up (30 minutes) and the task queue's approximate backlog then (Temporal counts tasks of finished work until they reach the queue's head).\n\n")
	p("| parked | running workflows (visibility) | parking rate jobs/s | settled s | unsettled | reported backlog | temporal MiB | temporal_visibility MiB | hires MiB | total MiB | growth KiB per parked job | PostgreSQL connections |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Parked {
		d := x.Databases
		p("| %d | %d | %s | %.0f | %d | %d | %.1f | %.1f | %.1f | %.1f | %s | %d |\n", x.Parked, x.Running, orDash(x.ParkRate, "%.1f"),
			x.SettleSeconds, x.Unsettled, x.ReportedBacklog, d.Temporal, d.Visibility, d.App, d.Total, orDash(x.PerJobKiB, "%.2f"), x.Connections)
	}

	var names []string
	for _, x := range r.Parked {
		for _, m := range x.Memory {
			if !slices.Contains(names, m.Name) {
				names = append(names, m.Name)
			}
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return memoryRank(a) - memoryRank(b) })
	p("\nResident memory (MiB; PostgreSQL: PSS of the server and its backends):\n\n| parked | %s |\n|---:|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	for _, x := range r.Parked {
		p("| %d |", x.Parked)
		for _, n := range names {
			i := slices.IndexFunc(x.Memory, func(m ProcMem) bool { return m.Name == n })
			switch {
			case i < 0:
				b.WriteString(" |")
			case x.Memory[i].PSS > 0:
				p(" %.1f |", x.Memory[i].PSS)
			default:
				p(" %.1f |", x.Memory[i].RSS)
			}
		}
		b.WriteString("\n")
	}

	p("\nLatency at each level, %d jobs one at a time (created, paid, followed to completion):\n\n", c.Samples)
	p("| parked | n | create p50 ms | create p90 ms | create p99 ms | payment->completed p50 ms | p90 ms | p99 ms | failed | parking failures | load average |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, x := range r.Parked {
		p("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n", x.Parked, x.Create.N, x.Create.P50, x.Create.P90,
			x.Create.P99, x.PaymentToCompleted.P50, x.PaymentToCompleted.P90, x.PaymentToCompleted.P99,
			failed(x.Errors, x.FirstError), failed(x.ParkErrors, x.ParkFirstError), x.LoadAverage)
	}
	var slow []string
	for _, x := range r.Parked {
		if x.Slowest != nil {
			slow = append(slow, fmt.Sprintf("%d parked: %s", x.Parked, slowLine(x.Slowest)))
		}
	}
	b.WriteString(slowList(slow))
	return b.String()
}

func parkedWorkers(c ScaleConfig) string {
	n := c.ParkedWorkers
	if n == 0 && len(c.Workers) > 0 {
		n = slices.Max(c.Workers)
	}
	if n == 1 {
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", n)
}

func failed(n int, first string) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d: %s", n, cell(first))
}

// cell keeps a value from breaking a table row.
func cell(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

func orDash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// envList is the settings as KEY=value, sorted.
func envList(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = "`" + k + "=" + env[k] + "`"
	}
	return strings.Join(keys, ", ")
}

// memoryRank orders the memory table's columns: Temporal, the workers, the
// API, PostgreSQL.
func memoryRank(name string) int {
	for i, prefix := range []string{"Temporal", "worker", "API", "PostgreSQL"} {
		if strings.HasPrefix(name, prefix) {
			return i
		}
	}
	return 4
}

// slowList lists the slowest payment->completed of each row.
func slowList(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\nThe slowest payment->completed of each row, with the longest waits in its workflow's history:\n\n- " +
		strings.Join(lines, "\n- ") + "\n"
}

func slowLine(s *SlowJob) string {
	var gaps []string
	for _, g := range s.Gaps {
		gaps = append(gaps, fmt.Sprintf("%s -> %s %.0f ms", g.From, g.To, g.MS))
	}
	line := fmt.Sprintf("%.0f ms (job %s)", s.MS, s.JobID)
	if len(gaps) > 0 {
		line += ": " + strings.Join(gaps, "; ")
	}
	return line
}
