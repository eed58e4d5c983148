package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// SetCheckout records the job's Checkout Session, while it awaits payment,
// and tells the site the job exists (job.created): it can be paid for from
// now on. Recording the same session again writes nothing.
func (s *Store) SetCheckout(ctx context.Context, id, sessionID, url string, expiresAt time.Time) error {
	set := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE jobs SET checkout_session_id = $2, checkout_url = $3,
			checkout_expires_at = $4, updated_at = now()
			WHERE id = $1 AND status = 'awaiting_payment'
			  AND (checkout_session_id, checkout_url, checkout_expires_at) IS DISTINCT FROM ($2, $3, $4)`,
			id, sessionID, url, expiresAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		set = true
		return enqueue(ctx, tx, id, Outgoing{Event: jobs.HookJobCreated})
	})
	if err != nil {
		return fmt.Errorf("store: set checkout for %s: %w", id, err)
	}
	if set {
		return nil
	}
	var status jobs.Status
	var current *string
	err = s.pool.QueryRow(ctx, `SELECT status, checkout_session_id FROM jobs WHERE id = $1`, id).Scan(&status, &current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("store: set checkout for %s: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: set checkout for %s: %w", id, err)
	case current != nil && *current == sessionID:
		return nil // already recorded
	}
	return fmt.Errorf("store: set checkout for %s in status %s: %w", id, status, ErrInvalidTransition)
}

// RecordStripeEvent remembers that eventID was handled, with its outcome.
// It reports false if the event was already recorded.
func (s *Store) RecordStripeEvent(ctx context.Context, eventID, typ, jobID, outcome string) (bool, error) {
	var job any
	if jobID != "" {
		job = jobID
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO stripe_events (event_id, type, job_id, outcome)
		VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING`, eventID, typ, job, outcome)
	if err != nil {
		return false, fmt.Errorf("store: record stripe event: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// StripeEventSeen reports whether eventID was already handled.
func (s *Store) StripeEventSeen(ctx context.Context, eventID string) (bool, error) {
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM stripe_events WHERE event_id = $1)`, eventID).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("store: stripe event seen: %w", err)
	}
	return seen, nil
}

// MarkPaymentProcessing records that the customer completed Checkout with a
// delayed payment method: the job keeps awaiting payment, Stripe decides
// within days. Recording it again is a no-op.
func (s *Store) MarkPaymentProcessing(ctx context.Context, id, cause string) error {
	return s.annotate(ctx, id, cause, "payment processing", func(c current) (bool, error) {
		switch {
		case c.Status != jobs.StatusAwaitingPayment:
			return false, fmt.Errorf("%w: payment processing on a %s job", ErrInvalidTransition, c.Status)
		case c.PaymentStatus == jobs.PaymentProcessing:
			return false, nil
		}
		return true, nil
	}, func(current) []Outgoing { return []Outgoing{{Email: jobs.EmailPaymentProcessing}} },
		`UPDATE jobs SET payment_status = 'processing'`)
}

// RecordLatePayment records a payment that arrived after the job's
// workflow gave up on it (abandoned, or gone: terminated) so that it can be
// refunded; the job's status is left as it is.
func (s *Store) RecordLatePayment(ctx context.Context, p Payment) error {
	return s.annotate(ctx, p.JobID, "late_payment:"+p.Cause, "", func(c current) (bool, error) {
		switch c.PaymentStatus {
		case jobs.PaymentPaid, jobs.PaymentRefunded, jobs.PaymentRefundFailed:
			return false, nil // already recorded
		}
		return true, nil
	}, nil, `UPDATE jobs SET payment_status = 'paid', paid_at = now(), payment_intent_id = $2,
		amount_paid_cents = $3, paid_currency = $4, customer_email = COALESCE(NULLIF($5, ''), customer_email)`,
		p.PaymentIntentID, p.AmountCents, p.Currency, p.CustomerEmail)
}

// SetCustomerEmail records the address Stripe reports for the job's
// customer, so that nothing else has to carry it: the webhook writes it
// before it signals the workflow, and activities that learn it from Stripe
// write it themselves. An empty address, or one already recorded, writes
// nothing; an unknown job is not an error (the webhook ignores its event).
func (s *Store) SetCustomerEmail(ctx context.Context, id, email string) error {
	if email == "" {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET customer_email = $2, updated_at = now()
		WHERE id = $1 AND customer_email IS DISTINCT FROM $2`, id, email)
	if err != nil {
		return fmt.Errorf("store: set customer email of %s: %w", id, err)
	}
	return nil
}
