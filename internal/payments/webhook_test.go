package payments

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

const testSecret = "whsec_test_secret"

func testSession(status, paymentStatus string) Session {
	return Session{
		ID:                "cs_test_a1",
		URL:               "https://checkout.stripe.com/c/pay/cs_test_a1",
		Status:            status,
		PaymentStatus:     paymentStatus,
		PaymentIntentID:   "pi_3Abc",
		AmountTotal:       499,
		Currency:          "usd",
		CustomerEmail:     "ada@example.com",
		JobID:             "job_1",
		ClientReferenceID: "job_1",
		ExpiresAt:         time.Unix(1_800_000_000, 0).UTC(),
	}
}

func TestParseEventRoundTrip(t *testing.T) {
	now := time.Now()
	tests := []struct {
		eventType string
		session   Session
	}{
		{"checkout.session.completed", testSession("complete", "paid")},
		{"checkout.session.completed", testSession("complete", "unpaid")},
		{"checkout.session.async_payment_succeeded", testSession("complete", "paid")},
		{"checkout.session.async_payment_failed", testSession("complete", "unpaid")},
		{"checkout.session.expired", func() Session {
			s := testSession("expired", "unpaid")
			s.PaymentIntentID = ""
			return s
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.eventType+"/"+tc.session.PaymentStatus, func(t *testing.T) {
			id := NewEventID()
			payload, err := CheckoutEventPayload(id, tc.eventType, tc.session, now)
			require.NoError(t, err)

			got, err := ParseEvent(payload, SignPayload(payload, testSecret, now), testSecret)
			require.NoError(t, err)

			assert.Equal(t, id, got.ID)
			assert.Equal(t, tc.eventType, got.Type)
			assert.Equal(t, stripe.APIVersion, got.APIVersion)
			assert.Equal(t, now.Unix(), got.Created.Unix())
			require.NotNil(t, got.Session)
			want := tc.session
			want.URL = "" // null once the session is no longer open
			assert.Equal(t, want, *got.Session)
		})
	}
}

func TestParseEventOpenSessionKeepsURL(t *testing.T) {
	s := testSession("open", "unpaid")
	payload, err := CheckoutEventPayload(NewEventID(), "checkout.session.created", s, time.Time{})
	require.NoError(t, err)
	got, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Time{}), testSecret)
	require.NoError(t, err)
	require.NotNil(t, got.Session)
	assert.Equal(t, s, *got.Session)
}

func TestParseEventObjects(t *testing.T) {
	tests := []struct {
		name, eventType, object string
		session, charge, refund bool
	}{
		{"minimal charge", "charge.refunded", `{"id":"ch_1","object":"charge"}`, false, true, false},
		{"minimal refund", "charge.refund.updated", `{"id":"re_1","object":"refund"}`, false, false, true},
		{"payment intent is ignored", "payment_intent.succeeded", `{"id":"pi_1","object":"payment_intent"}`, false, false, false},
		{"no object field", "charge.refunded", `{"id":"ch_1"}`, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(`{"id":"evt_1","object":"event","api_version":"` + stripe.APIVersion +
				`","created":1700000000,"type":"` + tc.eventType + `","data":{"object":` + tc.object + `}}`)
			got, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
			require.NoError(t, err)
			assert.Equal(t, tc.eventType, got.Type)
			assert.Equal(t, tc.session, got.Session != nil)
			assert.Equal(t, tc.charge, got.Charge != nil)
			assert.Equal(t, tc.refund, got.Refund != nil)
			if tc.charge {
				assert.Equal(t, Charge{ID: "ch_1"}, *got.Charge)
			}
			if tc.refund {
				assert.Equal(t, Refund{ID: "re_1"}, *got.Refund)
			}
		})
	}
}

func TestParseEventMalformedObjects(t *testing.T) {
	for _, obj := range []string{
		`{"id":"ch_1","object":"charge","amount":"499"}`,
		`{"id":"ch_1","object":"charge","refunds":{"object":"list","data":[42]}}`,
		`{"id":"re_1","object":"refund","amount":true}`,
		`{"id":"cs_1","object":"checkout.session","amount_total":"x"}`,
	} {
		t.Run(obj, func(t *testing.T) {
			payload := []byte(`{"id":"evt_1","object":"event","api_version":"` + stripe.APIVersion +
				`","created":1700000000,"type":"charge.refunded","data":{"object":` + obj + `}}`)
			_, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
			require.ErrorIs(t, err, ErrMalformedEvent)
			assert.Contains(t, err.Error(), "payments: parse webhook evt_1: ")
			assert.False(t, Retryable(err))
		})
	}
}

func testCharge() Charge {
	return Charge{
		ID:                  "ch_3Abc",
		PaymentIntentID:     "pi_3Abc",
		AmountCents:         499,
		AmountRefundedCents: 499,
		Currency:            "usd",
		Refunded:            true,
		RefundIDs:           []string{"re_3Abc"},
		JobID:               "job_1",
	}
}

func TestParseEventChargeRefunded(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		mutate func(*Charge)
	}{
		{"full refund", func(*Charge) {}},
		{"partial refund", func(c *Charge) { c.AmountRefundedCents, c.Refunded = 200, false }},
		{"full refund in two parts", func(c *Charge) { c.RefundIDs = []string{"re_2", "re_1"} }},
		{"full refund without refunds list", func(c *Charge) { c.RefundIDs = nil }},
		{"partial refund without refunds list", func(c *Charge) { c.AmountRefundedCents, c.Refunded, c.RefundIDs = 1, false, nil }},
		{"no job in metadata", func(c *Charge) { c.JobID = "" }},
		{"no payment intent", func(c *Charge) { c.PaymentIntentID = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := testCharge()
			tc.mutate(&ch)
			id := NewEventID()
			payload, err := ChargeRefundedEventPayload(id, ch, now)
			require.NoError(t, err)

			got, err := ParseEvent(payload, SignPayload(payload, testSecret, now), testSecret)
			require.NoError(t, err)
			assert.Equal(t, id, got.ID)
			assert.Equal(t, "charge.refunded", got.Type)
			assert.Equal(t, stripe.APIVersion, got.APIVersion)
			assert.Equal(t, now.Unix(), got.Created.Unix())
			assert.Nil(t, got.Session)
			assert.Nil(t, got.Refund)
			require.NotNil(t, got.Charge)
			assert.Equal(t, ch, *got.Charge)
		})
	}
}

func testRefund(status string) Refund {
	return Refund{
		ID:              "re_3Abc",
		PaymentIntentID: "pi_3Abc",
		ChargeID:        "ch_3Abc",
		Status:          status,
		AmountCents:     499,
		Currency:        "usd",
		Created:         time.Unix(1_700_000_000, 0).UTC(),
		JobID:           "job_1",
	}
}

func TestParseEventChargeRefundUpdated(t *testing.T) {
	now := time.Now()
	failed := testRefund("failed")
	failed.FailureReason = "expired_or_canceled_card"
	noJob := testRefund("succeeded")
	noJob.JobID = "" // e.g. a refund made in the Dashboard
	tests := []struct {
		name   string
		refund Refund
	}{
		{"failed", failed},
		{"succeeded", testRefund("succeeded")},
		{"pending", testRefund("pending")},
		{"requires_action", testRefund("requires_action")},
		{"canceled", testRefund("canceled")},
		{"no job", noJob},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := NewEventID()
			payload, err := ChargeRefundUpdatedEventPayload(id, tc.refund, now)
			require.NoError(t, err)

			got, err := ParseEvent(payload, SignPayload(payload, testSecret, now), testSecret)
			require.NoError(t, err)
			assert.Equal(t, id, got.ID)
			assert.Equal(t, "charge.refund.updated", got.Type)
			assert.Equal(t, now.Unix(), got.Created.Unix())
			assert.Nil(t, got.Session)
			assert.Nil(t, got.Charge)
			require.NotNil(t, got.Refund)
			assert.Equal(t, tc.refund, *got.Refund)
		})
	}
}

func TestChargeRefundUpdatedCreatedDefaultsToEventTime(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	r := testRefund("failed")
	r.Created = time.Time{}
	payload, err := ChargeRefundUpdatedEventPayload("evt_1", r, now)
	require.NoError(t, err)
	got, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
	require.NoError(t, err)
	require.NotNil(t, got.Refund)
	assert.Equal(t, now.UTC(), got.Refund.Created)
}

// withAPIVersion re-renders payload with another api_version.
func withAPIVersion(t *testing.T, payload []byte, version string) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	m["api_version"] = version
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestParseEventErrors(t *testing.T) {
	now := time.Now()
	payload, err := CheckoutEventPayload(NewEventID(), "checkout.session.completed", testSession("complete", "paid"), now)
	require.NoError(t, err)
	tampered := []byte(string(payload[:len(payload)-1]) + ` }`)
	newer := withAPIVersion(t, payload, "2025-03-31.basil")
	garbage := []byte(`{"id": "evt_1", "type": `)

	tests := []struct {
		name      string
		payload   []byte
		header    string
		want      error
		wantStrip error // stripe-go's sentinel, when it has one
	}{
		{"no header", payload, "", ErrMissingSignature, webhook.ErrNotSigned},
		{"tampered body", tampered, SignPayload(payload, testSecret, now), ErrInvalidSignature, webhook.ErrNoValidSignature},
		{"wrong secret", payload, SignPayload(payload, "whsec_other", now), ErrInvalidSignature, webhook.ErrNoValidSignature},
		{"unparsable header", payload, "t=abc,v1=00", ErrInvalidSignature, webhook.ErrInvalidHeader},
		{"10 minutes old", payload, SignPayload(payload, testSecret, now.Add(-10*time.Minute)), ErrSignatureTooOld, webhook.ErrTooOld},
		{"api version mismatch", newer, SignPayload(newer, testSecret, now), ErrAPIVersionMismatch, nil},
		{"garbage json", garbage, SignPayload(garbage, testSecret, now), ErrMalformedEvent, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEvent(tc.payload, tc.header, testSecret)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			if tc.wantStrip != nil {
				assert.ErrorIs(t, err, tc.wantStrip)
			}
			for _, other := range []error{ErrMissingSignature, ErrInvalidSignature, ErrSignatureTooOld, ErrMalformedEvent, ErrAPIVersionMismatch} {
				if other != tc.want {
					assert.NotErrorIs(t, err, other)
				}
			}
			assert.False(t, Retryable(err))
			assert.NotContains(t, err.Error(), testSecret)
		})
	}
}

func TestParseEventVersionMismatchMessage(t *testing.T) {
	payload := withAPIVersion(t, []byte(`{"id":"evt_1","type":"checkout.session.completed"}`), "2025-03-31.basil")
	_, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
	require.ErrorIs(t, err, ErrAPIVersionMismatch)
	assert.Contains(t, err.Error(), `"2025-03-31.basil"`)
	assert.Contains(t, err.Error(), stripe.APIVersion)
}

func TestParseEventRequiresSecret(t *testing.T) {
	payload := []byte(`{}`)
	_, err := ParseEvent(payload, SignPayload(payload, "", time.Now()), "")
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrInvalidSignature))
}

func TestCheckoutEventPayloadShape(t *testing.T) {
	s := testSession("complete", "paid")
	payload, err := CheckoutEventPayload("evt_1", "checkout.session.completed", s, time.Unix(1_700_000_000, 0))
	require.NoError(t, err)

	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	assert.Equal(t, "event", m["object"])
	assert.Equal(t, stripe.APIVersion, m["api_version"])
	assert.Equal(t, false, m["livemode"])
	assert.Equal(t, float64(1_700_000_000), m["created"])

	obj := m["data"].(map[string]any)["object"].(map[string]any)
	assert.Equal(t, "checkout.session", obj["object"])
	assert.Equal(t, "payment", obj["mode"])
	assert.Equal(t, "pi_3Abc", obj["payment_intent"], "payment_intent is a bare ID in webhooks")
	assert.Equal(t, float64(499), obj["amount_total"])
	assert.Equal(t, float64(499), obj["amount_subtotal"])
	assert.Equal(t, map[string]any{"job_id": "job_1"}, obj["metadata"])
	assert.Equal(t, "ada@example.com", obj["customer_details"].(map[string]any)["email"])
	assert.Equal(t, "ada@example.com", obj["customer_email"])
	assert.Equal(t, float64(1_800_000_000), obj["expires_at"])
	assert.Contains(t, obj, "url")
	assert.Nil(t, obj["url"], "url is null once complete")

	_, err = CheckoutEventPayload("", "checkout.session.completed", s, time.Now())
	assert.Error(t, err)
}

func TestNewIDs(t *testing.T) {
	tests := []struct {
		prefix string
		newID  func() string
	}{
		{"evt", NewEventID},
		{"pi", NewPaymentIntentID},
		{"ch", NewChargeID},
		{"re", NewRefundID},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			re := regexp.MustCompile(`^` + tc.prefix + `_[0-9A-Za-z]{24}$`)
			seen := map[string]bool{}
			for range 100 {
				id := tc.newID()
				assert.Regexp(t, re, id)
				assert.False(t, seen[id], "duplicate %s", id)
				seen[id] = true
			}
		})
	}
}

func TestChargeRefundedEventPayloadShape(t *testing.T) {
	ch := testCharge()
	ch.RefundIDs = []string{"re_new", "re_old"}
	ch.AmountCents, ch.AmountRefundedCents = 501, 501
	payload, err := ChargeRefundedEventPayload("evt_1", ch, time.Unix(1_700_000_000, 0))
	require.NoError(t, err)

	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	assert.Equal(t, "event", m["object"])
	assert.Equal(t, "charge.refunded", m["type"])
	assert.Equal(t, stripe.APIVersion, m["api_version"])
	assert.Equal(t, false, m["livemode"])
	assert.Equal(t, float64(1_700_000_000), m["created"])

	obj := m["data"].(map[string]any)["object"].(map[string]any)
	assert.Equal(t, "ch_3Abc", obj["id"])
	assert.Equal(t, "charge", obj["object"])
	assert.Equal(t, "succeeded", obj["status"])
	assert.Equal(t, true, obj["paid"])
	assert.Equal(t, true, obj["captured"])
	assert.Equal(t, true, obj["refunded"])
	assert.Equal(t, float64(501), obj["amount"])
	assert.Equal(t, float64(501), obj["amount_captured"])
	assert.Equal(t, float64(501), obj["amount_refunded"])
	assert.Equal(t, "usd", obj["currency"])
	assert.Equal(t, "pi_3Abc", obj["payment_intent"], "payment_intent is a bare ID in webhooks")
	assert.Equal(t, map[string]any{"job_id": "job_1"}, obj["metadata"])
	assert.Regexp(t, `^txn_`, obj["balance_transaction"])

	refunds := obj["refunds"].(map[string]any)
	assert.Equal(t, "list", refunds["object"])
	assert.Equal(t, false, refunds["has_more"])
	assert.Equal(t, "/v1/charges/ch_3Abc/refunds", refunds["url"])
	data := refunds["data"].([]any)
	require.Len(t, data, 2)
	var total float64
	for i, id := range []string{"re_new", "re_old"} {
		r := data[i].(map[string]any)
		assert.Equal(t, id, r["id"])
		assert.Equal(t, "refund", r["object"])
		assert.Equal(t, "succeeded", r["status"])
		assert.Equal(t, "requested_by_customer", r["reason"])
		assert.Equal(t, "pi_3Abc", r["payment_intent"])
		assert.Equal(t, "ch_3Abc", r["charge"])
		assert.Equal(t, "usd", r["currency"])
		assert.NotContains(t, r, "failure_reason")
		total += r["amount"].(float64)
	}
	assert.Equal(t, float64(251), data[0].(map[string]any)["amount"], "the remainder goes to the newest refund")
	assert.Equal(t, float64(501), total)

	// Without refund IDs, the 2023-10-16 default: no refunds field at all.
	ch.RefundIDs = nil
	payload, err = ChargeRefundedEventPayload("evt_2", ch, time.Time{})
	require.NoError(t, err)
	m = nil
	require.NoError(t, json.Unmarshal(payload, &m))
	assert.NotContains(t, m["data"].(map[string]any)["object"], "refunds")
}

func TestChargeRefundedEventPayloadErrors(t *testing.T) {
	tests := []struct {
		name    string
		eventID string
		mutate  func(*Charge)
	}{
		{"no event ID", "", func(*Charge) {}},
		{"no charge ID", "evt_1", func(c *Charge) { c.ID = "" }},
		{"nothing refunded", "evt_1", func(c *Charge) { c.AmountRefundedCents, c.Refunded = 0, false }},
		{"more refunded than charged", "evt_1", func(c *Charge) { c.AmountRefundedCents = 500 }},
		{"partial but flagged refunded", "evt_1", func(c *Charge) { c.AmountRefundedCents = 200 }},
		{"full but not flagged refunded", "evt_1", func(c *Charge) { c.Refunded = false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := testCharge()
			tc.mutate(&ch)
			_, err := ChargeRefundedEventPayload(tc.eventID, ch, time.Now())
			assert.Error(t, err)
		})
	}
}

func TestChargeRefundUpdatedEventPayloadShape(t *testing.T) {
	r := testRefund("failed")
	r.FailureReason = "lost_or_stolen_card"
	payload, err := ChargeRefundUpdatedEventPayload("evt_1", r, time.Unix(1_700_000_100, 0))
	require.NoError(t, err)

	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	assert.Equal(t, "charge.refund.updated", m["type"])
	assert.Equal(t, stripe.APIVersion, m["api_version"])
	obj := m["data"].(map[string]any)["object"].(map[string]any)
	assert.Equal(t, "refund", obj["object"])
	assert.Equal(t, "re_3Abc", obj["id"])
	assert.Equal(t, "failed", obj["status"])
	assert.Equal(t, "lost_or_stolen_card", obj["failure_reason"])
	assert.Equal(t, "pi_3Abc", obj["payment_intent"])
	assert.Equal(t, "ch_3Abc", obj["charge"])
	assert.Equal(t, "requested_by_customer", obj["reason"])
	assert.Equal(t, float64(1_700_000_000), obj["created"])
	assert.Equal(t, map[string]any{"job_id": "job_1"}, obj["metadata"])
	assert.Regexp(t, `^txn_`, obj["balance_transaction"])
	assert.Regexp(t, `^txn_`, obj["failure_balance_transaction"])

	// Other statuses carry no failure fields; an unfinished refund no balance transaction.
	for _, status := range []string{"succeeded", "pending", "requires_action", "canceled"} {
		r := testRefund(status)
		r.FailureReason = "ignored"
		payload, err := ChargeRefundUpdatedEventPayload("evt_1", r, time.Now())
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(payload, &m))
		obj := m["data"].(map[string]any)["object"].(map[string]any)
		assert.NotContains(t, obj, "failure_reason", status)
		assert.NotContains(t, obj, "failure_balance_transaction", status)
		assert.Equal(t, status == "succeeded" || status == "pending", obj["balance_transaction"] != nil, status)
	}

	// A failed refund always has a failure reason.
	r.FailureReason = ""
	payload, err = ChargeRefundUpdatedEventPayload("evt_1", r, time.Now())
	require.NoError(t, err)
	got, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
	require.NoError(t, err)
	assert.Equal(t, "unknown", got.Refund.FailureReason)

	for _, bad := range []Refund{{}, {ID: "re_1"}, {Status: "failed"}} {
		_, err := ChargeRefundUpdatedEventPayload("evt_1", bad, time.Now())
		assert.Error(t, err)
	}
	_, err = ChargeRefundUpdatedEventPayload("", r, time.Now())
	assert.Error(t, err)
}
