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

func TestParseEventNonSessionObject(t *testing.T) {
	payload := []byte(`{"id":"evt_1","object":"event","api_version":"` + stripe.APIVersion +
		`","created":1700000000,"type":"charge.refunded","data":{"object":{"id":"ch_1","object":"charge"}}}`)
	got, err := ParseEvent(payload, SignPayload(payload, testSecret, time.Now()), testSecret)
	require.NoError(t, err)
	assert.Equal(t, "charge.refunded", got.Type)
	assert.Nil(t, got.Session)
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
	evt := regexp.MustCompile(`^evt_[0-9A-Za-z]{24}$`)
	pi := regexp.MustCompile(`^pi_[0-9A-Za-z]{24}$`)
	seen := map[string]bool{}
	for range 100 {
		e, p := NewEventID(), NewPaymentIntentID()
		assert.Regexp(t, evt, e)
		assert.Regexp(t, pi, p)
		assert.False(t, seen[e], "duplicate %s", e)
		seen[e] = true
	}
}
