// Command bench-cluster measures the service's scale on the Temporal dev
// server and on a Temporal cluster (frontend, history, matching and worker
// on PostgreSQL) in the same run: sustained lifecycles with 1, 2, 4 worker
// processes, and jobs parked on the cluster. It writes cluster.json and
// cluster.md (see dev/bench). `make bench-cluster` runs it. It fails
// only when a stack cannot run, never on a figure.
//
// It is a command of its own rather than a mode of cmd/bench because its
// -parked is a list of checkpoints where bench's is one count, and its
// defaults differ: each command's flags and -h stay its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"hires/dev/bench"
)

func main() {
	cfg, err := bench.ParseScaleFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, bench.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-cluster:", err)
		os.Exit(2)
	}
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := bench.RunScale(ctx, cfg)
	if r != nil {
		fmt.Print(bench.ScaleMarkdown(r))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-cluster:", err)
		fmt.Fprintf(os.Stderr, "bench-cluster: what was measured is in %s/cluster.json and cluster.md\n", cfg.OutDir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench-cluster: wrote %s/cluster.json and cluster.md in %s\n", cfg.OutDir, r.Took)
}
