package events

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// verify checks a delivery with the specification's own library, as a
// receiver would.
func verify(secret string, body []byte, h http.Header) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	return wh.Verify(body, h)
}

func TestSignVerifiesWithTheLibrary(t *testing.T) {
	current, previous, other := NewSecret(), NewSecret(), NewSecret()
	body := []byte(`{"id":"evt_1"}`)
	now := time.Now()
	tests := []struct {
		name     string
		secrets  []string
		verifies []string // secrets the receiver may hold
		fails    []string
	}{
		{"one secret", []string{current}, []string{current}, []string{previous, other}},
		{"two secrets", []string{current, previous}, []string{current, previous}, []string{other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Sign("evt_1", now, body, tt.secrets...)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(sig, " ")
			if len(parts) != len(tt.secrets) {
				t.Fatalf("signature %q has %d parts, want %d", sig, len(parts), len(tt.secrets))
			}
			for _, p := range parts {
				if !strings.HasPrefix(p, "v1,") {
					t.Fatalf("signature part %q does not start with v1,", p)
				}
			}
			h := http.Header{}
			h.Set(HeaderID, "evt_1")
			h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			h.Set(HeaderSignature, sig)
			for _, s := range tt.verifies {
				if err := verify(s, body, h); err != nil {
					t.Errorf("Verify with a valid secret: %v", err)
				}
			}
			for _, s := range tt.fails {
				if err := verify(s, body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
					t.Errorf("Verify with another secret = %v", err)
				}
			}
			// The id and the body are signed.
			h.Set(HeaderID, "evt_2")
			if err := verify(tt.secrets[0], body, h); err == nil {
				t.Error("verified under another webhook-id")
			}
			h.Set(HeaderID, "evt_1")
			if err := verify(tt.secrets[0], append([]byte(" "), body...), h); err == nil {
				t.Error("verified another body")
			}
		})
	}
	if _, err := Sign("evt_1", now, body); !errors.Is(err, ErrInvalidEndpoint) {
		t.Fatalf("Sign without secrets = %v", err)
	}
}

func TestDeliverRequest(t *testing.T) {
	rc := newReceiver(t, status(http.StatusNoContent, ""))
	s := NewSender(rc.Client())
	previous := NewSecret()
	now := time.Now()
	inOverlap, expired := now.Add(time.Hour), now.Add(-time.Second)
	tests := []struct {
		name       string
		prevExpiry *time.Time
		signatures int
	}{
		{"no rotation", nil, 1},
		{"in the overlap", &inOverlap, 2},
		{"overlap over", &expired, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := endpoint(rc.URL + "/hooks")
			if tt.prevExpiry != nil {
				ep.PreviousSecret, ep.PreviousExpiresAt = previous, tt.prevExpiry
			}
			body := testBody(t)
			for range 2 { // a retry sends the same bytes and id, signed afresh
				res, err := s.Deliver(context.Background(), ep, testEvent().ID, body)
				if err != nil || res.StatusCode != http.StatusNoContent {
					t.Fatalf("Deliver = %+v, %v", res, err)
				}
			}
			reqs := rc.requests()
			rc.mu.Lock()
			rc.reqs = nil
			rc.mu.Unlock()
			if len(reqs) != 2 {
				t.Fatalf("receiver got %d requests, want 2", len(reqs))
			}
			for i, r := range reqs {
				for k, want := range map[string]string{
					"Content-Type": "application/json",
					"User-Agent":   UserAgent,
					"webhook-id":   testEvent().ID,
				} {
					if got := r.header.Get(k); got != want {
						t.Errorf("request %d: %s = %q, want %q", i, k, got, want)
					}
				}
				if n := len(strings.Split(r.header.Get(HeaderSignature), " ")); n != tt.signatures {
					t.Errorf("request %d: %d signatures, want %d", i, n, tt.signatures)
				}
				if err := verify(ep.Secret, r.body, r.header); err != nil {
					t.Errorf("request %d: Verify with the current secret: %v", i, err)
				}
				err := verify(previous, r.body, r.header)
				if tt.signatures == 2 && err != nil {
					t.Errorf("request %d: Verify with the previous secret in the overlap: %v", i, err)
				}
				if tt.signatures == 1 && err == nil {
					t.Errorf("request %d: the previous secret verifies outside the overlap", i)
				}
				if string(r.body) != string(body) {
					t.Errorf("request %d: body changed:\n%s\n%s", i, r.body, body)
				}
				var got Event
				if err := json.Unmarshal(r.body, &got); err != nil || got.ID != testEvent().ID || got.Data.JobID != "job-1" {
					t.Errorf("body decoded to %+v, %v", got, err)
				}
			}
		})
	}
}
