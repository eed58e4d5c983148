package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// Job is one row of the job record.
type Job struct {
	ID                    string             `db:"id"`
	Status                jobs.Status        `db:"status"`
	ImageURL              string             `db:"image_url"`
	Resolution            jobs.Resolution    `db:"resolution"`
	Email                 *string            `db:"email"`
	PostID                int64              `db:"post_id"`
	AttachmentID          *int64             `db:"attachment_id"`
	ImageWidth            int                `db:"image_width"`
	ImageHeight           int                `db:"image_height"`
	OutputWidth           int                `db:"output_width"`
	OutputHeight          int                `db:"output_height"`
	AccessTokenHash       []byte             `db:"access_token_hash"`
	IdempotencyKeyHash    []byte             `db:"idempotency_key_hash"`
	RequestHash           []byte             `db:"request_hash"`
	CallbackSecret        string             `db:"callback_secret"`
	Currency              string             `db:"currency"`
	PriceCents            int64              `db:"price_cents"`
	MarkupPercent         int                `db:"markup_percent"`
	EstimatedCredits      int64              `db:"estimated_credits"`
	EstimatedCostCents    int64              `db:"estimated_cost_cents"`
	CheckoutSessionID     *string            `db:"checkout_session_id"`
	CheckoutURL           *string            `db:"checkout_url"`
	CheckoutExpiresAt     *time.Time         `db:"checkout_expires_at"`
	PaymentStatus         jobs.PaymentStatus `db:"payment_status"`
	PaymentIntentID       *string            `db:"payment_intent_id"`
	AmountPaidCents       *int64             `db:"amount_paid_cents"`
	PaidCurrency          *string            `db:"paid_currency"`
	CustomerEmail         *string            `db:"customer_email"`
	PaidAt                *time.Time         `db:"paid_at"`
	RefundID              *string            `db:"refund_id"`
	RefundAmountCents     *int64             `db:"refund_amount_cents"`
	RefundedAt            *time.Time         `db:"refunded_at"`
	UpsamplerJobID        *string            `db:"upsampler_job_id"`
	UpsamplerCredits      *float64           `db:"upsampler_credits"`
	UpsamplerCostCents    *int64             `db:"upsampler_cost_cents"`
	ProcessingStartedAt   *time.Time         `db:"processing_started_at"`
	ProcessingCompletedAt *time.Time         `db:"processing_completed_at"`
	FailedAt              *time.Time         `db:"failed_at"`
	FailureReason         *string            `db:"failure_reason"`
	FailureDetail         *string            `db:"failure_detail"`
	ResultKey             *string            `db:"result_key"`
	ResultContentType     *string            `db:"result_content_type"`
	ResultBytes           *int64             `db:"result_bytes"`
	ResultSHA256          *string            `db:"result_sha256"`
	ResultWidth           *int               `db:"result_width"`
	ResultHeight          *int               `db:"result_height"`
	DownloadToken         *string            `db:"download_token"`
	DownloadTokenHash     []byte             `db:"download_token_hash"` // SHA-256 of DownloadToken
	DownloadExpiresAt     *time.Time         `db:"download_expires_at"`
	DownloadExpiredAt     *time.Time         `db:"download_expired_at"`
	RefundStatus          *string            `db:"refund_status"`
	RefundConfirmedAt     *time.Time         `db:"refund_confirmed_at"`
	RefundError           *string            `db:"refund_error"`
	Attempt               int                `db:"attempt"`
	UpsamplerAttempt      *int               `db:"upsampler_attempt"`
	UpsamplerSubmission   *int               `db:"upsampler_submission"`
	RefundAttempt         int                `db:"refund_attempt"`
	RefundRefusedAt       *time.Time         `db:"refund_refused_at"`
	DownloadedAt          *time.Time         `db:"downloaded_at"`
	CreatedAt             time.Time          `db:"created_at"`
	UpdatedAt             time.Time          `db:"updated_at"`
	// Site created the job (nil for jobs from before site keys).
	Site *string `db:"site"`
}

// NewJob is what the API stores when a site asks for a job.
type NewJob struct {
	ID                 string
	Site               string
	ImageURL           string
	Resolution         jobs.Resolution
	Email              string
	PostID             int64
	AttachmentID       *int64
	ImageWidth         int
	ImageHeight        int
	OutputWidth        int
	OutputHeight       int
	AccessTokenHash    []byte
	RequestHash        []byte
	CallbackSecret     string
	Currency           string
	PriceCents         int64
	MarkupPercent      int
	EstimatedCredits   int64
	EstimatedCostCents int64
	CheckoutExpiresAt  time.Time
}

// CreateJob inserts a job in awaiting_payment. When job n.ID exists (a
// request resumed under its idempotency key) it returns that job and
// created=false instead.
func (s *Store) CreateJob(ctx context.Context, n NewJob) (job Job, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var email any
		if n.Email != "" {
			email = n.Email
		}
		tag, err := tx.Exec(ctx, `INSERT INTO jobs (id, status, image_url, resolution, email, post_id,
			attachment_id, image_width, image_height, output_width, output_height, access_token_hash,
			site, request_hash, callback_secret, currency, price_cents, markup_percent,
			estimated_credits, estimated_cost_cents, checkout_expires_at)
			VALUES ($1,'awaiting_payment',$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
			ON CONFLICT (id) DO NOTHING`,
			n.ID, n.ImageURL, n.Resolution, email, n.PostID, n.AttachmentID, n.ImageWidth, n.ImageHeight,
			n.OutputWidth, n.OutputHeight, n.AccessTokenHash, nullable(n.Site), n.RequestHash, n.CallbackSecret,
			n.Currency, n.PriceCents, n.MarkupPercent, n.EstimatedCredits, n.EstimatedCostCents,
			n.CheckoutExpiresAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			job, err = getJob(ctx, tx, `id = $1`, n.ID)
			return err
		}
		created = true
		if err := insertEvent(ctx, tx, n.ID, "", jobs.StatusAwaitingPayment, "created", ""); err != nil {
			return err
		}
		job, err = getJob(ctx, tx, `id = $1`, n.ID)
		return err
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("store: create job: %w", err)
	}
	return job, created, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func getJob(ctx context.Context, q querier, where string, args ...any) (Job, error) {
	rows, err := q.Query(ctx, `SELECT * FROM jobs WHERE `+where, args...)
	if err != nil {
		return Job{}, err
	}
	job, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Job])
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	return job, err
}

// Get returns job id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Job, error) {
	return getJob(ctx, s.pool, `id = $1`, id)
}

// GetByDownloadToken returns the job a download token belongs to, or
// ErrNotFound. The lookup goes by the token's SHA-256, whose index timing
// says nothing about the token; the token itself is compared in constant time.
func (s *Store) GetByDownloadToken(ctx context.Context, token string) (Job, error) {
	job, err := getJob(ctx, s.pool, `download_token_hash = $1`, tokenHash(token))
	if err != nil {
		return Job{}, err
	}
	if job.DownloadToken == nil || subtle.ConstantTimeCompare([]byte(*job.DownloadToken), []byte(token)) != 1 {
		return Job{}, ErrNotFound
	}
	return job, nil
}

// tokenHash is what a download token is looked up by (nil for no token).
func tokenHash(token string) []byte {
	if token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// ListFilter selects jobs for the admin list (the seed's get_jobs).
type ListFilter struct {
	Statuses []jobs.Status // empty means all
	// PaymentStatuses, when not empty, keeps jobs whose payment is in one of them.
	PaymentStatuses []jobs.PaymentStatus
	// Email, when set, keeps jobs whose email (from the site) or
	// customer_email (from Stripe) is exactly this address.
	Email string
	Limit int
	// OrderBy is created_at or updated_at, newest first.
	OrderBy string
	// After, when set, continues a listing after that row.
	After *Cursor
}

// Cursor is a position in a listing: the ordering time and the job ID,
// which breaks ties so that no job is skipped or repeated across pages.
type Cursor struct {
	At time.Time
	ID string
}

// CursorOf is the position of job j in a listing ordered by orderBy.
func CursorOf(j Job, orderBy string) Cursor {
	if orderBy == "updated_at" {
		return Cursor{At: j.UpdatedAt, ID: j.ID}
	}
	return Cursor{At: j.CreatedAt, ID: j.ID}
}

// ListOrderColumns are the columns jobs may be ordered by.
var ListOrderColumns = []string{"created_at", "updated_at"}

// List returns jobs matching f.
func (s *Store) List(ctx context.Context, f ListFilter) ([]Job, error) {
	col := "created_at"
	for _, c := range ListOrderColumns {
		if f.OrderBy == c {
			col = c // from the fixed list only, never from input
		}
	}
	var where []string
	var args []any
	if len(f.Statuses) > 0 {
		args = append(args, statusStrings(f.Statuses))
		where = append(where, fmt.Sprintf("status = ANY($%d)", len(args)))
	}
	if len(f.PaymentStatuses) > 0 {
		ps := make([]string, len(f.PaymentStatuses))
		for i, p := range f.PaymentStatuses {
			ps[i] = string(p)
		}
		args = append(args, ps)
		where = append(where, fmt.Sprintf("payment_status = ANY($%d)", len(args)))
	}
	if f.Email != "" {
		args = append(args, f.Email)
		where = append(where, fmt.Sprintf("(email = $%d OR customer_email = $%d)", len(args), len(args)))
	}
	if f.After != nil {
		args = append(args, f.After.At, f.After.ID)
		where = append(where, fmt.Sprintf("(%s, id) < ($%d, $%d)", col, len(args)-1, len(args)))
	}
	q := `SELECT * FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY %s DESC, id DESC LIMIT $%d", col, len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Job])
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return list, nil
}

// Event is one row of a job's audit trail.
type Event struct {
	ID         int64     `db:"id" json:"id"`
	JobID      string    `db:"job_id" json:"-"`
	FromStatus *string   `db:"from_status" json:"from"`
	ToStatus   string    `db:"to_status" json:"to"`
	Cause      string    `db:"cause" json:"cause"`
	Detail     *string   `db:"detail" json:"detail,omitempty"`
	At         time.Time `db:"at" json:"at"`
}

// Events returns job id's audit trail, oldest first.
func (s *Store) Events(ctx context.Context, id string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM job_events WHERE job_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Event])
}

// nullable stores an empty string as NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
