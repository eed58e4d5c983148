package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// keepTrying runs f until it succeeds or ctx ends (the worker stops),
// waiting from first up to ceiling between tries, and logs each failure.
// It reports whether f succeeded before the worker stopped.
func keepTrying(ctx context.Context, logger *slog.Logger, what string, first, ceiling time.Duration, f func(context.Context) error) bool {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = first, ceiling
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, f(ctx) },
		backoff.WithBackOff(b),
		backoff.WithMaxElapsedTime(0), // until the worker stops
		backoff.WithNotify(func(err error, next time.Duration) {
			logger.Warn(what+" failed; trying again", "error", err, "retry_in", next)
		}))
	return err == nil // otherwise the worker is stopping
}
