// Package activities holds every side effect of a job's workflow: Stripe,
// Upsampler, file storage and the job record. Activities are methods on
// Activities, which holds their dependencies; each takes one input struct.
package activities

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/upsampler"
)

// Payments is the part of Stripe the activities use.
type Payments interface {
	GetSession(ctx context.Context, id string) (payments.Session, error)
	ExpireSession(ctx context.Context, sessionID, jobID string) (payments.Session, error)
	Refund(ctx context.Context, p payments.RefundParams) (payments.Refund, error)
	PaymentState(ctx context.Context, paymentIntentID string) (payments.PaymentState, error)
}

// Upsampler is the part of the Upsampler API the activities use.
type Upsampler interface {
	Submit(ctx context.Context, r upsampler.SubmitRequest) (upsampler.Job, error)
	Status(ctx context.Context, id string) (upsampler.Job, error)
}

// Records is the job record as the activities use it (internal/store's
// Store in production), one small interface per phase.
type Records interface {
	PaymentRecords
	UpscaleRecords
	DeliveryRecords
	FailureRecords
	SweepRecords
}

// PaymentRecords are the writes of payment.go.
type PaymentRecords interface {
	MarkPaid(ctx context.Context, p store.Payment) error
	MarkPaymentProcessing(ctx context.Context, id, cause string) error
	MarkAbandoned(ctx context.Context, id, cause string, ps jobs.PaymentStatus) error
	RecordLatePayment(ctx context.Context, p store.Payment) error
	SetCustomerEmail(ctx context.Context, id, email string) error
}

// UpscaleRecords number and note Upsampler submissions (upscale.go).
type UpscaleRecords interface {
	Get(ctx context.Context, id string) (store.Job, error)
	BeginSubmission(ctx context.Context, id string, n int) (bool, error)
	ForgetSubmission(ctx context.Context, id string, n int) error
	RecordSubmission(ctx context.Context, id string, attempt int, upsamplerJobID string) error
	MarkProcessing(ctx context.Context, id, upsamplerJobID string) error
}

// DeliveryRecords are the download link's (delivery.go).
type DeliveryRecords interface {
	MarkCompleted(ctx context.Context, c store.Completion) error
	MarkDownloadExpired(ctx context.Context, id string) error
	SetDownload(ctx context.Context, d store.DownloadChange) error
}

// FailureRecords are a failed job's, its refund's and its retry's (failure.go).
type FailureRecords interface {
	MarkFailed(ctx context.Context, id, reason, detail string) error
	MarkRefunded(ctx context.Context, r store.Refund) error
	MarkRefundFailed(ctx context.Context, id, detail string, nextAttempt int) error
	MarkRefundNeedsAttention(ctx context.Context, id, detail string) (bool, error)
	MarkRetrying(ctx context.Context, id string, attempt int, cause string) error
}

// SweepRecords are what the reconciliation sweep reads (reconcile.go).
type SweepRecords interface {
	EachOwed(ctx context.Context, cutoff time.Time, pageSize int, fn func([]store.OwedJob) error) error
}

// Activities holds the dependencies of the job workflow's activities.
type Activities struct {
	Store     Records
	Payments  Payments
	Upsampler Upsampler
	Files     storage.Store
	// ResultClient downloads Upsampler's output; it only reaches allowed hosts.
	ResultClient   *http.Client
	MaxResultBytes int64
	// PublicBaseURL is where Upsampler's callbacks reach the API.
	PublicBaseURL string
	// Temporal lets the reconciliation sweep see workflows' statuses.
	Temporal client.Client
	// Metrics records business metrics; nil records nothing.
	Metrics *metrics.Business
}

// Non-retryable error types. The workflow maps them to failure reasons.
const (
	ErrTypeStripeRejected    = "StripeRejected"
	ErrTypeUpsamplerRejected = "UpsamplerRejected"
	ErrTypeUpsamplerUnknown  = "UpsamplerJobUnknown"
	ErrTypeResultInvalid     = "ResultInvalid"
	ErrTypeResultGone        = "ResultGone"
	ErrTypeInvalidTransition = "InvalidTransition"
)

// storeErr keeps database outages retryable but stops on a transition the
// job's status forbids, which no retry can fix.
func storeErr(err error) error {
	if errors.Is(err, store.ErrInvalidTransition) || errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidTransition, err)
	}
	return err
}

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
