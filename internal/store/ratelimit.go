package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Allow takes one request from bucket's allowance of perMinute a minute,
// with bursts of up to burst, in PostgreSQL so that every API replica
// shares it (the generic cell rate algorithm: one row per bucket holding
// its theoretical arrival time). A refused request says how long to wait.
func (s *Store) Allow(ctx context.Context, bucket string, perMinute, burst int) (ok bool, retryAfter time.Duration, err error) {
	if perMinute <= 0 || burst <= 0 {
		return false, 0, fmt.Errorf("store: rate limit of %d a minute, burst %d", perMinute, burst)
	}
	interval := time.Minute.Seconds() / float64(perMinute)
	var wait float64
	err = s.pool.QueryRow(ctx, `INSERT INTO rate_limits AS r (bucket, tat) VALUES ($1, now() + make_interval(secs => $2))
		ON CONFLICT (bucket) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => $2)
		WHERE greatest(r.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $2 * $3)
		RETURNING 0::float8`, bucket, interval, burst).Scan(&wait)
	if errors.Is(err, pgx.ErrNoRows) { // over the limit: when will one more fit?
		err = s.pool.QueryRow(ctx, `SELECT extract(epoch FROM tat - now()) - $2 * ($3 - 1) FROM rate_limits WHERE bucket = $1`,
			bucket, interval, burst).Scan(&wait)
		if err != nil {
			return false, 0, fmt.Errorf("store: rate limit: %w", err)
		}
		return false, max(time.Duration(wait*float64(time.Second)), time.Second), nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("store: rate limit: %w", err)
	}
	return true, 0, nil
}
