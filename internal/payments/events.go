package payments

// Builders of Stripe-shaped webhook deliveries, for the payment simulator and
// for tests. They are real code, not test-only, because the simulator ships.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

type eventJSON struct {
	ID              string          `json:"id"`
	Object          string          `json:"object"`
	APIVersion      string          `json:"api_version"`
	Created         int64           `json:"created"`
	Data            eventDataJSON   `json:"data"`
	Livemode        bool            `json:"livemode"`
	PendingWebhooks int64           `json:"pending_webhooks"`
	Request         eventRequestRef `json:"request"`
	Type            string          `json:"type"`
}

type eventDataJSON struct {
	Object sessionJSON `json:"object"`
}

type eventRequestRef struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

type sessionJSON struct {
	ID                 string               `json:"id"`
	Object             string               `json:"object"`
	AmountSubtotal     int64                `json:"amount_subtotal"`
	AmountTotal        int64                `json:"amount_total"`
	ClientReferenceID  *string              `json:"client_reference_id"`
	Created            int64                `json:"created"`
	Currency           string               `json:"currency"`
	CustomerDetails    *customerDetailsJSON `json:"customer_details"`
	CustomerEmail      *string              `json:"customer_email"`
	ExpiresAt          int64                `json:"expires_at"`
	Livemode           bool                 `json:"livemode"`
	Metadata           map[string]string    `json:"metadata"`
	Mode               string               `json:"mode"`
	PaymentIntent      *string              `json:"payment_intent"` // a bare ID, as in real deliveries
	PaymentMethodTypes []string             `json:"payment_method_types"`
	PaymentStatus      string               `json:"payment_status"`
	Status             string               `json:"status"`
	URL                *string              `json:"url"`
}

type customerDetailsJSON struct {
	Address   *struct{} `json:"address"`
	Email     string    `json:"email"`
	Name      *string   `json:"name"`
	Phone     *string   `json:"phone"`
	TaxExempt string    `json:"tax_exempt"`
	TaxIDs    []string  `json:"tax_ids"`
}

// CheckoutEventPayload builds the JSON body of a Stripe event of eventType
// (checkout.session.completed, ….expired, …) whose data.object is the
// checkout.session s, rendered with the API version stripe-go v76 expects.
// The session's own "created" is set to the event time, since Session does
// not carry it. Sign the result with SignPayload.
func CheckoutEventPayload(eventID, eventType string, s Session, created time.Time) ([]byte, error) {
	if eventID == "" || eventType == "" || s.ID == "" {
		return nil, errors.New("payments: checkout event payload: event ID, type and session ID are required")
	}
	if created.IsZero() {
		created = time.Now()
	}

	obj := sessionJSON{
		ID:                 s.ID,
		Object:             "checkout.session",
		AmountSubtotal:     s.AmountTotal,
		AmountTotal:        s.AmountTotal,
		ClientReferenceID:  nullable(s.ClientReferenceID),
		Created:            created.Unix(),
		Currency:           s.Currency,
		CustomerEmail:      nullable(s.CustomerEmail),
		Livemode:           false,
		Metadata:           map[string]string{},
		Mode:               string(stripe.CheckoutSessionModePayment),
		PaymentIntent:      nullable(s.PaymentIntentID),
		PaymentMethodTypes: []string{"card"},
		PaymentStatus:      s.PaymentStatus,
		Status:             s.Status,
	}
	if s.ClientReferenceID == "" {
		obj.ClientReferenceID = nullable(s.JobID)
	}
	if s.JobID != "" {
		obj.Metadata[metadataJobID] = s.JobID
	}
	if s.CustomerEmail != "" {
		obj.CustomerDetails = &customerDetailsJSON{Email: s.CustomerEmail, TaxExempt: "none", TaxIDs: []string{}}
	}
	if !s.ExpiresAt.IsZero() {
		obj.ExpiresAt = s.ExpiresAt.Unix()
	}
	// Stripe nulls the hosted page URL once the session is complete or expired.
	if s.Status == string(stripe.CheckoutSessionStatusOpen) {
		obj.URL = nullable(s.URL)
	}

	return json.Marshal(eventJSON{
		ID:              eventID,
		Object:          "event",
		APIVersion:      stripe.APIVersion,
		Created:         created.Unix(),
		Data:            eventDataJSON{Object: obj},
		Livemode:        false,
		PendingWebhooks: 1,
		Type:            eventType,
	})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// SignPayload returns the Stripe-Signature header Stripe would send for
// payload signed with secret at time at (now if zero).
func SignPayload(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   payload,
		Secret:    secret,
		Timestamp: at,
	}).Header
}

// NewEventID returns a random Stripe-looking event ID (evt_…).
func NewEventID() string { return "evt_" + randomBase62(24) }

// NewPaymentIntentID returns a random Stripe-looking PaymentIntent ID (pi_…).
func NewPaymentIntentID() string { return "pi_" + randomBase62(24) }

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		rand.Read(buf) // never fails since Go 1.24
		for _, b := range buf {
			// Reject the top 8 values so that every character is equally likely.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}
