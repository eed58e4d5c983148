// Command bench measures the service on the real local stack and writes
// bench.json, bench.md and growth plots (see dev/bench). `make bench`
// runs it. It fails only when the stack cannot run, never on a figure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"hires/dev/bench"
)

func main() {
	cfg := bench.Config{Progress: os.Stderr}
	var levels string
	flag.StringVar(&cfg.OutDir, "out", "docs/bench", "directory for bench.json, bench.md and the plots")
	flag.IntVar(&cfg.Parked, "parked", 10_000, "jobs parked for the memory and growth figures")
	flag.IntVar(&cfg.Requests, "requests", 200, "POST /v1/jobs requests per concurrency level")
	flag.StringVar(&levels, "levels", "1,4,16", "concurrency levels for POST /v1/jobs")
	flag.IntVar(&cfg.Webhooks, "webhooks", 200, "payment webhooks for the webhook figures")
	flag.IntVar(&cfg.WebhookConcurrency, "webhook-concurrency", 4, "concurrent payment webhooks")
	flag.IntVar(&cfg.QuietPayments, "quiet-payments", 100, "payments then sent one at a time")
	flag.IntVar(&cfg.Lifecycles, "lifecycles", 300, "whole lifecycles for the throughput figures")
	flag.IntVar(&cfg.LifecycleConcurrency, "lifecycle-concurrency", 50, "lifecycles in flight at once")
	flag.Parse()
	for _, f := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -levels: want positive integers separated by commas, got %q\n", levels)
			os.Exit(2)
		}
		cfg.Levels = append(cfg.Levels, n)
	}
	if cfg.Parked < 1 || cfg.Requests < 1 || cfg.Webhooks < 1 || cfg.QuietPayments < 1 || cfg.WebhookConcurrency < 1 || cfg.Lifecycles < 1 || cfg.LifecycleConcurrency < 1 {
		fmt.Fprintln(os.Stderr, "bench: every count and concurrency must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(bench.Markdown(r))
	fmt.Fprintf(os.Stderr, "bench: wrote %s/bench.json, bench.md, growth-memory.png, growth-latency.png\n", cfg.OutDir)
}
