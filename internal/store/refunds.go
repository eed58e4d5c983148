package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// current is the part of a job row that decides whether a change applies.
type current struct {
	Status        jobs.Status
	PaymentStatus jobs.PaymentStatus
	Confirmed     bool // refund_confirmed_at is set
	FileDeleted   bool // download_expired_at is set
}

// refundedEmail tells the customer of a job that was not delivered that
// their payment went back; a delivered job refunded by hand gets none.
func refundedEmail(c current) []Outgoing {
	if c.Status == jobs.StatusFailed || c.Status == jobs.StatusAbandoned {
		return []Outgoing{{Email: jobs.EmailFailedRefunded}}
	}
	return nil
}

// annotate changes a job without changing its status: it locks the row, asks
// decide whether to apply update (whose $1 is the job ID, args from $2) and,
// if so, appends a trail row with cause and writes to the outbox what send
// (if not nil) says the change sends. decide returning false is a no-op.
func (s *Store) annotate(ctx context.Context, id, cause, detail string, decide func(current) (bool, error),
	send func(current) []Outgoing, update string, args ...any) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var c current
		err := tx.QueryRow(ctx, `SELECT status, payment_status, refund_confirmed_at IS NOT NULL,
			download_expired_at IS NOT NULL FROM jobs WHERE id = $1 FOR UPDATE`, id).
			Scan(&c.Status, &c.PaymentStatus, &c.Confirmed, &c.FileDeleted)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		apply, err := decide(c)
		if err != nil || !apply {
			return err
		}
		if _, err := tx.Exec(ctx, update+`, updated_at = now() WHERE id = $1`, append([]any{id}, args...)...); err != nil {
			return err
		}
		if err := insertEvent(ctx, tx, id, string(c.Status), c.Status, cause, detail); err != nil {
			return err
		}
		if send == nil {
			return nil
		}
		return enqueue(ctx, tx, id, send(c)...)
	})
	if err != nil {
		return fmt.Errorf("store: %s on job %s: %w", cause, id, err)
	}
	return nil
}

// Refund is a refund Stripe accepted.
type Refund struct {
	JobID       string
	RefundID    string // empty when Stripe only said the charge was already refunded
	AmountCents int64
	Status      string // Stripe's refund status: succeeded, pending, ...
}

// MarkRefunded records a refund of the job's payment. Recording it again is a no-op.
func (s *Store) MarkRefunded(ctx context.Context, r Refund) error {
	cause := "refund"
	if r.RefundID != "" {
		cause = "refund:" + r.RefundID
	}
	already := false
	err := s.annotate(ctx, r.JobID, cause, "", func(c current) (bool, error) {
		switch c.PaymentStatus {
		case jobs.PaymentRefunded:
			already = true
			return false, nil
		case jobs.PaymentPaid, jobs.PaymentRefundFailed, jobs.PaymentRefundNeedsAttention:
			return true, nil
		}
		return false, fmt.Errorf("%w: refund of a job whose payment is %s", ErrInvalidTransition, c.PaymentStatus)
	}, refundedEmail, `UPDATE jobs SET payment_status = 'refunded', refund_id = NULLIF($2, ''), refund_amount_cents = $3,
		refund_status = NULLIF($4, ''), refunded_at = now(), refund_error = NULL`,
		r.RefundID, r.AmountCents, r.Status)
	if err == nil && already {
		// Stripe's charge.refunded may have been recorded first, without
		// the refund's ID: complete what it could not know.
		_, err = s.pool.Exec(ctx, `UPDATE jobs SET refund_id = COALESCE(refund_id, NULLIF($2, '')),
			refund_status = COALESCE(refund_status, NULLIF($3, '')) WHERE id = $1`, r.JobID, r.RefundID, r.Status)
	}
	return err
}

// MarkRefundFailed records that Stripe refused a refund that is owed; the
// trail gets a row the first time. nextAttempt is the number of the
// refund's next idempotency key: whoever takes the refund over (the sweep's
// OwedRefund) goes on from it rather than reusing keys whose refusal Stripe
// replays for 24 hours. The time of the first refusal is kept too.
func (s *Store) MarkRefundFailed(ctx context.Context, id, detail string, nextAttempt int) error {
	first := false
	err := s.annotate(ctx, id, "refund_failed", detail, func(c current) (bool, error) {
		switch c.PaymentStatus {
		case jobs.PaymentPaid:
			first = true
			return true, nil
		case jobs.PaymentRefundFailed:
			return false, nil
		case jobs.PaymentRefunded:
			// Refunded meanwhile by other means (charge.refunded): nothing to surface.
			return false, nil
		}
		return false, fmt.Errorf("%w: refund failure on a job whose payment is %s", ErrInvalidTransition, c.PaymentStatus)
	}, nil, `UPDATE jobs SET payment_status = 'refund_failed', refund_error = $2,
		refund_attempt = GREATEST(refund_attempt, $3), refund_refused_at = COALESCE(refund_refused_at, now())`,
		detail, nextAttempt)
	if err == nil && !first {
		// Keep the latest refusal and attempt without another trail row.
		_, err = s.pool.Exec(ctx, `UPDATE jobs SET refund_error = COALESCE(NULLIF($2, ''), refund_error),
			refund_attempt = GREATEST(refund_attempt, $3) WHERE id = $1 AND payment_status = 'refund_failed'`,
			id, detail, nextAttempt)
	}
	return err
}

// MarkRefundNeedsAttention hands a refund that Stripe kept refusing to the
// admins. It reports false, changing nothing, when the payment was refunded
// meanwhile (charge.refunded, or an admin settled it).
func (s *Store) MarkRefundNeedsAttention(ctx context.Context, id, detail string) (bool, error) {
	moved := false
	err := s.annotate(ctx, id, "refund_needs_attention", detail, func(c current) (bool, error) {
		switch c.PaymentStatus {
		case jobs.PaymentPaid, jobs.PaymentRefundFailed:
			moved = true
			return true, nil
		case jobs.PaymentRefunded, jobs.PaymentRefundNeedsAttention:
			return false, nil
		}
		return false, fmt.Errorf("%w: refund attention on a job whose payment is %s", ErrInvalidTransition, c.PaymentStatus)
	}, func(current) []Outgoing { return []Outgoing{{Email: jobs.EmailRefundAttention}} }, `UPDATE jobs SET payment_status = 'refund_needs_attention', refund_error = NULLIF($2, '')`, detail)
	return moved, err
}

// MarkRefundSettled records an admin's word that an owed refund was settled
// outside the service (say, paid back by bank transfer). Only a refund
// Stripe refused can be settled so; settling it again is a no-op.
func (s *Store) MarkRefundSettled(ctx context.Context, id, by, note string) error {
	cause := "refund_settled"
	if by != "" {
		cause += ":" + by
	}
	return s.annotate(ctx, id, cause, note, func(c current) (bool, error) {
		switch c.PaymentStatus {
		case jobs.PaymentRefundNeedsAttention, jobs.PaymentRefundFailed:
			return true, nil
		case jobs.PaymentRefunded:
			return false, nil
		}
		return false, fmt.Errorf("%w: the job's payment is %s, not a refused refund", ErrInvalidTransition, c.PaymentStatus)
	}, refundedEmail, `UPDATE jobs SET payment_status = 'refunded', refunded_at = COALESCE(refunded_at, now()),
		refund_amount_cents = COALESCE(refund_amount_cents, amount_paid_cents)`)
}

// RefundConfirmation is Stripe's charge.refunded event about a payment.
type RefundConfirmation struct {
	EventID             string
	PaymentIntentID     string
	RefundID            string // the charge's latest refund, if the event lists it
	AmountRefundedCents int64
}

// ConfirmRefund records Stripe's confirmation that the payment was refunded,
// also for refunds made outside the service (the Stripe dashboard). It
// returns the job, or ErrNotFound when no job has that payment intent.
func (s *Store) ConfirmRefund(ctx context.Context, c RefundConfirmation) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM jobs WHERE payment_intent_id = $1`, c.PaymentIntentID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("store: confirm refund of %s: %w", c.PaymentIntentID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: confirm refund: %w", err)
	}
	return id, s.annotate(ctx, id, c.EventID, "charge.refunded", func(cur current) (bool, error) {
		return !cur.Confirmed, nil
	}, refundedEmail, `UPDATE jobs SET refund_confirmed_at = now(), payment_status = 'refunded',
		refund_id = COALESCE(refund_id, NULLIF($2, '')), refund_amount_cents = COALESCE(refund_amount_cents, $3),
		refunded_at = COALESCE(refunded_at, now()), refund_error = NULL`,
		c.RefundID, c.AmountRefundedCents)
}
