package store

import (
	"context"
	"time"

	"hires/internal/jobs"
	"hires/internal/pricing"
)

// The writes below are made by the job's workflow, through activities. Each
// is idempotent: replaying it after a crash or a retry changes nothing.

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
		p.Cause, "", []Outgoing{{Email: jobs.EmailPaymentReceived}, {Event: jobs.HookPaymentCompleted}},
		`payment_status = 'paid', paid_at = now(), payment_intent_id = $4, amount_paid_cents = $5,
		 paid_currency = $6, customer_email = COALESCE(NULLIF($7, ''), customer_email)`,
		p.PaymentIntentID, p.AmountCents, p.Currency, p.CustomerEmail)
	return err
}

// MarkAbandoned closes an unpaid job.
func (s *Store) MarkAbandoned(ctx context.Context, id, cause string, ps jobs.PaymentStatus) error {
	_, err := s.transition(ctx, id, []jobs.Status{jobs.StatusAwaitingPayment}, jobs.StatusAbandoned,
		cause, "", nil, `payment_status = $4`, ps)
	return err
}

// MarkProcessing records the Upsampler submission: the job is now with Upsampler.
func (s *Store) MarkProcessing(ctx context.Context, id, upsamplerJobID string) error {
	_, err := s.transition(ctx, id, []jobs.Status{jobs.StatusPending}, jobs.StatusProcessing,
		"upsampler:"+upsamplerJobID, "", nil,
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
	// RemindAt is when the customer is reminded that the link expires, if
	// they have not downloaded the image by then (zero: no reminder).
	RemindAt time.Time
}

// MarkCompleted records the stored result and its download token, and
// sends the link (and, at RemindAt, the reminder). A job already completed
// keeps its first token.
func (s *Store) MarkCompleted(ctx context.Context, c Completion) error {
	var credits, cost any
	if c.UpsamplerCredits > 0 {
		credits = c.UpsamplerCredits
		cost = int64(c.UpsamplerCredits*pricing.CentsPerCredit + 0.5) // cents, rounded
	}
	send := []Outgoing{{Email: jobs.EmailImageReady}, {Event: jobs.HookJobCompleted}}
	if !c.RemindAt.IsZero() {
		send = append(send, Outgoing{Email: jobs.EmailExpiringSoon, DueAt: c.RemindAt})
	}
	_, err := s.transition(ctx, c.JobID, []jobs.Status{jobs.StatusProcessing}, jobs.StatusCompleted,
		"upsampler:"+c.UpsamplerJobID, "", send,
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
		jobs.StatusFailed, reason, detail, []Outgoing{{Event: jobs.HookJobFailed}},
		`failed_at = now(), failure_reason = $4, failure_detail = NULLIF($5, '')`, reason, detail)
	return err
}

// MarkRetrying puts a failed job back to pending for another attempt,
// clearing the failure from the row (the trail keeps it).
func (s *Store) MarkRetrying(ctx context.Context, id string, attempt int, cause string) error {
	_, err := s.transition(ctx, id, []jobs.Status{jobs.StatusFailed}, jobs.StatusPending, cause, "", nil,
		`attempt = $4, failed_at = NULL, failure_reason = NULL, failure_detail = NULL,
		 upsampler_job_id = NULL, upsampler_attempt = NULL`, attempt)
	return err
}
