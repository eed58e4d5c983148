package activities

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"hires/internal/store"
)

// keepRecording runs write, the database record of an effect already made
// (an email sent, an event delivered, an Upsampler submission accepted),
// again and again through a database outage until it succeeds or ctx ends.
// Failing the activity instead would repeat the effect when it is retried:
// a second email, a second upscale paid for.
func keepRecording(ctx context.Context, write func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil || !dbUnavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// dbUnavailable tells a database that cannot be reached (no connection, a
// server shutting down or starting up) from an answer it gave.
func dbUnavailable(err error) bool {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidTransition) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57: operator intervention (shutdown, restart).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57")
	}
	return true
}
