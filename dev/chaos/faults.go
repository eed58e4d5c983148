package chaos

import (
	"context"
	"fmt"
	"time"
)

// FaultKind names a fault.
type FaultKind string

// The faults a run injects.
const (
	FaultWorkerKill FaultKind = "worker SIGKILL + restart"
	FaultAPIRestart FaultKind = "API SIGKILL + restart"
	FaultPostgres   FaultKind = "PostgreSQL restart"
	FaultTemporal   FaultKind = "Temporal restart"
	// On a cluster, Temporal's roles fail one at a time, as a node would.
	FaultHistoryKill  FaultKind = "Temporal history SIGKILL + restart"
	FaultMatchingKill FaultKind = "Temporal matching SIGKILL + restart"
)

// FaultKinds lists the dev server's faults in report order.
var FaultKinds = []FaultKind{FaultWorkerKill, FaultAPIRestart, FaultPostgres, FaultTemporal}

// ClusterFaultKinds lists a cluster's faults in report order.
var ClusterFaultKinds = []FaultKind{FaultWorkerKill, FaultAPIRestart, FaultPostgres, FaultHistoryKill, FaultMatchingKill}

// Mode is the shape of the run's Temporal.
type Mode string

// The two modes: the dev server (one process, SQLite), or the production
// shape (frontend, history, matching and worker processes on the run's
// PostgreSQL).
const (
	ModeDevServer Mode = "dev server"
	ModeCluster   Mode = "cluster"
)

// FaultKinds lists the mode's faults in report order.
func (m Mode) FaultKinds() []FaultKind {
	if m == ModeCluster {
		return ClusterFaultKinds
	}
	return FaultKinds
}

// Schedule is the mode's fault schedule over window.
func (m Mode) Schedule(window time.Duration) []Fault {
	if m == ModeCluster {
		return ClusterSchedule(window)
	}
	return Schedule(window)
}

// Fault is one scheduled fault: At from the start of the run, and how long
// the component stays down.
type Fault struct {
	Kind FaultKind
	At   time.Duration
	Down time.Duration
}

// Schedule interleaves the faults over window, the time jobs are in flight
// (created, paying, processing, abandoned, paid late): four worker kills
// and one restart each of the API, PostgreSQL and Temporal, never two at
// once.
func Schedule(window time.Duration) []Fault {
	steps := []faultStep{
		{FaultWorkerKill, 0.10, 2 * time.Second},
		{FaultAPIRestart, 0.22, 500 * time.Millisecond},
		{FaultPostgres, 0.34, 3 * time.Second},
		{FaultWorkerKill, 0.46, 2 * time.Second},
		{FaultTemporal, 0.58, 3 * time.Second},
		{FaultWorkerKill, 0.72, 2 * time.Second},
		{FaultWorkerKill, 0.88, time.Second},
	}
	return spreadOver(window, steps)
}

// faultStep is a fault at a fraction of the window.
type faultStep struct {
	kind FaultKind
	frac float64
	down time.Duration
}

func spreadOver(window time.Duration, steps []faultStep) []Fault {
	out := make([]Fault, len(steps))
	for i, s := range steps {
		out[i] = Fault{Kind: s.kind, At: time.Duration(float64(window) * s.frac).Round(100 * time.Millisecond), Down: s.down}
	}
	return out
}

// ClusterSchedule interleaves a cluster's faults over window: four worker
// kills, one restart each of the API and PostgreSQL (Temporal's
// persistence too), and, in place of the dev server's restart, a SIGKILL
// of Temporal's history process and, later, of its matching process,
// never two at once.
func ClusterSchedule(window time.Duration) []Fault {
	return spreadOver(window, []faultStep{
		{FaultWorkerKill, 0.08, 2 * time.Second},
		{FaultAPIRestart, 0.18, 500 * time.Millisecond},
		{FaultPostgres, 0.28, 3 * time.Second},
		{FaultWorkerKill, 0.40, 2 * time.Second},
		{FaultHistoryKill, 0.50, 3 * time.Second},
		{FaultWorkerKill, 0.62, 2 * time.Second},
		{FaultMatchingKill, 0.72, 3 * time.Second},
		{FaultWorkerKill, 0.86, time.Second},
	})
}

// FaultRecord is a fault as it happened.
type FaultRecord struct {
	Fault
	Started time.Duration // from the start of the run
	Took    time.Duration // until the component was started again
	Err     error
}

// runFaults injects the schedule, each at its time from start.
func (s *stack) runFaults(ctx context.Context, start time.Time, faults []Fault, log func(string, ...any)) []FaultRecord {
	var out []FaultRecord
	for _, f := range faults {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(start.Add(f.At))):
		}
		begun := time.Now()
		err := s.inject(ctx, f)
		rec := FaultRecord{Fault: f, Started: begun.Sub(start), Took: time.Since(begun), Err: err}
		log("fault %-26s at %6s, back after %s%s", f.Kind, rec.Started.Round(100*time.Millisecond),
			rec.Took.Round(100*time.Millisecond), errSuffix(err))
		out = append(out, rec)
	}
	return out
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (error: " + err.Error() + ")"
}

// inject causes one fault and starts the component again after f.Down.
func (s *stack) inject(ctx context.Context, f Fault) error {
	switch f.Kind {
	case FaultWorkerKill:
		return s.bounce(ctx, s.worker, f.Down)
	case FaultAPIRestart:
		return s.bounce(ctx, s.api, f.Down)
	case FaultPostgres:
		return s.pg.Restart(ctx, f.Down)
	case FaultTemporal:
		if s.temporal == nil {
			return fmt.Errorf("%s: no dev server in this run", f.Kind)
		}
		return s.temporal.Restart(ctx, f.Down)
	case FaultHistoryKill:
		return s.crashRole(ctx, "history", f.Down)
	case FaultMatchingKill:
		return s.crashRole(ctx, "matching", f.Down)
	}
	return fmt.Errorf("unknown fault %q", f.Kind)
}

// crashRole SIGKILLs one of Temporal's roles and starts it again after
// down, returning once the cluster serves requests again.
func (s *stack) crashRole(ctx context.Context, role string, down time.Duration) error {
	if s.cluster == nil {
		return fmt.Errorf("%s SIGKILL: no cluster in this run", role)
	}
	return s.cluster.Crash(ctx, role, down)
}

// bounce SIGKILLs a service and starts it again after down.
func (s *stack) bounce(ctx context.Context, svc *service, down time.Duration) error {
	svc.kill()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	return svc.start()
}
