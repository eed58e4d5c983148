package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/store"
)

// CreateCheckoutInput describes the job's Checkout Session. The customer's
// email and return links are read from the job's row, not carried here.
type CreateCheckoutInput struct {
	JobID       string
	AmountCents int64
	Currency    string
	Resolution  jobs.Resolution
	ImageWidth  int
	ImageHeight int
	// Deprecated: CustomerEmail, SuccessURL and CancelURL are set only by
	// workflows started before customer data left Temporal; never set now.
	// The URLs are used only for jobs whose access token is not derived
	// from ACCESS_TOKEN_SECRET (see pageURL).
	CustomerEmail string `json:",omitempty"`
	SuccessURL    string `json:",omitempty"`
	CancelURL     string `json:",omitempty"`
	ExpiresAt     time.Time
}

// CreateCheckout creates the job's Checkout Session at Stripe and records it,
// for workflows started before the API made the session itself.
// Stripe's idempotency key is derived from the job, so retries of this
// activity return the first session instead of creating another. The
// session's URL is recorded on the job, not returned.
func (a *Activities) CreateCheckout(ctx context.Context, in CreateCheckoutInput) (jobs.Checkout, error) {
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return jobs.Checkout{}, storeErr(err)
	}
	email := in.CustomerEmail
	if job.Email != nil {
		email = *job.Email
	}
	name, description := jobs.CheckoutText(in.Resolution, in.ImageWidth, in.ImageHeight)
	s, err := a.Payments.CreateCheckout(ctx, payments.CheckoutParams{
		JobID:         in.JobID,
		AmountCents:   in.AmountCents,
		Currency:      in.Currency,
		ProductName:   name,
		Description:   description,
		CustomerEmail: email,
		SuccessURL:    a.pageURL(job, checkoutSuccess, in.SuccessURL),
		CancelURL:     a.pageURL(job, checkoutCancelled, in.CancelURL),
		ExpiresAt:     in.ExpiresAt,
	})
	if err != nil {
		return jobs.Checkout{}, stripeErr(err)
	}
	if err := a.Store.SetCheckout(ctx, in.JobID, s.ID, s.URL, in.ExpiresAt); err != nil {
		return jobs.Checkout{}, storeErr(err)
	}
	return jobs.Checkout{SessionID: s.ID, ExpiresAt: in.ExpiresAt}, nil
}

// ExpireCheckoutInput names the session to close.
type ExpireCheckoutInput struct {
	JobID     string
	SessionID string
}

// ExpireCheckoutResult tells whether the customer had in fact paid.
type ExpireCheckoutResult struct {
	Paid bool
	// Processing: the session was completed with a delayed payment method
	// that Stripe has not decided on yet.
	Processing bool
	Payment    jobs.StripeEvent // set when Paid or Processing
}

// ExpireCheckout closes the session when the payment window ends, so the
// customer can no longer pay for a job we gave up on. If Stripe says the
// session was already completed and paid, the payment is reported instead;
// the customer's email Stripe reports is recorded here, not returned.
func (a *Activities) ExpireCheckout(ctx context.Context, in ExpireCheckoutInput) (ExpireCheckoutResult, error) {
	s, err := a.Payments.ExpireSession(ctx, in.SessionID, in.JobID)
	if errors.Is(err, payments.ErrSessionNotOpen) {
		s, err = a.Payments.GetSession(ctx, in.SessionID)
	}
	if err != nil {
		return ExpireCheckoutResult{}, stripeErr(err)
	}
	if s.Status == "complete" {
		if err := a.Store.SetCustomerEmail(ctx, in.JobID, s.CustomerEmail); err != nil {
			return ExpireCheckoutResult{}, err // retried: the row must have it before the payment is recorded
		}
		return ExpireCheckoutResult{Paid: s.PaymentStatus == "paid", Processing: s.PaymentStatus == "unpaid", Payment: jobs.StripeEvent{
			Type:            "checkout.session.retrieved",
			SessionID:       s.ID,
			PaymentStatus:   s.PaymentStatus,
			PaymentIntentID: s.PaymentIntentID,
			AmountCents:     s.AmountTotal,
			Currency:        s.Currency,
		}}, nil
	}
	return ExpireCheckoutResult{}, nil
}

func stripeErr(err error) error {
	if payments.Retryable(err) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeStripeRejected, err)
}

// RecordPaymentInput is a confirmed payment. Its Payment carries no
// customer email now (the row has it already); those of older workflows do.
type RecordPaymentInput struct {
	JobID   string
	Cause   string // Stripe event ID, or how the payment was learned
	Payment jobs.StripeEvent
}

// RecordPayment moves the job to pending with its payment details.
func (a *Activities) RecordPayment(ctx context.Context, in RecordPaymentInput) error {
	if err := a.Store.MarkPaid(ctx, in.record()); err != nil {
		return storeErr(err)
	}
	a.Metrics.Paid(in.Payment.AmountCents)
	return nil
}

func (in RecordPaymentInput) record() store.Payment {
	return store.Payment{
		JobID:           in.JobID,
		Cause:           in.Cause,
		PaymentIntentID: in.Payment.PaymentIntentID,
		AmountCents:     in.Payment.AmountCents,
		Currency:        in.Payment.Currency,
		CustomerEmail:   in.Payment.CustomerEmail,
	}
}

// MarkPaymentProcessingInput is a Checkout completed with a delayed method.
type MarkPaymentProcessingInput struct {
	JobID string
	Cause string // the Stripe event ID
}

// MarkPaymentProcessing records that the customer's delayed payment is
// being processed by their bank.
func (a *Activities) MarkPaymentProcessing(ctx context.Context, in MarkPaymentProcessingInput) error {
	return storeErr(a.Store.MarkPaymentProcessing(ctx, in.JobID, in.Cause))
}

// RecordAbandonedInput closes an unpaid job.
type RecordAbandonedInput struct {
	JobID         string
	Cause         string
	PaymentStatus jobs.PaymentStatus
}

// RecordAbandoned marks the job abandoned.
func (a *Activities) RecordAbandoned(ctx context.Context, in RecordAbandonedInput) error {
	if err := a.Store.MarkAbandoned(ctx, in.JobID, in.Cause, in.PaymentStatus); err != nil {
		return storeErr(err)
	}
	a.Metrics.JobFinished(metrics.JobAbandoned)
	return nil
}

// FailJobInput ends a job that cannot be delivered.
type FailJobInput struct {
	JobID  string
	Reason string // one of the jobs.Reason* values
	Detail string
}

// FailJob marks the job failed with its reason.
func (a *Activities) FailJob(ctx context.Context, in FailJobInput) error {
	if err := a.Store.MarkFailed(ctx, in.JobID, in.Reason, in.Detail); err != nil {
		return storeErr(err)
	}
	a.Metrics.JobFinished(metrics.JobFailed)
	a.Metrics.JobFailedBecause(in.Reason)
	return nil
}
