package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
)

// fakeCheckouts answers Checkout Session requests with the scripted errors
// first, then with a session; it counts the calls that reached "Stripe".
type fakeCheckouts struct {
	mu    sync.Mutex
	errs  []error
	calls []payments.CheckoutParams
}

func (f *fakeCheckouts) CreateCheckout(_ context.Context, p payments.CheckoutParams) (payments.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, p)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return payments.Session{}, err
	}
	return payments.Session{ID: "cs_test_" + p.JobID, URL: "https://checkout.stripe.com/c/pay/" + p.JobID}, nil
}

func (f *fakeStore) CreateJob(_ context.Context, n store.NewJob) (store.Job, bool, error) {
	f.called("CreateJob")
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[n.ID]; ok {
		return j, false, nil
	}
	expires := n.CheckoutExpiresAt
	j := store.Job{ID: n.ID, Status: jobs.StatusAwaitingPayment, Resolution: n.Resolution, ImageWidth: n.ImageWidth,
		ImageHeight: n.ImageHeight, PriceCents: n.PriceCents, Currency: n.Currency, CheckoutExpiresAt: &expires,
		RequestHash: n.RequestHash, ImageURL: n.ImageURL, Site: &n.Site}
	j.OutputWidth, j.OutputHeight = n.OutputWidth, n.OutputHeight // as the real store: the answer's price shows them
	f.jobs[n.ID] = j
	return j, true, nil
}

func (f *fakeStore) SetCheckout(_ context.Context, id, sessionID, url string, expiresAt time.Time) error {
	f.called("SetCheckout")
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.CheckoutSessionID, j.CheckoutURL, j.CheckoutExpiresAt = &sessionID, &url, &expiresAt
	f.jobs[id] = j
	return nil
}

func (f *fakeStore) MarkFailed(_ context.Context, id, reason, _ string) error {
	f.called("MarkFailed")
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.Status, j.FailureReason = jobs.StatusFailed, &reason
	f.jobs[id] = j
	return nil
}

// startedInputs are the inputs of the workflows the API started.
func (f *fakeTemporal) startedInputs() []jobs.WorkflowInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]jobs.WorkflowInput(nil), f.inputs...)
}

func TestCreateJobMakesTheCheckoutThenStartsTheWorkflow(t *testing.T) {
	stripeDown := fmt.Errorf("stripe: %w", &payments.APIError{HTTPStatus: http.StatusServiceUnavailable})
	stripeRefuses := fmt.Errorf("stripe: %w", payments.ErrInvalidInput)
	tests := []struct {
		name       string
		errs       []error
		wantStatus []int // first request, then its retry with the same key
		wantJob    jobs.Status
		wantStarts int
		wantStripe int
	}{
		{"stripe answers", nil, []int{201, 201}, jobs.StatusAwaitingPayment, 1, 1},
		{"stripe down, then back", []error{stripeDown}, []int{503, 201}, jobs.StatusAwaitingPayment, 1, 2},
		{"stripe refuses", []error{stripeRefuses}, []int{502, 502}, jobs.StatusFailed, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newTestApp(t, config.Config{MarkupPercent: 200, MaxOutputMegapixels: 400,
				PublicBaseURL: "https://hires.example.com", Currency: "usd", PaymentTimeout: time.Hour})
			app.stripe.errs = tt.errs
			body := `{"image_url":"https://images.example.com/a.png","resolution":"4x","email":"b@example.com","image_width":400,"image_height":300}`
			var got []int
			var out CreateJobResponse
			for range 2 {
				req, _ := http.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "order-1")
				req.Header.Set("Authorization", "Bearer "+testSiteKey)
				rec := app.do(req, "192.0.2.1:1234")
				got = append(got, rec.Code)
				if rec.Code < 300 {
					if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
						t.Fatal(err)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantStatus) {
				t.Fatalf("statuses %v, want %v", got, tt.wantStatus)
			}
			if n := len(app.stripe.calls); n != tt.wantStripe {
				t.Errorf("Stripe reached %d times, want %d", n, tt.wantStripe)
			}
			if len(app.store.jobs) != 1 {
				t.Fatalf("%d jobs stored, want 1", len(app.store.jobs))
			}
			for _, j := range app.store.jobs {
				if j.Status != tt.wantJob {
					t.Errorf("job %s, want %s", j.Status, tt.wantJob)
				}
			}
			inputs := app.temporal.startedInputs()
			if len(inputs) != tt.wantStarts {
				t.Fatalf("%d workflow starts, want %d", len(inputs), tt.wantStarts)
			}
			for _, in := range inputs {
				// The workflow gets the session (not its URL, a payment link
				// Temporal must not keep: jobs.Checkout has no field for it).
				if in.Checkout.SessionID == "" || in.Checkout.ExpiresAt.IsZero() || out.CheckoutURL == "" {
					t.Errorf("workflow input checkout %+v, want the session answered (%s)", in.Checkout, out.CheckoutURL)
				}
			}
		})
	}
}

// Every business deadline and limit in the configuration reaches the job's
// workflow: a field left out would silently fall back to the workflow's
// zero-value behaviour.
func TestWorkflowInputCarriesEveryTimeoutAndLimit(t *testing.T) {
	app := newTestApp(t, config.Config{MarkupPercent: 200, MaxOutputMegapixels: 400,
		PublicBaseURL: "https://hires.example.com", Currency: "usd",
		PaymentTimeout: time.Hour, DownloadTTL: 2 * time.Hour, ProcessingTimeout: 30 * time.Minute,
		UpsamplerPollInterval: 30 * time.Second, UpsamplerLostAnswerWait: 10 * time.Minute,
		RetryWindow: 168 * time.Hour, RefundRetryInterval: time.Hour, RefundAttentionAfter: 72 * time.Hour,
		AsyncPaymentTimeout: 336 * time.Hour, ExpiryReminderLead: 2 * time.Hour,
		AdminRetryLimit: 5, DownloadResendLimit: 10})
	body := `{"image_url":"https://images.example.com/a.png","resolution":"4x","email":"b@example.com","image_width":400,"image_height":300}`
	req, _ := http.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "order-1")
	req.Header.Set("Authorization", "Bearer "+testSiteKey)
	if rec := app.do(req, "192.0.2.1:1234"); rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	inputs := app.temporal.startedInputs()
	if len(inputs) != 1 {
		t.Fatalf("%d workflow starts, want 1", len(inputs))
	}
	for _, v := range []any{inputs[0].Timeouts, inputs[0].Limits} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				t.Errorf("%s.%s is not set from the configuration", rv.Type().Name(), rv.Type().Field(i).Name)
			}
		}
	}
}
