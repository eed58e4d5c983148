// Command upsampler-sim runs the local Upsampler stand-in
// (dev/upsamplersim) as its own process, for `make run` and manual
// testing. Its control API is under /_sim/ (loopback only).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"hires/dev/upsamplersim"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		log.Error("upsampler-sim: exiting", "err", err)
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("upsampler-sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8099", "listen address")
	apiKey := fs.String("api-key", os.Getenv("UPSAMPLER_API_KEY"), "accepted Bearer key (default $UPSAMPLER_API_KEY; prefer the env var, flags show in ps)")
	publicURL := fs.String("public-url", "", "base URL for result links (default http://<addr>)")
	delay := fs.Duration("delay", 2*time.Second, "time each job spends IN_QUEUE+IN_PROGRESS")
	resultTTL := fs.Duration("result-ttl", 3*time.Hour, "how long result URLs stay valid")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *apiKey == "" {
		return errors.New("an API key is required: set UPSAMPLER_API_KEY or -api-key")
	}
	if *publicURL == "" {
		*publicURL = "http://" + *addr
	}

	sim := upsamplersim.New(upsamplersim.Options{
		APIKey:          *apiKey,
		PublicURL:       *publicURL,
		ProcessingDelay: *delay,
		ResultTTL:       *resultTTL,
		Logger:          log,
	})
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	// Closing the simulator releases held submits so Shutdown can finish.
	srv.RegisterOnShutdown(sim.Close)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("upsampler-sim: listening", "addr", ln.Addr().String(), "api", *publicURL+"/api/v1",
		"delay", delay.String(), "result_ttl", resultTTL.String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("upsampler-sim: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
