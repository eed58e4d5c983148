package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"hires/internal/config"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/temporalclient"
)

// Run applies migrations, connects, and serves the API on cfg.HTTPAddr
// until ctx ends, then drains in-flight requests.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	reg := metrics.New(logger)
	defer reg.Close()
	ready := metrics.NewReadiness(logger)
	migrated := ready.Flag("migrations")
	st, err := store.OpenMigrated(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	migrated.Set(true)
	ready.Check("database", st.Ping)
	files, err := storage.FromConfig(cfg)
	if err != nil {
		return err
	}
	tc, closeTemporal, err := temporalclient.Connect(ctx, cfg, logger, reg.Temporal())
	if err != nil {
		return err
	}
	defer closeTemporal()
	ready.Check("temporal", metrics.TemporalCheck(tc))
	pay, err := payments.New(cfg.StripeSecretKey, cfg.StripeAPIBase)
	if err != nil {
		return err
	}
	e, err := New(Deps{Config: cfg, Store: st, Temporal: tc, Payments: pay, Files: files, Logger: logger, Metrics: reg, Ready: ready})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	logger.Info("api listening", "addr", ln.Addr().String(), "public_base_url", cfg.PublicBaseURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go forgetIdempotencyKeys(ctx, st, cfg.IdempotencyKeyTTL, logger)
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// forgetIdempotencyKeys deletes the keys older than ttl every few minutes,
// a bounded batch at a time, until ctx ends: the table holds about a day of
// creations. Every replica runs it; repeated deletes are harmless.
func forgetIdempotencyKeys(ctx context.Context, st *store.Store, ttl time.Duration, logger *slog.Logger) {
	const every, batch = 5 * time.Minute, 10_000
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := st.ForgetIdempotencyKeys(ctx, ttl, batch)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("forgetting expired idempotency keys failed", "error", err)
		case n > 0:
			logger.Info("forgot expired idempotency keys", "count", n)
		}
	}
}
