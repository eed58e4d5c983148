package payments

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// Webhook errors. Each means the request should be answered 400 (Stripe
// retries non-2xx deliveries, which helps only after a fix on our side).
// Where stripe-go has a sentinel it stays in the chain too, e.g.
// errors.Is(err, webhook.ErrNoValidSignature).
var (
	ErrMissingSignature   = errors.New("missing Stripe-Signature header")
	ErrInvalidSignature   = errors.New("invalid Stripe-Signature")
	ErrSignatureTooOld    = errors.New("signature timestamp is too old")
	ErrMalformedEvent     = errors.New("malformed event JSON")
	ErrAPIVersionMismatch = errors.New("event API version mismatch")
)

// Event is a verified Stripe event.
type Event struct {
	ID         string
	Type       string // e.g. checkout.session.completed
	APIVersion string
	Created    time.Time
	Session    *Session // set when data.object is a checkout.session
	// Charge is set when data.object is a charge (charge.refunded, …).
	Charge *Charge
	// Refund is set when data.object is a refund (charge.refund.updated).
	Refund *Refund
}

// ParseEvent verifies the Stripe-Signature header against the endpoint
// secret (300 s tolerance) and the event's API version against the one
// stripe-go v76 is pinned to, then decodes it. payload must be the raw
// request body. An empty secret is a configuration error, not a bad request.
func ParseEvent(payload []byte, sigHeader, secret string) (Event, error) {
	if secret == "" {
		// An HMAC with an empty key is forgeable by anyone.
		return Event{}, errors.New("payments: parse webhook: signing secret is not configured")
	}
	e, err := webhook.ConstructEvent(payload, sigHeader, secret)
	if err != nil {
		return Event{}, fmt.Errorf("payments: parse webhook: %w", classifyWebhookError(payload, err))
	}
	if e.ID == "" || e.Type == "" {
		return Event{}, fmt.Errorf("payments: parse webhook: %w: id or type missing", ErrMalformedEvent)
	}

	out := Event{
		ID:         e.ID,
		Type:       string(e.Type),
		APIVersion: e.APIVersion,
		Created:    time.Unix(e.Created, 0).UTC(),
	}
	if e.Data == nil {
		return out, nil
	}
	var decodeErr error
	switch e.Data.Object["object"] {
	case "checkout.session":
		var cs stripe.CheckoutSession
		if decodeErr = json.Unmarshal(e.Data.Raw, &cs); decodeErr == nil {
			s := sessionFrom(&cs)
			out.Session = &s
		}
	case "charge":
		var ch stripe.Charge
		if decodeErr = json.Unmarshal(e.Data.Raw, &ch); decodeErr == nil {
			c := chargeFrom(&ch)
			out.Charge = &c
		}
	case "refund":
		var r stripe.Refund
		if decodeErr = json.Unmarshal(e.Data.Raw, &r); decodeErr == nil {
			rf := refundFrom(&r)
			out.Refund = &rf
		}
	}
	if decodeErr != nil {
		return Event{}, fmt.Errorf("payments: parse webhook %s: %w: %v", e.ID, ErrMalformedEvent, decodeErr)
	}
	return out, nil
}

func classifyWebhookError(payload []byte, err error) error {
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		return fmt.Errorf("%w: %w", ErrMissingSignature, err)
	case errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNoValidSignature):
		return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	case errors.Is(err, webhook.ErrTooOld):
		return fmt.Errorf("%w: %w", ErrSignatureTooOld, err)
	}
	// The signature was good; stripe-go failed on the JSON or on the API
	// version, with plain errors. Tell them apart by decoding ourselves
	// rather than by matching its messages.
	var probe struct {
		APIVersion string `json:"api_version"`
	}
	if json.Unmarshal(payload, &probe) == nil && probe.APIVersion != stripe.APIVersion {
		return fmt.Errorf("%w: event has %q, stripe-go v%s expects %q (create the webhook endpoint with api_version %s)",
			ErrAPIVersionMismatch, probe.APIVersion, stripe.ClientVersion, stripe.APIVersion, stripe.APIVersion)
	}
	return fmt.Errorf("%w: %v", ErrMalformedEvent, err)
}
