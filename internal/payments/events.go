package payments

// Builders of Stripe-shaped webhook deliveries, for the payment simulator and
// for tests. They are real code, not test-only, because the simulator ships.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
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
	Object any `json:"object"` // sessionJSON, chargeJSON or refundJSON
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

	return eventPayload(eventID, eventType, obj, created)
}

type chargeJSON struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	AmountCaptured     int64             `json:"amount_captured"`
	AmountRefunded     int64             `json:"amount_refunded"`
	BalanceTransaction string            `json:"balance_transaction"`
	Captured           bool              `json:"captured"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Customer           *string           `json:"customer"`
	Description        *string           `json:"description"`
	Disputed           bool              `json:"disputed"`
	FailureCode        *string           `json:"failure_code"`
	FailureMessage     *string           `json:"failure_message"`
	Livemode           bool              `json:"livemode"`
	Metadata           map[string]string `json:"metadata"`
	Paid               bool              `json:"paid"`
	PaymentIntent      *string           `json:"payment_intent"` // a bare ID, as in real deliveries
	Refunded           bool              `json:"refunded"`
	Refunds            *refundListJSON   `json:"refunds,omitempty"` // absent unless expanded since 2022-11-15
	Status             string            `json:"status"`
}

type refundListJSON struct {
	Object  string       `json:"object"`
	Data    []refundJSON `json:"data"`
	HasMore bool         `json:"has_more"`
	URL     string       `json:"url"`
}

type refundJSON struct {
	ID                        string            `json:"id"`
	Object                    string            `json:"object"`
	Amount                    int64             `json:"amount"`
	BalanceTransaction        *string           `json:"balance_transaction"`
	Charge                    *string           `json:"charge"`
	Created                   int64             `json:"created"`
	Currency                  string            `json:"currency"`
	FailureBalanceTransaction *string           `json:"failure_balance_transaction,omitempty"` // failed refunds only
	FailureReason             *string           `json:"failure_reason,omitempty"`              // failed refunds only
	Metadata                  map[string]string `json:"metadata"`
	PaymentIntent             *string           `json:"payment_intent"`
	Reason                    string            `json:"reason"`
	ReceiptNumber             *string           `json:"receipt_number"`
	Status                    string            `json:"status"`
}

func eventPayload(eventID, eventType string, obj any, created time.Time) ([]byte, error) {
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

// ChargeRefundedEventPayload builds the JSON body of a charge.refunded event
// whose data.object is a succeeded card charge as described by ch, rendered
// with the API version stripe-go v76 expects. ch.ID must be set and
// 0 < ch.AmountRefundedCents <= ch.AmountCents; ch.Refunded must say whether
// that is the full amount, as Stripe's refunded flag does.
//
// charge.refunds is rendered (a list of succeeded refunds, newest first,
// sharing AmountRefundedCents equally with any remainder on the first) only
// when ch.RefundIDs is not empty. Without it the object has no refunds field
// at all, which is what Stripe sends on 2023-10-16 unless the endpoint expands
// it. The charge's own "created" is set to the event time. Sign the result
// with SignPayload.
func ChargeRefundedEventPayload(eventID string, ch Charge, created time.Time) ([]byte, error) {
	switch {
	case eventID == "" || ch.ID == "":
		return nil, errors.New("payments: charge.refunded payload: event ID and charge ID are required")
	case ch.AmountRefundedCents <= 0 || ch.AmountRefundedCents > ch.AmountCents:
		return nil, fmt.Errorf("payments: charge.refunded payload: amount refunded %d is not within 1..%d",
			ch.AmountRefundedCents, ch.AmountCents)
	case ch.Refunded != (ch.AmountRefundedCents == ch.AmountCents):
		return nil, fmt.Errorf("payments: charge.refunded payload: refunded=%t contradicts %d of %d refunded",
			ch.Refunded, ch.AmountRefundedCents, ch.AmountCents)
	}
	if created.IsZero() {
		created = time.Now()
	}

	obj := chargeJSON{
		ID:                 ch.ID,
		Object:             "charge",
		Amount:             ch.AmountCents,
		AmountCaptured:     ch.AmountCents,
		AmountRefunded:     ch.AmountRefundedCents,
		BalanceTransaction: "txn_" + randomBase62(24),
		Captured:           true,
		Created:            created.Unix(),
		Currency:           ch.Currency,
		Metadata:           map[string]string{},
		Paid:               true,
		PaymentIntent:      nullable(ch.PaymentIntentID),
		Refunded:           ch.Refunded,
		Status:             string(stripe.ChargeStatusSucceeded),
	}
	if ch.JobID != "" {
		obj.Metadata[metadataJobID] = ch.JobID
	}
	if n := int64(len(ch.RefundIDs)); n > 0 {
		list := &refundListJSON{
			Object: "list",
			Data:   make([]refundJSON, 0, n),
			URL:    "/v1/charges/" + ch.ID + "/refunds",
		}
		share, rest := ch.AmountRefundedCents/n, ch.AmountRefundedCents%n
		for i, id := range ch.RefundIDs {
			amount := share
			if i == 0 {
				amount += rest
			}
			list.Data = append(list.Data, refundJSON{
				ID:                 id,
				Object:             "refund",
				Amount:             amount,
				BalanceTransaction: nullable("txn_" + randomBase62(24)),
				Charge:             nullable(ch.ID),
				Created:            created.Unix(),
				Currency:           ch.Currency,
				Metadata:           refundMetadata(ch.JobID),
				PaymentIntent:      nullable(ch.PaymentIntentID),
				Reason:             string(stripe.RefundReasonRequestedByCustomer),
				Status:             string(stripe.RefundStatusSucceeded),
			})
		}
		obj.Refunds = list
	}
	return eventPayload(eventID, "charge.refunded", obj, created)
}

// ChargeRefundUpdatedEventPayload builds the JSON body of a
// charge.refund.updated event, which on API 2023-10-16 reports a later change
// of a card refund (e.g. to failed, with r.FailureReason: unknown if empty),
// and whose data.object is the refund r. A zero r.Created is set to the
// event time.
// Sign the result with SignPayload.
func ChargeRefundUpdatedEventPayload(eventID string, r Refund, created time.Time) ([]byte, error) {
	if eventID == "" || r.ID == "" || r.Status == "" {
		return nil, errors.New("payments: charge.refund.updated payload: event ID, refund ID and status are required")
	}
	if created.IsZero() {
		created = time.Now()
	}
	obj := refundJSON{
		ID:            r.ID,
		Object:        "refund",
		Amount:        r.AmountCents,
		Charge:        nullable(r.ChargeID),
		Created:       created.Unix(),
		Currency:      r.Currency,
		Metadata:      refundMetadata(r.JobID),
		PaymentIntent: nullable(r.PaymentIntentID),
		Reason:        string(stripe.RefundReasonRequestedByCustomer),
		Status:        r.Status,
	}
	if !r.Created.IsZero() {
		obj.Created = r.Created.Unix()
	}
	if r.Status == string(stripe.RefundStatusFailed) {
		obj.FailureReason = nullable(r.FailureReason)
	}
	switch stripe.RefundStatus(r.Status) {
	case stripe.RefundStatusRequiresAction, stripe.RefundStatusCanceled:
		// No money has moved.
	case stripe.RefundStatusFailed:
		// The failure reverses the refund's balance transaction with another.
		obj.BalanceTransaction = nullable("txn_" + randomBase62(24))
		obj.FailureBalanceTransaction = nullable("txn_" + randomBase62(24))
		if obj.FailureReason == nil {
			obj.FailureReason = nullable(string(stripe.RefundFailureReasonUnknown))
		}
	default:
		obj.BalanceTransaction = nullable("txn_" + randomBase62(24))
	}
	return eventPayload(eventID, "charge.refund.updated", obj, created)
}

func refundMetadata(jobID string) map[string]string {
	m := map[string]string{}
	if jobID != "" {
		m[metadataJobID] = jobID
	}
	return m
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

// NewChargeID returns a random Stripe-looking charge ID (ch_…).
func NewChargeID() string { return "ch_" + randomBase62(24) }

// NewRefundID returns a random Stripe-looking refund ID (re_…).
func NewRefundID() string { return "re_" + randomBase62(24) }

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
