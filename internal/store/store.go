// Package store is the PostgreSQL job record that customers and admins
// read. The job's workflow is its only writer after creation; every status
// change is a compare-and-set on the current status, made in one
// transaction with its audit-trail row, and repeating it is a no-op.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for the migrator
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"hires/internal/jobs"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the job record.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to databaseURL and checks the connection.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	return &Store{pool: pool}, nil
}

// OpenMigrated applies the migrations, then opens the store: what a
// process does at start-up.
func OpenMigrated(ctx context.Context, databaseURL string) (*Store, error) {
	if err := Migrate(ctx, databaseURL); err != nil {
		return nil, err
	}
	return Open(ctx, databaseURL)
}

// Close releases the connections.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the database is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Migrate applies the embedded versioned migrations. Goose takes a
// PostgreSQL advisory lock, so several processes may call it at start-up.
func Migrate(ctx context.Context, databaseURL string) error {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer db.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// Errors callers branch on.
var (
	ErrNotFound = errors.New("store: job not found")
	// ErrInvalidTransition means the job is in a status the change may not
	// leave from: a bug or an out-of-order message, never retried.
	ErrInvalidTransition = errors.New("store: invalid status transition")
)

// transition moves job id from one of from to to, applying set (a SET
// fragment whose placeholders start at $4, with args), appending the audit
// row and writing the messages the change sends to the outbox, all in one
// transaction. If the job is already in status to it does nothing and
// reports changed=false, so that retried activities are harmless.
func (s *Store) transition(ctx context.Context, id string, from []jobs.Status, to jobs.Status,
	cause, detail string, send []Outgoing, set string, args ...any) (changed bool, err error) {
	for _, f := range from {
		if !jobs.CanMove(f, to) {
			return false, fmt.Errorf("store: job %s: %s -> %s is not in jobs.Transitions: %w", id, f, to, ErrInvalidTransition)
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current jobs.Status
		err := tx.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if current == to {
			return nil
		}
		if !contains(from, current) {
			return fmt.Errorf("%w: %s -> %s", ErrInvalidTransition, current, to)
		}
		q := `UPDATE jobs SET status = $3, updated_at = now()`
		if set != "" {
			q += ", " + set
		}
		q += ` WHERE id = $1 AND status = ANY($2)`
		if _, err := tx.Exec(ctx, q, append([]any{id, statusStrings(from), to}, args...)...); err != nil {
			return err
		}
		if err := insertEvent(ctx, tx, id, string(current), to, cause, detail); err != nil {
			return err
		}
		if err := enqueue(ctx, tx, id, send...); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: job %s to %s: %w", id, to, err)
	}
	return changed, nil
}

func insertEvent(ctx context.Context, tx pgx.Tx, id, from string, to jobs.Status, cause, detail string) error {
	var fromArg, detailArg any
	if from != "" {
		fromArg = from
	}
	if detail != "" {
		detailArg = detail
	}
	_, err := tx.Exec(ctx, `INSERT INTO job_events (job_id, from_status, to_status, cause, detail)
		VALUES ($1, $2, $3, $4, $5)`, id, fromArg, to, cause, detailArg)
	return err
}

func contains(list []jobs.Status, s jobs.Status) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func statusStrings(list []jobs.Status) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = string(s)
	}
	return out
}
