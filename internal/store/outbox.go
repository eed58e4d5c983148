package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Outgoing is a message a change sends, written to the outbox in the
// change's own transaction: an email or an integration event.
type Outgoing struct {
	Email string // an email kind (jobs.Email*), or
	Event string // an event type (jobs.Hook*), numbered with the job's attempt
	Seq   int    // the email's number: 0, or an admin's resend
	// DueAt is when it may go out (an expiry reminder); zero: at once.
	DueAt time.Time
	// Replace drops the job's other emails of the kind still waiting (a
	// reminder for a link whose expiry moved).
	Replace bool
}

// outboxChannel is the PostgreSQL notification channel that wakes the
// dispatchers when a message is written.
const outboxChannel = "hires_outbox"

// enqueue writes msgs for job id in tx; a message written before (the same
// key: a retried change) is kept as it is.
func enqueue(ctx context.Context, tx pgx.Tx, id string, msgs ...Outgoing) error {
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		var due any
		if !m.DueAt.IsZero() {
			due = m.DueAt
		}
		if m.Replace && m.Email != "" {
			_, err := tx.Exec(ctx, `UPDATE outbox SET done_at = now(), last_error = 'replaced'
				WHERE job_id = $1 AND key LIKE 'email:' || $2 || ':%' AND key <> 'email:' || $2 || ':' || $3::int
				  AND done_at IS NULL AND given_up_at IS NULL`, id, m.Email, m.Seq)
			if err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		// A message due later (a reminder) occurs then: its retries count from there.
		_, err := tx.Exec(ctx, `INSERT INTO outbox (job_id, key, due_at, occurred_at)
			SELECT id, CASE WHEN $2 <> '' THEN 'email:' || $2 || ':' || $4::int ELSE 'event:' || $3 || ':' || attempt END,
			       COALESCE($5::timestamptz, now()), COALESCE($5::timestamptz, now())
			  FROM jobs WHERE id = $1
			ON CONFLICT (job_id, key) DO NOTHING`, id, m.Email, m.Event, m.Seq, due)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, outboxChannel)
	return err
}

// Message is an outbox row claimed for delivery.
type Message struct {
	JobID      string
	Key        string
	OccurredAt time.Time
	Attempts   int // this one included
}

// Email reports the email kind and number the message is, if it is one.
func (m Message) Email() (kind string, seq int, ok bool) {
	rest, ok := strings.CutPrefix(m.Key, "email:")
	if !ok {
		return "", 0, false
	}
	kind, n, ok := strings.Cut(rest, ":")
	seq, err := strconv.Atoi(n)
	return kind, seq, ok && err == nil
}

// Event reports the event type and the job attempt it is about, if the
// message is one.
func (m Message) Event() (typ string, attempt int, ok bool) {
	rest, ok := strings.CutPrefix(m.Key, "event:")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", 0, false
	}
	attempt, err := strconv.Atoi(rest[i+1:])
	return rest[:i], attempt, err == nil
}

// ClaimDue takes up to limit messages that are due, oldest first, for
// lease: until then no other dispatcher takes them, and if this one dies
// they come due again when the lease ends.
func (s *Store) ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `UPDATE outbox o SET due_at = now() + $2::interval, attempts = o.attempts + 1
		FROM (SELECT job_id, key FROM outbox
		       WHERE done_at IS NULL AND given_up_at IS NULL AND due_at <= now()
		       ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
		WHERE o.job_id = due.job_id AND o.key = due.key
		RETURNING o.job_id::text, o.key, o.occurred_at, o.attempts`, limit, lease)
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		return m, r.Scan(&m.JobID, &m.Key, &m.OccurredAt, &m.Attempts)
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	return msgs, nil
}

// Delivered marks a message done: delivered, or needed no more (why, if
// not empty, says which).
func (s *Store) Delivered(ctx context.Context, m Message, why string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET done_at = now(), last_error = NULLIF($3, '')
		WHERE job_id = $1 AND key = $2`, m.JobID, m.Key, why)
	if err != nil {
		return fmt.Errorf("store: outbox delivered: %w", err)
	}
	return nil
}

// RetryAt puts a message that failed back in the outbox, due at at.
func (s *Store) RetryAt(ctx context.Context, m Message, at time.Time, cause error) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET due_at = $3, last_error = $4
		WHERE job_id = $1 AND key = $2 AND done_at IS NULL`, m.JobID, m.Key, at, cause.Error())
	if err != nil {
		return fmt.Errorf("store: outbox retry: %w", err)
	}
	return nil
}

// GiveUp stops a message for good: its target refused it, or it failed
// for longer than it may.
func (s *Store) GiveUp(ctx context.Context, m Message, cause error) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET given_up_at = now(), last_error = $3
		WHERE job_id = $1 AND key = $2 AND done_at IS NULL`, m.JobID, m.Key, cause.Error())
	if err != nil {
		return fmt.Errorf("store: outbox give up: %w", err)
	}
	return nil
}

// DueMessages counts the outbox's messages due now and not yet delivered.
func (s *Store) DueMessages(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox
		WHERE done_at IS NULL AND given_up_at IS NULL AND due_at <= now()`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: outbox due: %w", err)
	}
	return n, nil
}

// Sent reports whether the job's message key was delivered.
func (s *Store) Sent(ctx context.Context, jobID, key string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE job_id = $1 AND key = $2 AND done_at IS NOT NULL)`,
		jobID, key).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: outbox sent: %w", err)
	}
	return ok, nil
}

// OutboxListener wakes a dispatcher when messages are written to the
// outbox. It holds a connection of its own while it listens.
type OutboxListener struct {
	s    *Store
	conn *pgxpool.Conn
}

// ListenOutbox returns a listener; it connects on its first Wait.
func (s *Store) ListenOutbox() *OutboxListener { return &OutboxListener{s: s} }

// Wait blocks until a message is written to the outbox or d has passed,
// and reports false only when ctx has ended. Without a connection (the
// database is away) it waits d.
func (l *OutboxListener) Wait(ctx context.Context, d time.Duration) bool {
	if l.conn == nil {
		conn, err := l.s.pool.Acquire(ctx)
		if err != nil {
			return sleep(ctx, d)
		}
		if _, err := conn.Exec(ctx, "LISTEN "+outboxChannel); err != nil {
			conn.Release()
			return sleep(ctx, d)
		}
		l.conn = conn
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := l.conn.Conn().WaitForNotification(wctx)
	if ctx.Err() != nil {
		return false
	}
	if err != nil && l.conn.Conn().IsClosed() { // lost; a timeout keeps it open
		l.conn.Release()
		l.conn = nil
	}
	return true
}

// Close stops listening and gives the connection back.
func (l *OutboxListener) Close() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, "UNLISTEN *"); err != nil {
		l.conn.Conn().Close(ctx) // the pool replaces a closed connection
	}
	l.conn.Release()
	l.conn = nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
