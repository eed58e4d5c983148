package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// The writes below are made by the job's workflow, through activities. Each
// is idempotent: replaying it after a crash or a retry changes nothing.

// SetCheckout records the job's Checkout Session, while it awaits payment.
// Recording the same session again writes nothing.
func (s *Store) SetCheckout(ctx context.Context, id, sessionID, url string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET checkout_session_id = $2, checkout_url = $3,
		checkout_expires_at = $4, updated_at = now()
		WHERE id = $1 AND status = 'awaiting_payment'
		  AND (checkout_session_id, checkout_url, checkout_expires_at) IS DISTINCT FROM ($2, $3, $4)`,
		id, sessionID, url, expiresAt)
	if err != nil {
		return fmt.Errorf("store: set checkout for %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
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

// Payment is a confirmed payment.
type Payment struct {
	JobID           string
	Cause           string // the Stripe event ID, or how else it was learned
	PaymentIntentID string
	AmountCents     int64
	Currency        string
	CustomerEmail   string
}

// MarkPaid moves an awaiting job to pending and records the payment. An
// empty CustomerEmail keeps the one recorded (SetCustomerEmail): payments
// signalled now carry none.
func (s *Store) MarkPaid(ctx context.Context, p Payment) error {
	_, err := s.transition(ctx, p.JobID, []jobs.Status{jobs.StatusAwaitingPayment}, jobs.StatusPending,
		p.Cause, "",
		`payment_status = 'paid', paid_at = now(), payment_intent_id = $4, amount_paid_cents = $5,
		 paid_currency = $6, customer_email = COALESCE(NULLIF($7, ''), customer_email)`,
		p.PaymentIntentID, p.AmountCents, p.Currency, p.CustomerEmail)
	return err
}

// MarkAbandoned closes an unpaid job.
func (s *Store) MarkAbandoned(ctx context.Context, id, cause string, ps jobs.PaymentStatus) error {
	_, err := s.transition(ctx, id, []jobs.Status{jobs.StatusAwaitingPayment}, jobs.StatusAbandoned,
		cause, "", `payment_status = $4`, ps)
	return err
}

// MarkProcessing records the Upsampler submission: the job is now with Upsampler.
func (s *Store) MarkProcessing(ctx context.Context, id, upsamplerJobID string) error {
	_, err := s.transition(ctx, id, []jobs.Status{jobs.StatusPending}, jobs.StatusProcessing,
		"upsampler:"+upsamplerJobID, "",
		`upsampler_job_id = $4, processing_started_at = now()`, upsamplerJobID)
	return err
}

// Completion is a delivered result.
type Completion struct {
	JobID             string
	UpsamplerJobID    string
	UpsamplerCredits  float64 // Upsampler's reported creditCost; 0 if unknown
	ResultKey         string
	ContentType       string
	Bytes             int64
	SHA256            string
	Width, Height     int
	DownloadToken     string
	DownloadExpiresAt time.Time
}

// MarkCompleted records the stored result and its download token. A job
// already completed keeps its first token.
func (s *Store) MarkCompleted(ctx context.Context, c Completion) error {
	var credits, cost any
	if c.UpsamplerCredits > 0 {
		credits = c.UpsamplerCredits
		cost = int64(c.UpsamplerCredits*4 + 0.5) // cents, at $0.04 a credit
	}
	_, err := s.transition(ctx, c.JobID, []jobs.Status{jobs.StatusProcessing}, jobs.StatusCompleted,
		"upsampler:"+c.UpsamplerJobID, "",
		`processing_completed_at = now(), upsampler_credits = COALESCE($4, upsampler_credits),
		 upsampler_cost_cents = COALESCE($5, upsampler_cost_cents), result_key = $6,
		 result_content_type = $7, result_bytes = $8, result_sha256 = $9, result_width = $10,
		 result_height = $11, download_token = $12, download_expires_at = $13, download_token_hash = $14`,
		credits, cost, c.ResultKey, c.ContentType, c.Bytes, c.SHA256, c.Width, c.Height,
		c.DownloadToken, c.DownloadExpiresAt, tokenHash(c.DownloadToken))
	return err
}

// MarkFailed ends a job that cannot be delivered, with a machine-readable reason.
func (s *Store) MarkFailed(ctx context.Context, id, reason, detail string) error {
	_, err := s.transition(ctx, id,
		[]jobs.Status{jobs.StatusAwaitingPayment, jobs.StatusPending, jobs.StatusProcessing},
		jobs.StatusFailed, reason, detail,
		`failed_at = now(), failure_reason = $4, failure_detail = NULLIF($5, '')`, reason, detail)
	return err
}

// MarkDownloadExpired records that the file was deleted at the link's
// expiry. The job stays completed; the trail gets a row.
func (s *Store) MarkDownloadExpired(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status jobs.Status
		var expired *time.Time
		err := tx.QueryRow(ctx, `SELECT status, download_expired_at FROM jobs WHERE id = $1 FOR UPDATE`, id).
			Scan(&status, &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case status != jobs.StatusCompleted:
			return fmt.Errorf("%w: download of a %s job", ErrInvalidTransition, status)
		case expired != nil:
			return nil // already done
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET download_expired_at = now(), result_key = NULL,
			updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		return insertEvent(ctx, tx, id, string(status), status, "download_expired", "")
	})
	if err != nil {
		return fmt.Errorf("store: download expired for %s: %w", id, err)
	}
	return nil
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
