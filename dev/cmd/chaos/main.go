// Command chaos parks a thousand unpaid jobs, then runs hundreds more
// through the whole service while it SIGKILLs and restarts the worker,
// restarts the API, PostgreSQL and the Temporal dev server (with -cluster:
// Temporal's four roles on that PostgreSQL, its history and matching
// processes SIGKILLed one at a time), terminates and
// cancels jobs, while the Upsampler stand-in fails, slows jobs and loses
// answers, Stripe refuses refunds (then an admin refunds by hand or
// settles them), bank debits settle on both sides of their window, and
// Stripe events arrive duplicated and out of order; then it checks the
// invariants, prints the counts, and exits 1 if any invariant broke.
//
//	go run ./dev/cmd/chaos [-cluster] [-jobs 300] [-parked 1000] [-seed 1] [-keep-logs]
//
// It needs the PostgreSQL server binaries and the pinned tools (`make
// tools`; `make cluster-tools` too with -cluster), and must run inside the
// repository (it builds cmd/hires).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"hires/dev/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	jobs := flag.Int("jobs", 300, "jobs to drive through the faults")
	parked := flag.Int("parked", 1000, "unpaid jobs created first, awaiting payment while the faults run")
	seed := flag.Int64("seed", 1, "seed of the job plan, the event jitter and the stand-in's failures")
	keep := flag.Bool("keep-logs", false, "keep the run's directory (logs, databases) even when it passes")
	noFaults := flag.Bool("no-faults", false, "inject no fault: a baseline run of the same traffic")
	cluster := flag.Bool("cluster", false, "run Temporal as its four roles on the run's PostgreSQL, and SIGKILL its history and matching processes instead of restarting the dev server")
	timeout := flag.Duration("timeout", 20*time.Minute, "give up on the whole run after this long")
	flag.Parse()
	if *jobs < 1 || *parked < 0 {
		fmt.Fprintln(os.Stderr, "chaos: -jobs must be at least 1, -parked at least 0")
		return 2
	}
	mode := chaos.ModeDevServer
	if *cluster {
		mode = chaos.ModeCluster
	}
	if err := chaos.CheckPrerequisites(mode); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: cannot run:\n%v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	rep, err := chaos.Run(ctx, chaos.Options{
		Jobs: *jobs, Parked: *parked, Seed: *seed, Mode: mode, KeepLogs: *keep, NoFaults: *noFaults, Settings: chaos.DefaultSettings, Progress: os.Stderr,
	})
	if rep != nil && rep.Observed != nil {
		rep.Print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if !rep.Passed() {
		return 1
	}
	return 0
}
