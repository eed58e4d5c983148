// Command hires-dev runs the service's whole stack on this machine and
// plays the customer's part: none of it is in the product's binary.
//
//	hires-dev run [-cluster]    the whole stack in the foreground (make run; make cluster: in its production shape)
//	hires-dev pay JOB           the customer pays (a signed checkout.session.completed)
//	hires-dev pay-bank JOB      the customer pays by bank debit (Checkout completed unpaid)
//	hires-dev bank-succeeded JOB | bank-failed JOB   the bank's verdict
//	hires-dev expire JOB        the Checkout Session expires unpaid
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"hires/dev/localstack"
	"hires/internal/config"
	"hires/internal/paysim"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level, err := config.ParseLogLevel(os.Getenv("LOG_LEVEL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hires-dev: config:", err)
		os.Exit(1)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = run(ctx, logger, args)
	case "pay", "pay-bank", "bank-succeeded", "bank-failed", "expire":
		err = simulate(ctx, cmd, args)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hires-dev:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hires-dev run [-cluster] | pay JOB_ID | pay-bank JOB_ID | bank-succeeded JOB_ID | bank-failed JOB_ID | expire JOB_ID")
}

// run runs the local stack in the foreground until interrupted.
func run(ctx context.Context, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cluster := fs.Bool("cluster", false, "run the production topology: Temporal as frontend, history, matching and worker processes on PostgreSQL with the standalone Web UI, an S3 store, two APIs behind a proxy and two workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	environ := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			environ[k] = v
		}
	}
	dataDir := os.Getenv("HIRES_LOCAL_DIR") // default: a fresh temporary directory
	o := localstack.Options{Environ: environ, WellKnownPorts: true, DataDir: dataDir, Logger: logger}
	if *cluster {
		o.Cluster, o.Replicas = true, 2
		fmt.Fprintln(os.Stderr, "Starting PostgreSQL, Temporal's frontend, history, matching and worker with its Web UI, an S3 store, stripe-mock, the Upsampler stand-in, two workers and two APIs behind a proxy...")
	} else {
		fmt.Fprintln(os.Stderr, "Starting PostgreSQL, Temporal, stripe-mock, the Upsampler stand-in, the worker and the API...")
	}
	s, err := localstack.Start(ctx, o)
	if err != nil {
		return err
	}
	defer s.Stop()
	fmt.Printf(`
The stack is up (Ctrl-C stops it):
  API                  %s
  Temporal             %s
  Temporal Web UI      %s
  stripe-mock          %s
  Upsampler stand-in   %s
  Sample images        %s   (e.g. %s)
  Mail inbox           %s
%s
The local site's key (set LOCAL_SITE_KEY to choose it), and the admin token:
  export SITE_KEY=%s
  export ADMIN_TOKEN=%s   # for the admin API, and "go run ./cmd/hires keys create --name NAME"

Create a job:
  curl -s -X POST %s/v1/jobs -H "Authorization: Bearer $SITE_KEY" -H 'Content-Type: application/json' \
    -H 'Idempotency-Key: order-1001' \
    -d '{"image_url":"%s","resolution":"4x","email":"you@example.com","image_width":640,"image_height":480}'
Open the customer's page, http://127.0.0.1:8080/jobs/<id>?token=<access_token>, and press
"Pay (simulated)"; or pay from a shell (sends a signed checkout.session.completed):
  make pay JOB=<id>
`, s.APIURL, s.TemporalAddress, orNone(s.TemporalUIURL), s.StripeURL, orNone(s.UpsamplerURL),
		orNone(s.SamplesURL), s.SampleImageURL(640, 480), orNone(s.MailWebURL), clusterLines(s), s.SiteKey, s.Env["ADMIN_TOKEN"], s.APIURL, s.SampleImageURL(640, 480))
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "Stopping...")
		return nil
	case err := <-s.Done():
		return fmt.Errorf("a process stopped: %w", err)
	}
}

// clusterLines lists what only the production topology runs.
func clusterLines(s *localstack.Stack) string {
	var b strings.Builder
	if s.TemporalCluster != nil {
		for _, role := range s.TemporalCluster.Roles() {
			fmt.Fprintf(&b, "  Temporal %-11s pid %d\n", role, s.TemporalCluster.PID(role))
		}
	}
	if s.S3 != nil {
		fmt.Fprintf(&b, "  S3 store             %s (bucket %s)\n", s.S3.Endpoint, s.Env["S3_BUCKET"])
	}
	if len(s.APIURLs) > 1 {
		fmt.Fprintf(&b, "  API replicas         %s (behind the API's address)\n", strings.Join(s.APIURLs, " "))
		fmt.Fprintf(&b, "  Workers' metrics     %s\n", strings.Join(s.WorkerHTTPURLs, " "))
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(not started here)"
	}
	return s
}

// simulate sends the Stripe event a customer's action would cause.
func simulate(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	apiURL := fs.String("api", envOr("PUBLIC_BASE_URL", "http://127.0.0.1:8080"), "API base URL")
	email := fs.String("email", "", "email the customer enters at Checkout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: hires-dev %s [-api URL] [-email ADDRESS] JOB_ID", cmd)
	}
	o := paysim.Options{
		APIURL:        *apiURL,
		AdminToken:    envOr("ADMIN_TOKEN", localstack.LocalAdminToken),
		WebhookSecret: envOr("STRIPE_WEBHOOK_SECRET", localstack.LocalWebhookSecret),
		Email:         *email,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	send := map[string]func(context.Context, paysim.Options, string) (paysim.Result, error){
		"pay":      paysim.Pay,
		"pay-bank": paysim.PayByBank,
		"bank-succeeded": func(ctx context.Context, o paysim.Options, id string) (paysim.Result, error) {
			return paysim.BankResult(ctx, o, id, true)
		},
		"bank-failed": func(ctx context.Context, o paysim.Options, id string) (paysim.Result, error) {
			return paysim.BankResult(ctx, o, id, false)
		},
		"expire": paysim.Expire,
	}[cmd]
	res, err := send(ctx, o, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("sent %s: HTTP %d %s\n", res.EventID, res.Status, res.Body)
	if res.Status/100 != 2 {
		return fmt.Errorf("the API refused the event")
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
