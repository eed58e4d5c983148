package activities_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/upsampler"
)

// records is the job record in memory, for one job: the parts of
// activities.Records these tests reach; any other call panics (nil
// embedded interface), so a test cannot pass by skipping the record.
type records struct {
	activities.Records
	mu          sync.Mutex
	job         store.Job
	begun       map[int]bool // submissions noted before they were sent
	forgotten   []int
	recorded    []string // Upsampler job IDs recorded
	processing  []string // Upsampler job IDs the job was moved to processing with
	completed   []store.Completion
	email       string
	emailWrites int
}

func newRecords(id string) *records {
	return &records{job: store.Job{ID: id, CallbackSecret: "cb-secret"}, begun: map[int]bool{}}
}

func (r *records) Get(_ context.Context, id string) (store.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.job.ID != "" && id != r.job.ID {
		return store.Job{}, store.ErrNotFound
	}
	j := r.job
	j.ID = id
	return j, nil
}

func (r *records) BeginSubmission(_ context.Context, _ string, n int) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.begun[n] {
		return false, nil
	}
	r.begun[n] = true
	return true, nil
}

func (r *records) ForgetSubmission(_ context.Context, _ string, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.begun, n)
	r.forgotten = append(r.forgotten, n)
	return nil
}

func (r *records) RecordSubmission(_ context.Context, _ string, attempt int, upsamplerJobID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.job.UpsamplerJobID, r.job.UpsamplerAttempt = &upsamplerJobID, &attempt
	r.recorded = append(r.recorded, upsamplerJobID)
	return nil
}

func (r *records) MarkProcessing(_ context.Context, _ string, upsamplerJobID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processing = append(r.processing, upsamplerJobID)
	return nil
}

func (r *records) MarkCompleted(_ context.Context, c store.Completion) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.completed = append(r.completed, c)
	r.job.Status = jobs.StatusCompleted
	return nil
}

func (r *records) SetCustomerEmail(_ context.Context, _ string, email string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.email = email
	r.emailWrites++
	return nil
}

// upsamplerAPI counts submissions and answers them with the next of errs
// (nil: accepted as up_<n>), and every status check as done.
type upsamplerAPI struct {
	mu      sync.Mutex
	errs    []error
	submits int
	checks  int
}

func (u *upsamplerAPI) Submit(context.Context, upsampler.SubmitRequest) (upsampler.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.submits++
	if len(u.errs) > 0 {
		err := u.errs[0]
		u.errs = u.errs[1:]
		if err != nil {
			return upsampler.Job{}, err
		}
	}
	return upsampler.Job{ID: "up_" + string(rune('0'+u.submits)), Status: upsampler.StatusInQueue}, nil
}

func (u *upsamplerAPI) Status(_ context.Context, id string) (upsampler.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.checks++
	return upsampler.Job{ID: id, Status: upsampler.StatusSuccess, ImageURL: "https://cdn.upsampler.com/r.png"}, nil
}

func runSubmit(t *testing.T, a *activities.Activities, in activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.SubmitUpscale, in)
	var st activities.UpscaleStatus
	if err == nil {
		require.NoError(t, v.Get(&st))
	}
	return st, err
}

// Upsampler never gets the same image twice: a submission whose answer was
// lost is not sent again by a retry of the activity, and an attempt already
// accepted is checked, not sent.
func TestSubmissionIsNeverSentTwice(t *testing.T) {
	const id = "6f1c1b52-0f55-4c3e-9d0e-3a1d2b7c8e90"
	lost := &upsampler.APIError{StatusCode: 504, Message: "gateway timeout"}
	tests := []struct {
		name        string
		errs        []error
		tries       []activities.SubmitUpscaleInput
		wantSubmits int
		wantChecks  int
		wantLast    string // the last try's error type, "" for success
	}{
		{"accepted", nil, []activities.SubmitUpscaleInput{{JobID: id, Submission: 1}}, 1, 0, ""},
		{"answer lost, then the activity retried", []error{lost},
			[]activities.SubmitUpscaleInput{{JobID: id, Submission: 1}, {JobID: id, Submission: 1}}, 1, 0, activities.ErrTypeUpsamplerAmbiguous},
		{"refused for now (429), then retried", []error{&upsampler.APIError{StatusCode: 429, Message: "slow down"}},
			[]activities.SubmitUpscaleInput{{JobID: id, Submission: 1}, {JobID: id, Submission: 1}}, 2, 0, ""},
		{"accepted, then the activity retried after a crash", nil,
			[]activities.SubmitUpscaleInput{{JobID: id, Submission: 1}, {JobID: id, Submission: 1}}, 1, 1, ""},
		{"a new submission after a lost one is sent", []error{lost},
			[]activities.SubmitUpscaleInput{{JobID: id, Submission: 1}, {JobID: id, Submission: 2}}, 2, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, up := newRecords(id), &upsamplerAPI{errs: tt.errs}
			a := &activities.Activities{Store: rec, Upsampler: up, PublicBaseURL: "https://hires.example.com"}
			var err error
			for _, in := range tt.tries {
				_, err = runSubmit(t, a, in)
			}
			require.Equal(t, tt.wantSubmits, up.submits, "submissions sent")
			require.Equal(t, tt.wantChecks, up.checks, "status checks")
			if tt.wantLast == "" {
				require.NoError(t, err)
				return
			}
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "error %v", err)
			require.Equal(t, tt.wantLast, appErr.Type())
		})
	}
}

// stripeCheckout answers an expiry as Stripe does for a session completed
// a moment before: it is no longer open, and reading it shows the payment.
type stripeCheckout struct {
	activities.Payments
	session payments.Session
	expired bool
}

func (s *stripeCheckout) ExpireSession(context.Context, string, string) (payments.Session, error) {
	if s.session.Status != "open" {
		return payments.Session{}, payments.ErrSessionNotOpen
	}
	s.expired = true
	s.session.Status = "expired"
	return s.session, nil
}

func (s *stripeCheckout) GetSession(context.Context, string) (payments.Session, error) {
	return s.session, nil
}

// The payment window closes as the customer pays: the expiry finds the
// session complete, and reports the payment (or the bank debit under way)
// instead of closing it; the email Stripe reports is recorded, not returned.
func TestExpiryRacingThePayment(t *testing.T) {
	const id = "6f1c1b52-0f55-4c3e-9d0e-3a1d2b7c8e90"
	tests := []struct {
		name           string
		session        payments.Session
		wantPaid       bool
		wantProcessing bool
		wantExpired    bool
	}{
		{"paid just before", payments.Session{ID: "cs_1", Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_1",
			AmountTotal: 499, Currency: "usd", CustomerEmail: "payer@example.com"}, true, false, false},
		{"bank debit just before", payments.Session{ID: "cs_1", Status: "complete", PaymentStatus: "unpaid",
			AmountTotal: 499, Currency: "usd", CustomerEmail: "payer@example.com"}, false, true, false},
		{"still open", payments.Session{ID: "cs_1", Status: "open"}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, stripe := newRecords(id), &stripeCheckout{session: tt.session}
			a := &activities.Activities{Store: rec, Payments: stripe}
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			v, err := env.ExecuteActivity(a.ExpireCheckout, activities.ExpireCheckoutInput{JobID: id, SessionID: "cs_1"})
			require.NoError(t, err)
			var res activities.ExpireCheckoutResult
			require.NoError(t, v.Get(&res))
			require.Equal(t, tt.wantPaid, res.Paid)
			require.Equal(t, tt.wantProcessing, res.Processing)
			require.Equal(t, tt.wantExpired, stripe.expired)
			if tt.wantPaid {
				require.Equal(t, "pi_1", res.Payment.PaymentIntentID)
				require.Equal(t, int64(499), res.Payment.AmountCents)
			}
			if tt.session.Status == "complete" {
				require.Equal(t, tt.session.CustomerEmail, rec.email, "the email is recorded before the payment is")
			} else {
				require.Zero(t, rec.emailWrites)
			}
		})
	}
}
