package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/token"
)

// emailStore adds to fakeStore what the webhook and the admin list need of
// customers' emails: SetCustomerEmail and List (with its filter).
type emailStore struct {
	*fakeStore
	mu      sync.Mutex
	emails  map[string]string // job ID -> Stripe's customer email
	filters []store.ListFilter
}

func (s *emailStore) SetCustomerEmail(_ context.Context, id, email string) error {
	s.called("SetCustomerEmail")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emails[id] = email
	return nil
}

func (s *emailStore) List(_ context.Context, f store.ListFilter) ([]store.Job, error) {
	s.called("List")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	return nil, nil
}

func newEmailApp(t *testing.T, cfg config.Config, fixtures ...store.Job) (*testApp, *emailStore) {
	t.Helper()
	a := newTestApp(t, cfg, fixtures...)
	es := &emailStore{fakeStore: a.store, emails: map[string]string{}}
	var err error
	a.e, err = newEcho(Deps{Config: a.cfgWithDefaults(cfg), Temporal: a.temporal, Payments: a.stripe, Files: a.files,
		Now: a.clock.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, es)
	if err != nil {
		t.Fatal(err)
	}
	return a, es
}

// cfgWithDefaults is cfg as newTestApp completes it.
func (a *testApp) cfgWithDefaults(cfg config.Config) config.Config {
	if len(cfg.SourceHosts) == 0 {
		cfg.SourceHosts = []string{"images.example.com"}
	}
	cfg.RateLimitCreate, cfg.RateLimitDownload = 1_000_000, 1_000_000
	if cfg.StripeWebhookSecret == "" {
		cfg.StripeWebhookSecret = testWebhookSecret
	}
	return cfg
}

// The job's workflow starts with no customer data: no email, no link
// holding the access token, no Checkout URL; Stripe alone gets them.
func TestWorkflowStartsWithoutCustomerData(t *testing.T) {
	const secret = "access-secret-for-tests-0123456789"
	a := newTestApp(t, config.Config{MaxOutputMegapixels: 400, PublicBaseURL: "https://hires.example.com",
		Currency: "usd", PaymentTimeout: time.Hour, AccessTokenSecret: secret})
	body := `{"image_url":"https://images.example.com/a.png","resolution":"4x","email":"shopper@example.com","image_width":400,"image_height":300}`
	req := httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testSiteKey)
	rec := a.do(req, "192.0.2.1:1234")
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out CreateJobResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.AccessToken != token.Access([]byte(secret), out.ID) {
		t.Fatalf("access token is not derived from the secret")
	}
	inputs := a.temporal.startedInputs()
	if len(inputs) != 1 {
		t.Fatalf("%d workflow starts, want 1", len(inputs))
	}
	raw, err := json.Marshal(inputs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"shopper@example.com", out.AccessToken, "token=", out.CheckoutURL, `"Email"`, `"SuccessURL"`, `"CancelURL"`} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("workflow input holds %q: %s", leak, raw)
		}
	}
	// Stripe sends the customer back to their page, token included.
	calls := a.stripe.calls
	if len(calls) != 1 {
		t.Fatalf("%d Checkout Sessions, want 1", len(calls))
	}
	page := "https://hires.example.com/jobs/" + out.ID + "?token=" + out.AccessToken
	if calls[0].SuccessURL != page+"&checkout=success" || calls[0].CancelURL != page+"&checkout=cancelled" {
		t.Errorf("return URLs %q, %q", calls[0].SuccessURL, calls[0].CancelURL)
	}
}

// The webhook keeps Stripe's customer email in the job's row, written
// before the signal, which carries none.
func TestStripeWebhookStoresTheEmailAndSignalsWithoutIt(t *testing.T) {
	a, es := newEmailApp(t, config.Config{}, store.Job{ID: hookJobID, Status: jobs.StatusAwaitingPayment,
		PaymentStatus: jobs.PaymentPending, CallbackSecret: hookSecret})
	payload, err := payments.CheckoutEventPayload("evt_email", jobs.EventCheckoutCompleted, payments.Session{
		ID: "cs_test_hooks", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_test_hooks",
		AmountTotal: 50, Currency: "usd", JobID: hookJobID, ClientReferenceID: hookJobID, CustomerEmail: "payer@example.com",
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := postStripe(a, payload, payments.SignPayload(payload, testWebhookSecret, time.Now()))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if es.emails[hookJobID] != "payer@example.com" {
		t.Errorf("customer email stored %q", es.emails[hookJobID])
	}
	calls, _, _ := a.store.record()
	if !slices.Contains(calls, "SetCustomerEmail") {
		t.Errorf("store calls %v: no SetCustomerEmail", calls)
	}
	signals, _ := a.temporal.record()
	if len(signals) != 1 {
		t.Fatalf("signals %+v", signals)
	}
	raw, _ := json.Marshal(signals[0].arg)
	if strings.Contains(string(raw), "payer@example.com") || strings.Contains(string(raw), "CustomerEmail") {
		t.Errorf("signal carries the email: %s", raw)
	}
}

// GET /v1/admin/jobs?email= passes one valid address to the store and
// refuses anything else with 422 and the usual error body.
func TestAdminListByEmail(t *testing.T) {
	const admin = "admin-token-for-tests-0123456789"
	tests := []struct {
		query string
		want  int
		email string
	}{
		{"email=ada%40example.com", http.StatusOK, "ada@example.com"},
		{"email=ada%40example.com&status=completed", http.StatusOK, "ada@example.com"},
		{"", http.StatusOK, ""},
		{"email=", http.StatusUnprocessableEntity, ""},
		{"email=ada", http.StatusUnprocessableEntity, ""},
		{"email=Ada+%3Cada%40example.com%3E", http.StatusUnprocessableEntity, ""},
		{"email=ada%40example.com,bob%40example.com", http.StatusUnprocessableEntity, ""},
		{"email=ada%40example.com&email=bob%40example.com", http.StatusUnprocessableEntity, ""},
		{"email=" + url.QueryEscape(strings.Repeat("a", 250)+"@example.com"), http.StatusUnprocessableEntity, ""},
		{"email=%20ada%40example.com", http.StatusUnprocessableEntity, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			a, es := newEmailApp(t, config.Config{AdminToken: admin})
			req := httptest.NewRequest(http.MethodGet, "/v1/admin/jobs?"+tt.query, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			rec := a.do(req, "192.0.2.1:1234")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want != http.StatusOK {
				var e struct {
					Error Error `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != "invalid_email" || e.Error.Field != "email" {
					t.Fatalf("error body %s", rec.Body)
				}
				if len(es.filters) != 0 {
					t.Fatalf("the store was asked: %+v", es.filters)
				}
				return
			}
			if len(es.filters) != 1 || es.filters[0].Email != tt.email {
				t.Fatalf("filters %+v, want email %q", es.filters, tt.email)
			}
		})
	}
}
