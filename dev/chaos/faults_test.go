package chaos

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSchedule(t *testing.T) {
	for _, window := range []time.Duration{time.Minute, 115 * time.Second, 10 * time.Minute} {
		faults := Schedule(window)
		kinds := map[FaultKind]int{}
		for i, f := range faults {
			kinds[f.Kind]++
			assert.Positive(t, f.At, "%s: while jobs are in flight, not before", f.Kind)
			assert.Less(t, f.At, window, "%s: inside the window", f.Kind)
			if i > 0 {
				prev := faults[i-1]
				// The previous outage is over (restart included) well before the next.
				assert.GreaterOrEqual(t, f.At-prev.At-prev.Down, 4*time.Second, "window %s: %s too close to %s", window, f.Kind, prev.Kind)
			}
		}
		assert.GreaterOrEqual(t, kinds[FaultWorkerKill], 3, "the worker is killed at least 3 times")
		assert.Equal(t, 1, kinds[FaultAPIRestart])
		assert.Equal(t, 1, kinds[FaultPostgres])
		assert.Equal(t, 1, kinds[FaultTemporal])
	}
}

// A cluster's schedule keeps the dev server's faults but its restart, and
// kills history and matching instead, each once, apart from each other and
// from PostgreSQL's restart (which takes Temporal's persistence away too).
func TestClusterSchedule(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window time.Duration
	}{
		{"shortest window the settings allow", time.Minute},
		{"20 jobs", 20*time.Second + 4*time.Minute + 15*time.Second},
		{"300 jobs", time.Minute + 4*time.Minute + 15*time.Second},
		{"long", 10 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			faults := ClusterSchedule(tt.window)
			kinds := map[FaultKind]int{}
			at := map[FaultKind]time.Duration{}
			for i, f := range faults {
				kinds[f.Kind]++
				at[f.Kind] = f.At
				assert.Positive(t, f.At, "%s: while jobs are in flight, not before", f.Kind)
				assert.Less(t, f.At, tt.window, "%s: inside the window", f.Kind)
				assert.Positive(t, f.Down, "%s: down for a while before it is revived", f.Kind)
				assert.Contains(t, ClusterFaultKinds, f.Kind, "reported")
				if i > 0 {
					prev := faults[i-1]
					assert.GreaterOrEqual(t, f.At-prev.At-prev.Down, 4*time.Second, "%s too close to %s", f.Kind, prev.Kind)
				}
			}
			assert.Equal(t, map[FaultKind]int{
				FaultWorkerKill: 4, FaultAPIRestart: 1, FaultPostgres: 1, FaultHistoryKill: 1, FaultMatchingKill: 1,
			}, kinds)
			assert.Less(t, at[FaultPostgres], at[FaultHistoryKill])
			assert.Less(t, at[FaultHistoryKill], at[FaultMatchingKill])
		})
	}
}

func TestModeSchedule(t *testing.T) {
	window := 5 * time.Minute
	for _, tt := range []struct {
		mode  Mode
		want  []Fault
		kinds []FaultKind
	}{
		{ModeDevServer, Schedule(window), FaultKinds},
		{"", Schedule(window), FaultKinds},
		{ModeCluster, ClusterSchedule(window), ClusterFaultKinds},
	} {
		assert.Equal(t, tt.want, tt.mode.Schedule(window), "mode %q", tt.mode)
		assert.Equal(t, tt.kinds, tt.mode.FaultKinds(), "mode %q", tt.mode)
		for _, f := range tt.mode.Schedule(window) {
			assert.Contains(t, tt.kinds, f.Kind, "mode %q reports every fault it injects", tt.mode)
		}
	}
}

func TestPrerequisiteTools(t *testing.T) {
	assert.Equal(t, []string{"temporal", "stripe-mock", "mailpit"}, prerequisiteTools(ModeDevServer))
	assert.Equal(t, []string{"temporal-server", "temporal-sql-tool", "stripe-mock", "mailpit"}, prerequisiteTools(ModeCluster))
}

// The report names the mode and lists the faults of its schedule as they
// happened, with "-" for a kind that did not happen.
func TestReportPrintsModeAndFaults(t *testing.T) {
	for _, tt := range []struct {
		mode    Mode
		faults  []FaultRecord
		want    []string
		notWant []string
	}{
		{ModeCluster, []FaultRecord{
			{Fault: Fault{Kind: FaultHistoryKill}, Started: 90 * time.Second, Took: 5200 * time.Millisecond},
			{Fault: Fault{Kind: FaultPostgres}, Started: 60 * time.Second, Took: 3400 * time.Millisecond},
		}, []string{
			"chaos run (Temporal: cluster)", "Faults injected (Temporal: cluster)",
			"Temporal history SIGKILL + restart   ×1  at 1m30s (back in 5.2s)",
			"Temporal matching SIGKILL + restart  ×0  -",
			"PostgreSQL restart                   ×1  at 1m0s (back in 3.4s)",
		}, []string{"Temporal restart"}},
		{"", []FaultRecord{
			{Fault: Fault{Kind: FaultTemporal}, Started: 3 * time.Minute, Took: 4700 * time.Millisecond},
		}, []string{
			"chaos run (Temporal: dev server)", "Faults injected (Temporal: dev server)",
			"Temporal restart          ×1  at 3m0s (back in 4.7s)",
		}, []string{"Temporal history", "Temporal matching"}},
	} {
		rep := &Report{Jobs: 1, Seed: 1, Mode: tt.mode, Observed: []Observed{completed()}, Faults: tt.faults}
		var out bytes.Buffer
		rep.Print(&out)
		for _, s := range tt.want {
			assert.Contains(t, out.String(), s, "mode %q", tt.mode)
		}
		for _, s := range tt.notWant {
			assert.NotContains(t, out.String(), s, "mode %q", tt.mode)
		}
	}
}
