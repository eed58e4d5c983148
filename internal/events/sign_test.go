package events

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testSecret = []byte("whsec_test")
	testNow    = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	testBody   = []byte(`{"id":"evt_1"}`)
)

func TestSignKnownAnswer(t *testing.T) {
	// Computed independently: HMAC-SHA256("whsec_test", "1767225600." + body).
	want := "t=1767225600,v1=45b40331de0325606dc5400202ade162460fbe48daf9401adfdcd0d7b4f35470"
	if got := Sign(testSecret, testNow, testBody); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if got := Sign(testSecret, testNow.Add(999*time.Millisecond), testBody); got != want {
		t.Fatalf("Sign ignores sub-second time: got %q", got)
	}
}

func TestVerify(t *testing.T) {
	good := Sign(testSecret, testNow, testBody)
	v1 := func(secret string) string {
		_, sig, _ := strings.Cut(Sign([]byte(secret), testNow, testBody), ",")
		return sig
	}
	ts := "t=1767225600"

	tests := []struct {
		name      string
		secret    []byte
		header    string
		body      []byte
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{name: "round trip", header: good},
		{name: "round trip, within tolerance", header: good, now: testNow.Add(DefaultTolerance)},
		{name: "round trip, slightly ahead", header: good, now: testNow.Add(-time.Minute)},
		{name: "spaces around parts", header: " t=1767225600 , " + v1("whsec_test") + " "},
		{name: "parts in any order", header: v1("whsec_test") + "," + ts},
		{name: "unknown scheme ignored", header: ts + ",v0=abc," + v1("whsec_test")},
		{name: "rotation, new secret first", header: ts + "," + v1("whsec_test") + "," + v1("whsec_old")},
		{name: "rotation, new secret second", header: ts + "," + v1("whsec_old") + "," + v1("whsec_test")},
		{name: "rotation, receiver holds old secret", secret: []byte("whsec_old"), header: ts + "," + v1("whsec_test") + "," + v1("whsec_old")},
		{name: "rotation, neither secret", header: ts + "," + v1("whsec_a") + "," + v1("whsec_b"), want: ErrBadSignature},
		{name: "tolerance zero skips time check", header: good, tolerance: -1, now: testNow.Add(24 * time.Hour)},
		{name: "empty body", header: Sign(testSecret, testNow, nil), body: []byte{}},

		{name: "tampered body", header: good, body: []byte(`{"id":"evt_2"}`), want: ErrBadSignature},
		{name: "body with trailing newline", header: good, body: []byte(`{"id":"evt_1"}` + "\n"), want: ErrBadSignature},
		{name: "wrong secret", secret: []byte("whsec_other"), header: good, want: ErrBadSignature},
		{name: "tampered timestamp", header: "t=1767225601," + v1("whsec_test"), want: ErrBadSignature},
		{name: "timestamp with leading zero", header: "t=01767225600," + v1("whsec_test"), want: ErrBadSignature},
		{name: "signature of another body", header: ts + ",v1=" + strings.Repeat("0", 64), want: ErrBadSignature},
		{name: "too old", header: good, now: testNow.Add(DefaultTolerance + time.Second), want: ErrTooOld},
		{name: "too old, bad signature reported first", header: ts + ",v1=" + strings.Repeat("0", 64), now: testNow.Add(time.Hour), want: ErrBadSignature},
		{name: "too far in the future", header: good, now: testNow.Add(-DefaultTolerance - time.Second), want: ErrTooNew},

		{name: "missing header", header: "", want: ErrMissingSignature},
		{name: "blank header", header: "   ", want: ErrMissingSignature},
		{name: "no secret", secret: []byte{}, header: good, want: ErrNoSecret},
		{name: "no timestamp", header: v1("whsec_test"), want: ErrMalformedHeader},
		{name: "no v1", header: ts, want: ErrMalformedHeader},
		{name: "only unknown scheme", header: ts + ",v0=abc", want: ErrMalformedHeader},
		{name: "two timestamps", header: ts + ",t=1767225601," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "timestamp not a number", header: "t=soon," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "negative timestamp", header: "t=-1," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "signed timestamp", header: "t=+1767225600," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "huge timestamp", header: "t=99999999999999999999," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "empty timestamp", header: "t=," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "v1 not hex", header: ts + ",v1=zz" + strings.Repeat("0", 62), want: ErrMalformedHeader},
		{name: "v1 too short", header: ts + ",v1=abcd", want: ErrMalformedHeader},
		{name: "part without =", header: ts + ",garbage," + v1("whsec_test"), want: ErrMalformedHeader},
		{name: "semicolons", header: strings.ReplaceAll(good, ",", ";"), want: ErrMalformedHeader},
		{name: "header too long", header: good + strings.Repeat(",x=y", 2000), want: ErrMalformedHeader},
		{name: "not a signature at all", header: "Bearer abc", want: ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := testSecret
			if tt.secret != nil {
				secret = tt.secret
			}
			body := testBody
			if tt.body != nil {
				body = tt.body
			}
			tol := DefaultTolerance
			if tt.tolerance != 0 {
				tol = tt.tolerance
			}
			now := testNow
			if !tt.now.IsZero() {
				now = tt.now
			}
			err := Verify(secret, tt.header, body, tol, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && len(secret) > 0 && strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
}
