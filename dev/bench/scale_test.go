package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestParseCounts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1,2,4", []int{1, 2, 4}, false},
		{" 1 , 2 ", []int{1, 2}, false},
		{"10000,100_000", []int{10000, 100000}, false},
		{"10k,100K", []int{10000, 100000}, false},
		{"7", []int{7}, false},
		{"", nil, true},
		{"1,,2", nil, true},
		{"0", nil, true},
		{"-1", nil, true},
		{"two", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCounts("workers", tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTemporals(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"dev,cluster", []string{"dev", "cluster"}, false},
		{"cluster, dev", []string{"cluster", "dev"}, false},
		{"cluster", []string{"cluster"}, false},
		{"dev,dev", nil, true},
		{"prod", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTemporals(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseScaleFlags(t *testing.T) {
	defaults := ScaleConfig{OutDir: "docs/bench", Temporals: []string{"dev", "cluster"}, Workers: []int{1, 2, 4},
		Lifecycles: 300, Concurrency: 50, Warmup: 20, Parked: []int{10000, 100000}, ParkConcurrency: 16, ParkAhead: 400, Samples: 30}
	small := defaults
	small.OutDir, small.Workers, small.Lifecycles, small.Parked = "/tmp/x", []int{1, 2}, 60, []int{500, 1000}
	devOnly := defaults
	devOnly.Temporals, devOnly.Parked = []string{"dev"}, nil
	tests := []struct {
		name    string
		args    []string
		want    ScaleConfig
		wantErr string
	}{
		{"defaults", nil, defaults, ""},
		{"small run", []string{"-workers", "1,2", "-lifecycles", "60", "-parked", "500,1000", "-out", "/tmp/x"}, small, ""},
		{"dev only, no parking", []string{"-temporal", "dev", "-parked", ""}, devOnly, ""},
		{"bad temporal", []string{"-temporal", "prod"}, ScaleConfig{}, "-temporal"},
		{"bad workers", []string{"-workers", "0"}, ScaleConfig{}, "-workers"},
		{"bad parked", []string{"-parked", "x"}, ScaleConfig{}, "-parked"},
		{"zero lifecycles", []string{"-lifecycles", "0"}, ScaleConfig{}, "at least 1"},
		{"negative warm-up", []string{"-warmup", "-1"}, ScaleConfig{}, "negative"},
		{"park ahead too small", []string{"-park-ahead", "1"}, ScaleConfig{}, "-park-ahead"},
		{"stray argument", []string{"extra"}, ScaleConfig{}, "unexpected"},
		{"unknown flag", []string{"-nope"}, ScaleConfig{}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScaleFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := ParseScaleFlags([]string{"-h"}, io.Discard); !errors.Is(err, ErrHelp) {
		t.Fatalf("-h: err = %v, want ErrHelp", err)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    procTimes
		wantErr bool
	}{
		{"plain", "42 (postgres) S 7 42 42 0 -1 4194560 100 0 0 0 150 30 5 2 20 0 1 0 100 1000 100",
			procTimes{pid: 42, ppid: 7, comm: "postgres", own: 180, reaped: 7}, false},
		{"name with spaces and parentheses", "9 (temporal (x) y) R 1 9 9 0 -1 0 0 0 0 0 11 22 33 44 20 0 1 0",
			procTimes{pid: 9, ppid: 1, comm: "temporal (x) y", own: 33, reaped: 77}, false},
		{"truncated", "9 (x) R 1 9", procTimes{}, true},
		{"no name", "9 x R 1", procTimes{}, true},
		{"bad number", "9 (x) R 1 9 9 0 -1 0 0 0 0 0 a 22 33 44 20 0 1 0", procTimes{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCPULine(t *testing.T) {
	tests := []struct {
		line    string
		want    uint64
		wantErr bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 5 50 1000 20 3 2 1 40 0", 161, false},
		{"cpu 1 2 3 4", 6, false},
		{"cpu0 1 2 3 4 5", 0, true},
		{"cpu 1 x 3 4", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseCPULine(tt.line)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProcTableTree(t *testing.T) {
	pt := procTable{
		1:  {pid: 1, ppid: 0, own: 1000},
		10: {pid: 10, ppid: 1, own: 50, reaped: 30}, // postmaster, with backends gone
		11: {pid: 11, ppid: 10, own: 5},
		12: {pid: 12, ppid: 10, own: 7, reaped: 1},
		13: {pid: 13, ppid: 12, own: 2},
		20: {pid: 20, ppid: 1, own: 400},
	}
	tests := []struct {
		pid  int
		want uint64
	}{{10, 95}, {11, 5}, {20, 400}, {99, 0}, {1, 1495}}
	for _, tt := range tests {
		if got := pt.tree(tt.pid); got != tt.want {
			t.Errorf("tree(%d) = %d, want %d", tt.pid, got, tt.want)
		}
	}
}

func TestCPUBetween(t *testing.T) {
	groups := cpuGroups{{name: "Temporal"}, {name: "workers"}, {name: "Temporal history", part: true}}
	a := cpuSnapshot{groups: map[string]uint64{"Temporal": 100, "workers": 50, "Temporal history": 40}, self: 10, children: 160, machine: 1000}
	b := cpuSnapshot{groups: map[string]uint64{"Temporal": 300, "workers": 150, "Temporal history": 140}, self: 60, children: 480, machine: 1600}
	got := cpuBetween(groups, a, b, 10, 100)
	want := []CPUUse{
		{Group: "Temporal", Seconds: 2, Cores: 0.2, PerLifecycleMS: 20},
		{Group: "workers", Seconds: 1, Cores: 0.1, PerLifecycleMS: 10},
		{Group: "stripe-mock, mailpit", Seconds: 0.2, Cores: 0.02, PerLifecycleMS: 2},
		{Group: "bench (load, Upsampler stand-in)", Seconds: 0.5, Cores: 0.05, PerLifecycleMS: 5},
		{Group: "rest of the machine", Seconds: 2.3, Cores: 0.23, PerLifecycleMS: 23},
		{Group: "machine total", Seconds: 6, Cores: 0.6, PerLifecycleMS: 60},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cpuBetween =\n%+v\nwant\n%+v", got, want)
	}
	parts := cpuParts(groups, a, b, 10, 100)
	if len(parts) != 1 || parts[0].Group != "Temporal history" || parts[0].Seconds != 1 {
		t.Fatalf("cpuParts = %+v", parts)
	}
	// A counter that went backwards (a restarted process) counts as nothing.
	b.groups["workers"] = 10
	if got := cpuBetween(groups, a, b, 10, 0); got[1].Seconds != 0 {
		t.Fatalf("workers after a restart = %+v, want 0 s", got[1])
	}
}

func TestModuleVersion(t *testing.T) {
	out := "/x/temporal: go1.25.1\n\tpath\tgithub.com/temporalio/cli/cmd/temporal\n\tmod\tgithub.com/temporalio/cli\tv1.5.1\th1:abc=\n" +
		"\tdep\tgo.temporal.io/server\tv1.29.0\th1:def=\n\tdep\tgo.temporal.io/sdk\tv1.35.0\n\t=>\tgo.temporal.io/sdk\tv1.36.0\th1:x=\n"
	tests := []struct{ module, want string }{
		{"github.com/temporalio/cli", "v1.5.1"},
		{"go.temporal.io/server", "v1.29.0"},
		{"go.temporal.io/sdk", "v1.35.0 => go.temporal.io/sdk v1.36.0"},
		{"example.com/absent", ""},
	}
	for _, tt := range tests {
		if got := moduleVersion(out, tt.module); got != tt.want {
			t.Errorf("moduleVersion(%s) = %q, want %q", tt.module, got, tt.want)
		}
	}
}

func TestTolerant(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		n, failEv int // every failEv-th call fails (0: none)
		maxErrors int
		wantErrs  int
		wantFirst string
		wantMaxed bool
	}{
		{"no failures", 20, 0, 5, 0, "", false},
		{"some failures", 20, 5, 5, 4, "boom", false},
		{"too many failures", 100, 1, 3, 4, "stopped after 4 failures; first: boom", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			errs, first, err := tolerant(context.Background(), tt.n, 1, tt.maxErrors, func(context.Context, int) error {
				if c := calls.Add(1); tt.failEv > 0 && c%int64(tt.failEv) == 0 {
					return boom
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if errs != tt.wantErrs || first != tt.wantFirst {
				t.Fatalf("got %d, %q; want %d, %q", errs, first, tt.wantErrs, tt.wantFirst)
			}
			if stopped := calls.Load() < int64(tt.n); stopped != tt.wantMaxed {
				t.Fatalf("%d of %d calls made; stopped early: %v, want %v", calls.Load(), tt.n, stopped, tt.wantMaxed)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := tolerant(ctx, 10, 2, 5, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v, want context.Canceled", err)
	}
}

func TestScaleMarkdown(t *testing.T) {
	r := &ScaleResults{
		Machine: Machine{CPU: "Test CPU", Cores: 2, Memory: "24 GiB", Kernel: "6.1", Go: "go1.26"},
		Config: ScaleConfig{Temporals: []string{"dev", "cluster"}, Workers: []int{1, 2}, Lifecycles: 60, Concurrency: 50,
			Warmup: 20, Parked: []int{500}, ParkConcurrency: 16, ParkAhead: 400, Samples: 30},
		Versions: map[string]string{"Temporal server (cluster)": "v1.29.1", "hires": "abc123"},
		Settings: map[string]string{"DOWNLOAD_TTL": "2s"}, ServerTuning: []string{"a=1"}, HistoryShards: 16,
		Started: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Took: "5m0s", Complete: true,
		Stacks: []Stack{{Temporal: "dev", StartSeconds: 3}, {Temporal: "cluster", StartSeconds: 30}},
		Runs: []ScaleRun{
			{Temporal: "dev", Workers: 1, Lifecycles: 60, Concurrency: 50, Seconds: 12, PerSecond: 5,
				Create: Latency{N: 60, P50: 20, P90: 30, P99: 40}, PaymentToCompleted: Latency{N: 60, P50: 100, P90: 150, P99: 200},
				CPU: []CPUUse{{Group: "Temporal", Seconds: 3, Cores: 0.25, PerLifecycleMS: 50}, {Group: "machine total", Seconds: 20, Cores: 1.67}}},
			{Temporal: "cluster", Workers: 2, Lifecycles: 59, Seconds: 15, PerSecond: 3.93, Errors: 1, FirstError: "HTTP 503 | down",
				CPU:           []CPUUse{{Group: "Temporal", Seconds: 6, Cores: 0.4, PerLifecycleMS: 101.69}},
				TemporalRoles: []CPUUse{{Group: "Temporal history", Seconds: 4}, {Group: "Temporal matching", Seconds: 1}},
				Slowest:       &SlowJob{JobID: "j1", MS: 9000, Gaps: []Gap{{From: "#5 WorkflowTaskStarted", To: "#6 WorkflowTaskTimedOut", MS: 8000}}}},
		},
		Parked: []ParkedCheckpoint{
			{Parked: 0, Running: 3, Databases: DBSizes{Temporal: 10, Visibility: 2, App: 8, Total: 20},
				Memory: []ProcMem{{Name: "Temporal history", RSS: 80}, {Name: "PostgreSQL", PSS: 60}}},
			{Parked: 500, Running: 503, ParkRate: 40, SettleSeconds: 61, Unsettled: 4, ReportedBacklog: 12, ParkErrors: 2, ParkFirstError: "HTTP 503", ParkSeconds: 12.5, Databases: DBSizes{Total: 30}, PerJobKiB: 20.48,
				Memory: []ProcMem{{Name: "Temporal history", RSS: 90}, {Name: "worker 1", RSS: 50}, {Name: "PostgreSQL", PSS: 70}},
				Create: Latency{N: 30, P50: 25}},
		},
	}
	md := ScaleMarkdown(r)
	for _, want := range []string{
		"Measured 2026-12-01 on Test CPU, 2 cores, 24 GiB RAM, Linux 6.1, go1.26; `make bench-cluster` took 5m0s.",
		"Settings: dev then cluster; worker processes 1, 2; 60 lifecycles per worker count at concurrency 50, after 20 not counted; parked checkpoints 500 on the cluster, created at concurrency 16 in rounds of 400, with 2 workers, 30 jobs timed one at a time at each.",
		"| Temporal server (cluster) | v1.29.1 |",
		"Stack start-up (PostgreSQL, Temporal, the other components): dev 3 s, cluster 30 s.",
		"| dev | 1 | 60 | 5.00 | 20.0 | 30.0 | 40.0 | 100.0 | 150.0 | 200.0 |",
		"| cluster | 2 | 59 | 3.93 |",
		"| 1: HTTP 503 / down |", // a pipe in an error does not break the row
		"| Temporal | workers | wall s | Temporal | machine total | CPU ms per lifecycle |",
		"| dev | 1 | 12.0 | 3.0 (0.25) | 20.0 (1.67) | 50 |",
		"| cluster | 2 | 15.0 | 6.0 (0.40) | | 102 |",
		"| workers | Temporal history | Temporal matching |",
		"| 2 | 4.0 | 1.0 |",
		"| 0 | 3 | - | 0 | 0 | 0 | 10.0 | 2.0 | 8.0 | 20.0 | - | 0 |",
		"| 500 | 503 | 40.0 | 61 | 4 | 12 |",
		"| 20.48 |",
		"| parked | Temporal history | worker 1 | PostgreSQL |",
		"| 0 | 80.0 | | 60.0 |",
		"| 500 | 90.0 | 50.0 | 70.0 |",
		"| 500 | 30 | 25.0 |",
		"| 0 | 2: HTTP 503 |",
		"- cluster, 2 worker(s): 9000 ms (job j1): #5 WorkflowTaskStarted -> #6 WorkflowTaskTimedOut 8000 ms\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for i, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "|") && !strings.HasSuffix(line, "|") {
			t.Errorf("line %d is a broken table row: %q", i+1, line)
		}
	}

	r.Config.Temporals = []string{"dev"}
	if md := ScaleMarkdown(r); !strings.Contains(md, "after 20 not counted; no parked checkpoints.") {
		t.Errorf("a run without the cluster names parked checkpoints:\n%s", md[:400])
	}
	r.Complete, r.Stopped = false, "cluster: temporal cluster: make cluster-tools"
	if md := ScaleMarkdown(r); !strings.Contains(md, "stopped early after 5m0s (cluster: temporal cluster: make cluster-tools)") {
		t.Errorf("a stopped run does not say so:\n%s", md[:200])
	}
	r.Stopped = ""
	if md := ScaleMarkdown(r); !strings.Contains(md, "was still running (5m0s in)") {
		t.Errorf("a running run does not say so:\n%s", md[:200])
	}
	if md := ScaleMarkdown(&ScaleResults{Complete: true}); strings.Contains(md, "Jobs parked") || strings.Contains(md, "CPU seconds") {
		t.Errorf("an empty run renders tables it has no rows for:\n%s", md)
	}
}

func TestLongestGaps(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id int64, typ enumspb.EventType, at time.Duration) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventId: id, EventType: typ, EventTime: timestamppb.New(t0.Add(at))}
	}
	sched := ev(4, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 300*time.Millisecond)
	sched.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{
		ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{ActivityType: &commonpb.ActivityType{Name: "StoreResult"}},
	}
	h := &historypb.History{Events: []*historypb.HistoryEvent{
		ev(1, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 0),
		ev(2, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 10*time.Millisecond),
		ev(3, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, 200*time.Millisecond),
		sched,
		ev(5, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, 5300*time.Millisecond),
		ev(6, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, 5350*time.Millisecond),
	}}
	tests := []struct {
		name string
		h    *historypb.History
		n    int
		want []Gap
	}{
		{"empty", &historypb.History{}, 3, nil},
		{"one event", &historypb.History{Events: h.Events[:1]}, 3, nil},
		{"longest first, activity named", h, 2, []Gap{
			{From: "#4 ActivityTaskScheduled StoreResult", To: "#5 ActivityTaskStarted", MS: 5000},
			{From: "#2 WorkflowTaskScheduled", To: "#3 WorkflowTaskStarted", MS: 190},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := longestGaps(tt.h, tt.n); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"server deadline", serviceerror.NewDeadlineExceeded("context deadline exceeded"), true},
		{"unavailable, wrapped", fmt.Errorf("job x: %w", serviceerror.NewUnavailable("down")), true},
		{"resource exhausted", serviceerror.NewResourceExhausted(enumspb.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT, "busy"), true},
		{"client deadline", context.DeadlineExceeded, true},
		{"not found", serviceerror.NewNotFound("no such workflow"), false},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("job x ended failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.want {
				t.Fatalf("transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
