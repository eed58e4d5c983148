// Package activities holds every side effect of a job's workflow: Stripe,
// Upsampler, file storage and the job record. Activities are methods on
// Activities, which holds their dependencies; each takes one input struct.
package activities

import (
	"context"
	"errors"
	"net/http"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"hires/internal/events"
	"hires/internal/mail"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/upsampler"
)

// Payments is the part of Stripe the activities use.
type Payments interface {
	CreateCheckout(ctx context.Context, p payments.CheckoutParams) (payments.Session, error)
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

// Activities holds the dependencies of the job workflow's activities.
type Activities struct {
	Store     *store.Store
	Payments  Payments
	Upsampler Upsampler
	Files     storage.Store
	// ResultClient downloads Upsampler's output; it only reaches allowed hosts.
	ResultClient   *http.Client
	MaxResultBytes int64
	// PublicBaseURL is where Upsampler's callbacks reach the API.
	PublicBaseURL string
	// AccessSecret derives customers' access tokens (ACCESS_TOKEN_SECRET),
	// so that links to a job's page are made here, never carried by Temporal.
	AccessSecret []byte
	// Temporal lets the reconciliation sweep see workflows' statuses.
	Temporal client.Client
	// Mailer sends customers' emails; nil when email is off.
	Mailer *mail.Mailer
	// Events delivers integration events; nil or empty when off.
	Events *events.Sender
	// SiteName signs the emails.
	SiteName string
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
