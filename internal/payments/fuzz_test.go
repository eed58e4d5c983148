package payments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"
)

const (
	fuzzSecret      = "whsec_fuzz_0123456789abcdef"
	fuzzOtherSecret = "whsec_fuzz_someone_else"
)

// How FuzzParseEvent builds the Stripe-Signature header from its input.
const (
	sigAsGiven     = iota // the fuzzed header, verbatim
	sigFresh              // signed now with the secret; the fuzzed header is ignored
	sigFreshPlus          // signed now with the secret, then ",<fuzzed header>"
	sigOtherSecret        // signed now with a different secret
	sigStale              // signed with the secret 10 minutes ago
	sigModes
)

// FuzzParseEvent: arbitrary payloads and signature headers against a fixed
// secret. ParseEvent must not panic; every error must carry one of the
// package's sentinels (the handler answers them all with 400); an accepted
// event must carry a header that verifies with the secret, computed here
// independently of stripe-go. mode picks how the header is built, so that
// the fuzzer also reaches the JSON decoding behind the signature check.
// More seeds are in testdata/fuzz/FuzzParseEvent.
func FuzzParseEvent(f *testing.F) {
	completed, err := CheckoutEventPayload("evt_seed_1", "checkout.session.completed", testSession("complete", "paid"), time.Unix(1_700_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(completed, "", uint8(sigFresh))
	f.Add(completed, "v1=00", uint8(sigFreshPlus))
	f.Add(completed, "t=1700000000,v1="+strings.Repeat("ab", 32), uint8(sigAsGiven))
	f.Add(completed, "", uint8(sigOtherSecret))
	f.Add(completed, "", uint8(sigStale))
	f.Add([]byte(`{"id":"evt_1","type":"x","api_version":"`+stripe.APIVersion+`","data":null}`), "", uint8(sigFresh))
	f.Add([]byte(`{"id":"evt_1","type":"x","api_version":"2020-08-27"}`), "", uint8(sigFresh))
	f.Add([]byte(`not json`), "", uint8(sigFresh))

	f.Fuzz(func(t *testing.T, payload []byte, header string, mode uint8) {
		if len(payload) > 64<<10 {
			t.Skip("larger than the route's body limit")
		}
		now := time.Now()
		switch mode % sigModes {
		case sigFresh:
			header = SignPayload(payload, fuzzSecret, now)
		case sigFreshPlus:
			header = SignPayload(payload, fuzzSecret, now) + "," + header
		case sigOtherSecret:
			header = SignPayload(payload, fuzzOtherSecret, now)
		case sigStale:
			header = SignPayload(payload, fuzzSecret, now.Add(-10*time.Minute))
		}

		if _, err := ParseEvent(payload, header, ""); err == nil {
			t.Fatal("accepted with an empty secret")
		}

		ev, err := ParseEvent(payload, header, fuzzSecret)
		if err != nil {
			sentinels := []error{ErrMissingSignature, ErrInvalidSignature, ErrSignatureTooOld, ErrMalformedEvent, ErrAPIVersionMismatch}
			if !slicesContainsErr(err, sentinels) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			signatureErr := errors.Is(err, ErrMissingSignature) || errors.Is(err, ErrInvalidSignature) || errors.Is(err, ErrSignatureTooOld)
			switch mode % sigModes {
			case sigFresh:
				if signatureErr {
					t.Fatalf("a fresh, correct signature was rejected: %v", err)
				}
			case sigOtherSecret:
				if !errors.Is(err, ErrInvalidSignature) {
					t.Fatalf("signature by another secret: got %v, want ErrInvalidSignature", err)
				}
			case sigStale:
				if !errors.Is(err, ErrSignatureTooOld) {
					t.Fatalf("10-minute-old signature: got %v, want ErrSignatureTooOld", err)
				}
			}
			if header == "" && !errors.Is(err, ErrMissingSignature) {
				t.Fatalf("empty header: got %v, want ErrMissingSignature", err)
			}
			return
		}

		switch mode % sigModes {
		case sigOtherSecret, sigStale:
			t.Fatalf("accepted a header signed by another secret or too long ago: %q", header)
		}
		if !verifiesWith(payload, header, fuzzSecret, now) {
			t.Fatalf("accepted a header that does not verify with the secret: %q", header)
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev)
		}
		if ev.APIVersion != stripe.APIVersion {
			t.Fatalf("accepted API version %q, want %q", ev.APIVersion, stripe.APIVersion)
		}
		objects := 0
		for _, set := range []bool{ev.Session != nil, ev.Charge != nil, ev.Refund != nil} {
			if set {
				objects++
			}
		}
		if objects > 1 {
			t.Fatalf("more than one data.object decoded: %+v", ev)
		}
	})
}

func slicesContainsErr(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// verifiesWith is a reference check of a Stripe-Signature header, written
// from Stripe's description of the scheme: comma-separated key=value pairs;
// t is the Unix timestamp, each v1 a hex HMAC-SHA256 of "<t>.<payload>" under
// the secret. It reports whether the last t with any v1 verifies and that t
// is no more than 300 s (plus slack for a slow run) before now. Timestamps in
// the future are tolerated, as stripe-go does.
func verifiesWith(payload []byte, header, secret string, now time.Time) bool {
	var ts int64
	haveTS := false
	var sigs [][]byte
	for _, pair := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return false
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return false
			}
			ts, haveTS = n, true
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	if !haveTS || now.Unix()-ts > 300+60 {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(payload)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return true
		}
	}
	return false
}

// FuzzCheckoutEventRoundTrip: a checkout.session event built by
// CheckoutEventPayload from fuzzed session fields and signed with SignPayload
// parses back, through ParseEvent, to the same fields. The expected
// differences are the documented ones: the URL is null unless the session is
// open, the job ID and client_reference_id stand in for each other when one
// is empty, and times have whole seconds. Strings must be valid UTF-8, as
// JSON carries nothing else.
//
// The PaymentIntent ID is reduced to Stripe's ID alphabet [A-Za-z0-9_]:
// stripe-go reads an unexpanded ID by cutting the quotes off the JSON string
// without unescaping it (stripe.ParseID), so an ID with a character JSON
// escapes (<, >, &, ", \, controls, U+2028) comes back escaped. Stripe never
// issues such IDs.
func FuzzCheckoutEventRoundTrip(f *testing.F) {
	f.Add("job_1", "", "cs_test_a1", int64(499), "ada@example.com", "usd", "complete", "paid", "pi_3Abc", "https://checkout.stripe.com/c/pay/cs_test_a1", int64(1_800_000_000))
	f.Add("", "cref_7", "cs_test_a2", int64(0), "", "eur", "open", "unpaid", "", "https://checkout.stripe.com/c/pay/cs_test_a2", int64(0))
	f.Add("0b8f6a4e-1c1d-4f4a-9a57-0a4f9a3c2b1e", "other", "cs_x", int64(-1), "\"quoted\"@example.com", "", "expired", "unpaid", "pi_", "", int64(-62135596800))
	f.Add("ジョブ", "", "cs_\u2028", int64(9223372036854775807), "ü@例え.jp", "USD", "open", "", "pi_<script>", "javascript:alert(1)", int64(-1))

	f.Fuzz(func(t *testing.T, jobID, clientRef, sessionID string, amount int64, email, currency, status, paymentStatus, paymentIntent, pageURL string, expires int64) {
		for _, s := range []string{jobID, clientRef, sessionID, email, currency, status, paymentStatus, paymentIntent, pageURL} {
			if !utf8.ValidString(s) {
				t.Skip("JSON strings are UTF-8")
			}
		}
		if sessionID == "" {
			t.Skip("a session ID is required")
		}
		paymentIntent = strings.Map(func(r rune) rune {
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' {
				return r
			}
			return -1
		}, paymentIntent)
		in := Session{
			ID:                sessionID,
			URL:               pageURL,
			Status:            status,
			PaymentStatus:     paymentStatus,
			PaymentIntentID:   paymentIntent,
			AmountTotal:       amount,
			Currency:          currency,
			CustomerEmail:     email,
			JobID:             jobID,
			ClientReferenceID: clientRef,
		}
		if expires != 0 {
			in.ExpiresAt = time.Unix(expires, 0).UTC()
		}
		created := time.Now().Truncate(time.Second)
		payload, err := CheckoutEventPayload("evt_fuzz", "checkout.session.completed", in, created)
		if err != nil {
			t.Fatalf("CheckoutEventPayload: %v", err)
		}
		ev, err := ParseEvent(payload, SignPayload(payload, fuzzSecret, created), fuzzSecret)
		if err != nil {
			t.Fatalf("ParseEvent of a signed CheckoutEventPayload: %v\npayload: %s", err, payload)
		}
		if ev.ID != "evt_fuzz" || ev.Type != "checkout.session.completed" || !ev.Created.Equal(created) {
			t.Fatalf("event %q %q %v, want evt_fuzz checkout.session.completed %v", ev.ID, ev.Type, ev.Created, created)
		}
		if ev.Session == nil || ev.Charge != nil || ev.Refund != nil {
			t.Fatalf("want only a session: %+v", ev)
		}

		want := in
		if status != string(stripe.CheckoutSessionStatusOpen) {
			want.URL = ""
		}
		if want.ClientReferenceID == "" {
			want.ClientReferenceID = want.JobID
		}
		if want.JobID == "" {
			want.JobID = want.ClientReferenceID
		}
		got := *ev.Session
		if !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("expires_at %v, want %v", got.ExpiresAt, want.ExpiresAt)
		}
		got.ExpiresAt, want.ExpiresAt = time.Time{}, time.Time{}
		if got != want {
			t.Fatalf("session round trip:\n got %+v\nwant %+v\npayload: %s", got, want, payload)
		}
	})
}
