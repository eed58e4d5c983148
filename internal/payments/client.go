// Package payments is the service's only door to Stripe (stripe-go v76, API
// version 2023-10-16): it creates, reads and expires a job's Checkout Session,
// classifies Stripe errors for Temporal retries and verifies webhooks.
package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

const (
	httpTimeout = 30 * time.Second
	// stripe-go's own retries (network errors, 409, 503, lock timeouts) are
	// safe because every POST we send carries a job-derived idempotency key.
	networkRetries = 2

	minAmountCents = 50 // Stripe's minimum charge in USD
	minCheckoutTTL = 30 * time.Minute
	maxCheckoutTTL = 24 * time.Hour
	maxJobIDLen    = 200 // client_reference_id's maxLength
	metadataJobID  = "job_id"
)

// Client talks to one Stripe API base URL with one secret key. It uses no
// stripe-go global state, so several clients can coexist (e.g. in tests).
type Client struct {
	api *client.API
	key string // kept only to redact it from error messages
	now func() time.Time
}

// New returns a Client for apiBase (https://api.stripe.com in production,
// stripe-mock's http URL locally). stripe-go's logger is silenced so that
// nothing about requests is logged by the library.
func New(secretKey, apiBase string) (*Client, error) {
	return newClient(secretKey, apiBase, networkRetries)
}

func newClient(secretKey, apiBase string, retries int64) (*Client, error) {
	if err := validateKey(secretKey); err != nil {
		return nil, err
	}
	if err := validateURL(apiBase); err != nil {
		return nil, fmt.Errorf("payments: api base: %w", err)
	}

	httpClient := &http.Client{Timeout: httpTimeout}
	backend := func(t stripe.SupportedBackend, u *string) stripe.Backend {
		return stripe.GetBackendWithConfig(t, &stripe.BackendConfig{
			URL:               u, // nil keeps stripe-go's default for Connect/Uploads
			HTTPClient:        httpClient,
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
			MaxNetworkRetries: stripe.Int64(retries),
		})
	}
	backends := &stripe.Backends{
		API:     backend(stripe.APIBackend, stripe.String(apiBase)),
		Connect: backend(stripe.ConnectBackend, nil),
		Uploads: backend(stripe.UploadsBackend, nil),
	}
	return &Client{api: client.New(secretKey, backends), key: secretKey, now: time.Now}, nil
}

func validateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("payments: secret key: %w: empty", ErrInvalidInput)
	case !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_"):
		// Never echo the key: it may be a real secret pasted in the wrong place.
		return fmt.Errorf("payments: secret key: %w: must start with sk_ or rk_", ErrInvalidInput)
	case strings.ContainsAny(key, " \t\r\n"):
		return fmt.Errorf("payments: secret key: %w: contains whitespace", ErrInvalidInput)
	}
	return nil
}

// validateURL accepts absolute http(s) URLs only. It does not echo the URL,
// which might carry credentials.
func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrInvalidInput)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: want an absolute http(s) URL", ErrInvalidInput)
	}
	return nil
}

// CheckoutParams describes the Checkout Session for one job.
type CheckoutParams struct {
	JobID         string
	AmountCents   int64
	Currency      string // lowercase ISO 4217, e.g. "usd"
	ProductName   string
	Description   string
	CustomerEmail string // optional: Checkout asks for it when empty
	SuccessURL    string // may contain Stripe's {CHECKOUT_SESSION_ID} template
	CancelURL     string
	// ExpiresAt must be computed once (in the workflow input), not per
	// attempt: a retry with a different expires_at under the same
	// idempotency key is rejected by Stripe.
	ExpiresAt time.Time
}

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

func (p CheckoutParams) validate(now time.Time) error {
	switch {
	case p.JobID == "":
		return fmt.Errorf("%w: job ID is empty", ErrInvalidInput)
	case len(p.JobID) > maxJobIDLen:
		return fmt.Errorf("%w: job ID is longer than %d bytes", ErrInvalidInput, maxJobIDLen)
	case p.AmountCents < minAmountCents:
		return fmt.Errorf("%w: amount %d is below Stripe's minimum of %d cents", ErrInvalidInput, p.AmountCents, minAmountCents)
	case !currencyRE.MatchString(p.Currency):
		return fmt.Errorf("%w: currency %q is not a lowercase ISO code", ErrInvalidInput, p.Currency)
	case p.ProductName == "":
		return fmt.Errorf("%w: product name is empty", ErrInvalidInput)
	}
	if err := validateURL(p.SuccessURL); err != nil {
		return fmt.Errorf("success URL: %w", err)
	}
	if err := validateURL(p.CancelURL); err != nil {
		return fmt.Errorf("cancel URL: %w", err)
	}
	if p.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: expires_at is not set", ErrInvalidInput)
	}
	// Stripe accepts 30 min..24 h after session creation; a retry that
	// falls outside it would fail at Stripe anyway.
	if ttl := p.ExpiresAt.Sub(now); ttl < minCheckoutTTL || ttl > maxCheckoutTTL {
		return fmt.Errorf("%w: expires_at is %s from now, want between %s and %s",
			ErrInvalidInput, ttl.Round(time.Second), minCheckoutTTL, maxCheckoutTTL)
	}
	return nil
}

// Session is the part of a Checkout Session the service uses.
type Session struct {
	ID                string
	URL               string
	Status            string // open, complete, expired
	PaymentStatus     string // paid, unpaid, no_payment_required
	PaymentIntentID   string
	AmountTotal       int64
	Currency          string
	CustomerEmail     string // customer_details.email, else customer_email
	JobID             string // metadata.job_id, else client_reference_id
	ClientReferenceID string
	ExpiresAt         time.Time
}

func sessionFrom(s *stripe.CheckoutSession) Session {
	out := Session{
		ID:                s.ID,
		URL:               s.URL,
		Status:            string(s.Status),
		PaymentStatus:     string(s.PaymentStatus),
		AmountTotal:       s.AmountTotal,
		Currency:          string(s.Currency),
		CustomerEmail:     s.CustomerEmail,
		JobID:             s.Metadata[metadataJobID],
		ClientReferenceID: s.ClientReferenceID,
	}
	if s.PaymentIntent != nil {
		out.PaymentIntentID = s.PaymentIntent.ID
	}
	if s.CustomerDetails != nil && s.CustomerDetails.Email != "" {
		out.CustomerEmail = s.CustomerDetails.Email
	}
	if out.JobID == "" {
		out.JobID = s.ClientReferenceID
	}
	if s.ExpiresAt != 0 {
		out.ExpiresAt = time.Unix(s.ExpiresAt, 0).UTC()
	}
	return out
}

// CreateCheckout creates the job's Checkout Session (mode payment, one line
// item). The idempotency key is derived from the job, so a retried Temporal
// activity gets the first session back instead of creating a second one.
func (c *Client) CreateCheckout(ctx context.Context, p CheckoutParams) (Session, error) {
	if err := p.validate(c.now()); err != nil {
		return Session{}, fmt.Errorf("payments: create checkout for job %s: %w", p.JobID, err)
	}

	product := &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String(p.ProductName)}
	if p.Description != "" {
		product.Description = stripe.String(p.Description) // Stripe rejects an empty description
	}
	params := &stripe.CheckoutSessionParams{
		Mode: stripe.String(string(stripe.CheckoutSessionModePayment)),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String(p.Currency),
				UnitAmount:  stripe.Int64(p.AmountCents),
				ProductData: product,
			},
		}},
		ClientReferenceID: stripe.String(p.JobID),
		SuccessURL:        stripe.String(p.SuccessURL),
		CancelURL:         stripe.String(p.CancelURL),
		ExpiresAt:         stripe.Int64(p.ExpiresAt.Unix()),
		// On the PaymentIntent too, so charges and refunds can be traced to the job.
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{metadataJobID: p.JobID},
		},
	}
	if p.CustomerEmail != "" {
		params.CustomerEmail = stripe.String(p.CustomerEmail)
	}
	params.AddMetadata(metadataJobID, p.JobID)
	params.SetIdempotencyKey("checkout:" + p.JobID)
	params.Context = ctx

	s, err := c.api.CheckoutSessions.New(params)
	if err != nil {
		return Session{}, fmt.Errorf("payments: create checkout for job %s: %w", p.JobID, c.apiError(err))
	}
	return sessionFrom(s), nil
}

// GetSession reads a Checkout Session with its PaymentIntent expanded.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, fmt.Errorf("payments: get session: %w: session ID is empty", ErrInvalidInput)
	}
	params := &stripe.CheckoutSessionParams{}
	params.AddExpand("payment_intent")
	params.Context = ctx

	s, err := c.api.CheckoutSessions.Get(id, params)
	if err != nil {
		return Session{}, fmt.Errorf("payments: get session %s: %w", id, c.apiError(err))
	}
	return sessionFrom(s), nil
}

// ExpireSession expires an open Checkout Session. If the session is no
// longer open (complete or already expired) the error wraps
// ErrSessionNotOpen: the caller should then GetSession, because the customer
// may have paid just before the expiry.
func (c *Client) ExpireSession(ctx context.Context, sessionID, jobID string) (Session, error) {
	if sessionID == "" || jobID == "" {
		return Session{}, fmt.Errorf("payments: expire session %s for job %s: %w: session ID and job ID are required",
			sessionID, jobID, ErrInvalidInput)
	}
	params := &stripe.CheckoutSessionExpireParams{}
	params.SetIdempotencyKey("expire:" + jobID)
	params.Context = ctx

	s, err := c.api.CheckoutSessions.Expire(sessionID, params)
	if err != nil {
		err = c.apiError(err)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.notOpen() {
			err = fmt.Errorf("%w: %w", ErrSessionNotOpen, err)
		}
		return Session{}, fmt.Errorf("payments: expire session %s for job %s: %w", sessionID, jobID, err)
	}
	return sessionFrom(s), nil
}
