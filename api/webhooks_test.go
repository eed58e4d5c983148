package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/upsampler"
)

const (
	hookJobID  = "55555555-5555-4555-8555-555555555555"
	hookSecret = "cbS3cretOfTheJob0123456789abcdefABCDEFGHIJK"
)

// webhookFixture is an application with one job awaiting payment.
func webhookFixture(t testing.TB) *testApp {
	t.Helper()
	session := "cs_test_hooks"
	return newTestApp(t, config.Config{}, store.Job{ID: hookJobID, Status: jobs.StatusAwaitingPayment,
		PaymentStatus: jobs.PaymentPending, CallbackSecret: hookSecret, CheckoutSessionID: &session})
}

// paidEvent is a checkout.session.completed for the fixture's job.
func paidEvent(t testing.TB, eventID string) []byte {
	t.Helper()
	payload, err := payments.CheckoutEventPayload(eventID, jobs.EventCheckoutCompleted, payments.Session{
		ID: "cs_test_hooks", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_test_hooks",
		AmountTotal: 50, Currency: "usd", JobID: hookJobID, ClientReferenceID: hookJobID,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

func postStripe(a *testApp, body []byte, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	return a.do(req, "192.0.2.10:1")
}

// hmacHeader signs "<ts>.<payload>" as Stripe does, under any scheme name.
func hmacHeader(payload []byte, secret string, ts int64, scheme string) string {
	sig := payments.SignPayload(payload, secret, time.Unix(ts, 0)) // t=<ts>,v1=<hex>
	_, v1, _ := strings.Cut(sig, ",v1=")
	return "t=" + strconv.FormatInt(ts, 10) + "," + scheme + "=" + v1
}

// Forged, replayed and malformed Stripe deliveries are answered 400 (413
// when too large) before anything is read or written: no store call, no
// signal, no workflow started. The control delivery shows that the same
// harness does see the effects of a good one.
func TestStripeWebhookRejectsForgeriesWithoutEffect(t *testing.T) {
	now := time.Now()
	payload := paidEvent(t, "evt_hooks_forged")
	good := payments.SignPayload(payload, testWebhookSecret, now)
	tampered := bytes.Replace(payload, []byte(`"amount_total":50`), []byte(`"amount_total":1`), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatal("the tampering did not change the payload")
	}
	wrongVersion := bytes.Replace(payload, []byte(stripego.APIVersion), []byte("2020-08-27"), 1)
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	delete(ev, "id")
	noID, _ := json.Marshal(ev)
	signed := func(b []byte) string { return payments.SignPayload(b, testWebhookSecret, now) }
	_, goodV1, _ := strings.Cut(good, ",v1=")

	tests := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"no signature", payload, "", 400},
		{"empty body, no signature", nil, "", 400},
		{"garbage signature", payload, "t=1,v1=abc", 400},
		{"header without timestamp", payload, "v1=" + goodV1, 400},
		{"timestamp not a number", payload, "t=soon,v1=" + goodV1, 400},
		{"signature moved to another timestamp", payload, "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + goodV1, 400},
		{"v0 scheme only", payload, hmacHeader(payload, testWebhookSecret, now.Unix(), "v0"), 400},
		{"signature truncated", payload, good[:len(good)-2], 400},
		{"signature upper-cased hex with a flipped digit", payload, "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + strings.ToUpper(flipHex(goodV1)), 400},
		{"signed with another secret", payload, payments.SignPayload(payload, "whsec_someone_else", now), 400},
		{"signed with an empty secret", payload, payments.SignPayload(payload, "", now), 400},
		{"tampered body", tampered, good, 400},
		{"replayed after 10 minutes", payload, payments.SignPayload(payload, testWebhookSecret, now.Add(-10*time.Minute)), 400},
		{"replayed just past the 5-minute tolerance", payload, payments.SignPayload(payload, testWebhookSecret, now.Add(-301*time.Second)), 400},
		{"signature of the empty body", payload, signed(nil), 400},
		{"signed, API version mismatch", wrongVersion, signed(wrongVersion), 400},
		{"signed, not JSON", []byte("not json"), signed([]byte("not json")), 400},
		{"signed, JSON array", []byte("[]"), signed([]byte("[]")), 400},
		{"signed, no event ID", noID, signed(noID), 400},
		{"signed, too large", append(bytes.Repeat([]byte(" "), 65<<10), payload...), "", 413},
	}
	a := webhookFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.reset()
			sig := tt.sig
			if tt.want == 413 {
				sig = signed(tt.body)
			}
			rec := postStripe(a, tt.body, sig)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if code := errorCodeOf(rec.Body.Bytes()); code == "" {
				t.Fatalf("no error code in %s", rec.Body)
			}
			a.noEffect(t)
		})
	}

	// Control: the genuine delivery signals the job once and is recorded;
	// its redelivery (fresh signature, same event) is acknowledged as a
	// duplicate without a second signal.
	a.reset()
	rec := postStripe(a, payload, good)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"signalled"`) {
		t.Fatalf("genuine event: %d %s", rec.Code, rec.Body)
	}
	signals, _ := a.temporal.record()
	if len(signals) != 1 || signals[0].workflowID != jobs.WorkflowID(hookJobID) || signals[0].name != jobs.SignalStripeEvent ||
		signals[0].arg.(jobs.StripeEvent).EventID != "evt_hooks_forged" {
		t.Fatalf("signals %+v", signals)
	}
	a.reset()
	rec = postStripe(a, payload, payments.SignPayload(payload, testWebhookSecret, time.Now()))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"duplicate"`) {
		t.Fatalf("redelivery: %d %s", rec.Code, rec.Body)
	}
	a.noEffect(t, "StripeEventSeen")
}

// flipHex changes the last hex digit.
func flipHex(s string) string {
	b := []byte(s)
	if b[len(b)-1] == '0' {
		b[len(b)-1] = '1'
	} else {
		b[len(b)-1] = '0'
	}
	return string(b)
}

func postCallback(a *testApp, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return a.do(req, "192.0.2.11:1")
}

// Upsampler callbacks: a wrong secret or job is 404 and a malformed body
// (with the right secret) is 400, both after at most reading the job, with
// no signal. The control callback does signal.
func TestUpsamplerWebhookRejectsBadCallbacksWithoutEffect(t *testing.T) {
	base := "/v1/webhooks/upsampler/" + hookJobID + "/"
	ok := []byte(`{"id":"ups_1","status":"SUCCESS"}`)
	tests := []struct {
		name  string
		path  string
		body  []byte
		want  int
		reads []string // store calls allowed
	}{
		{"wrong secret", base + "wrong", ok, 404, []string{"Get"}},
		{"secret of another length", base + hookSecret + "x", ok, 404, []string{"Get"}},
		{"secret's prefix", base + hookSecret[:len(hookSecret)-1], ok, 404, []string{"Get"}},
		{"secret in another case", base + strings.ToUpper(hookSecret), ok, 404, []string{"Get"}},
		{"empty secret", base, ok, 404, []string{"Get"}},
		{"unknown job", "/v1/webhooks/upsampler/00000000-0000-4000-8000-000000000000/" + hookSecret, ok, 404, []string{"Get"}},
		{"job id not a UUID", "/v1/webhooks/upsampler/not-a-uuid/" + hookSecret, ok, 404, nil},
		{"empty body", base + hookSecret, nil, 400, []string{"Get"}},
		{"not JSON", base + hookSecret, []byte("{"), 400, []string{"Get"}},
		{"JSON null", base + hookSecret, []byte("null"), 400, []string{"Get"}},
		{"JSON array", base + hookSecret, []byte(`[{"id":"ups_1","status":"SUCCESS"}]`), 400, []string{"Get"}},
		{"no id", base + hookSecret, []byte(`{"status":"SUCCESS"}`), 400, []string{"Get"}},
		{"no status", base + hookSecret, []byte(`{"id":"ups_1"}`), 400, []string{"Get"}},
		{"blank status", base + hookSecret, []byte(`{"id":"ups_1","status":"  "}`), 400, []string{"Get"}},
		{"id of the wrong type", base + hookSecret, []byte(`{"id":1,"status":"SUCCESS"}`), 400, []string{"Get"}},
		{"bad credit cost", base + hookSecret, []byte(`{"id":"ups_1","status":"SUCCESS","creditCost":"lots"}`), 400, []string{"Get"}},
		{"invalid UTF-8", base + hookSecret, []byte("{\"id\":\"\xff\",\"status\":\"SUCCESS\"}trailing"), 400, []string{"Get"}},
		{"over 1 MB", base + hookSecret, bytes.Repeat([]byte(" "), 1<<20+1), 413, nil},
	}
	a := webhookFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.reset()
			rec := postCallback(a, tt.path, tt.body)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if errorCodeOf(rec.Body.Bytes()) == "" {
				t.Fatalf("no error code in %s", rec.Body)
			}
			a.noEffect(t, tt.reads...)
		})
	}

	a.reset()
	rec := postCallback(a, base+hookSecret, ok)
	if rec.Code != http.StatusOK {
		t.Fatalf("genuine callback: %d %s", rec.Code, rec.Body)
	}
	signals, _ := a.temporal.record()
	if len(signals) != 1 || signals[0].name != jobs.SignalUpsamplerCallback ||
		signals[0].arg != (jobs.UpsamplerCallback{UpsamplerJobID: "ups_1", Status: "SUCCESS"}) {
		t.Fatalf("signals %+v", signals)
	}
}

// FuzzStripeWebhookRoute posts arbitrary bodies and Stripe-Signature
// headers to POST /v1/webhooks/stripe (mode as in payments.FuzzParseEvent:
// the header as given, or a signature computed here, fresh, stale or by
// another secret). Whatever the input: no 5xx; an answer other than 200 has
// no effect at all; a 200 comes only for an event that verifies with the
// secret, and signals at most once, the fixture's job, with that event.
// More seeds are in testdata/fuzz/FuzzStripeWebhookRoute.
func FuzzStripeWebhookRoute(f *testing.F) {
	payload := paidEvent(f, "evt_fuzz_seed")
	f.Add(payload, "", uint8(1))
	f.Add(payload, "", uint8(0))
	f.Add(payload, "t=1,v1=00", uint8(0))
	f.Add(payload, "", uint8(2))
	f.Add(payload, "", uint8(3))
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","api_version":"`+stripego.APIVersion+`","data":{"object":{"object":"charge","refunded":true,"payment_intent":"pi_1"}}}`), "", uint8(1))
	f.Add([]byte(`not json`), "", uint8(1))
	a := webhookFixture(f)
	f.Fuzz(func(t *testing.T, body []byte, header string, mode uint8) {
		if len(body) > 64<<10 {
			t.Skip("larger than the route's body limit")
		}
		now := time.Now()
		switch mode % 4 {
		case 1:
			header = payments.SignPayload(body, testWebhookSecret, now)
		case 2:
			header = payments.SignPayload(body, testWebhookSecret, now.Add(-10*time.Minute))
		case 3:
			header = payments.SignPayload(body, "whsec_someone_else", now)
		}
		a.reset()
		a.store.mu.Lock()
		clear(a.store.stripeEvents) // every delivery is new
		a.store.mu.Unlock()
		rec := postStripe(a, body, header)
		if rec.Code >= 500 {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if rec.Code != http.StatusBadRequest || errorCodeOf(rec.Body.Bytes()) != "invalid_event" {
				t.Fatalf("rejected with %d %s, want 400 invalid_event", rec.Code, rec.Body)
			}
			a.noEffect(t)
			return
		}
		if mode%4 != 1 {
			t.Fatalf("accepted a delivery not freshly signed with the secret (mode %d, header %q)", mode%4, header)
		}
		signals, started := a.temporal.record()
		if len(signals)+len(started) > 1 {
			t.Fatalf("more than one effect: %+v %v", signals, started)
		}
		for _, s := range signals {
			ev, _ := payments.ParseEvent(body, header, testWebhookSecret)
			if s.workflowID != jobs.WorkflowID(hookJobID) || s.name != jobs.SignalStripeEvent || s.arg.(jobs.StripeEvent).EventID != ev.ID {
				t.Fatalf("signal %+v for event %q", s, ev.ID)
			}
		}
	})
}

// FuzzUpsamplerWebhookRoute posts arbitrary bodies to the fixture job's
// callback URL, with its secret or (secretMode odd) a fuzzed one. No 5xx;
// a wrong secret is 404 whatever the body, with no signal; with the right
// secret, a body is 200 with exactly one signal carrying its id and status
// if it has both, and 400 with none otherwise. More seeds are in
// testdata/fuzz/FuzzUpsamplerWebhookRoute.
func FuzzUpsamplerWebhookRoute(f *testing.F) {
	f.Add([]byte(`{"id":"ups_1","status":"SUCCESS","imageUrl":"https://evil.example.org/x.png"}`), "", uint8(0))
	f.Add([]byte(`{"id":"ups_1","status":"SUCCESS"}`), "wrong", uint8(1))
	f.Add([]byte(`{"id":"","status":"FAILED"}`), "", uint8(0))
	f.Add([]byte(`{`), "", uint8(0))
	a := webhookFixture(f)
	f.Fuzz(func(t *testing.T, body []byte, secret string, secretMode uint8) {
		if len(body) > 1<<20 {
			t.Skip("larger than the route's body limit")
		}
		if secretMode%2 == 0 {
			secret = hookSecret
		}
		u := "/v1/webhooks/upsampler/" + hookJobID + "/" + urlPathSegment(secret)
		a.reset()
		rec := postCallback(a, u, body)
		if rec.Code >= 500 {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		signals, started := a.temporal.record()
		if len(started) > 0 {
			t.Fatalf("workflow started: %v", started)
		}
		if secret != hookSecret {
			if rec.Code != http.StatusNotFound || len(signals) > 0 {
				t.Fatalf("secret %q: %d, %d signals", secret, rec.Code, len(signals))
			}
			return
		}
		// The handler answers as the (separately fuzzed) parser decides.
		cb, perr := upsampler.ParseCallback(body)
		if perr != nil {
			if rec.Code != http.StatusBadRequest || errorCodeOf(rec.Body.Bytes()) != "invalid_callback" || len(signals) > 0 {
				t.Fatalf("unparsable callback: %d %s, %d signals", rec.Code, rec.Body, len(signals))
			}
			return
		}
		want := jobs.UpsamplerCallback{UpsamplerJobID: cb.ID, Status: cb.Status}
		if rec.Code != http.StatusOK || len(signals) != 1 || signals[0].arg != want || signals[0].workflowID != jobs.WorkflowID(hookJobID) {
			t.Fatalf("callback %+v: %d, signals %+v", want, rec.Code, signals)
		}
	})
}

// urlPathSegment escapes s so that it arrives as one path parameter.
func urlPathSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%s", strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}
