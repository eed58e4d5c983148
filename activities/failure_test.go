//go:build integration

package activities_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/dev/devstack"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
)

// refundStore is the job record the refund tests write to, on a throwaway
// PostgreSQL started by TestMain.
var refundStore *store.Store

func TestMain(m *testing.M) {
	os.Exit(runWithPostgres(m))
}

func runWithPostgres(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
	if err != nil {
		// Fail, never skip: RefundPayment's record is only checked here.
		fmt.Fprintf(os.Stderr, "activities integration tests: start PostgreSQL: %v\n", err)
		return 1
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "activities integration tests: stop PostgreSQL: %v\n", err)
		}
	}()
	refundStore, err = store.OpenMigrated(ctx, pg.URL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "activities integration tests: open store: %v\n", err)
		return 1
	}
	defer refundStore.Close()
	return m.Run()
}

// fakeRefunds is Stripe for RefundPayment: it answers every refund with
// refund and err, and remembers what it was asked. Like Stripe, it reports
// the payment refunded once a refund succeeded (or refunded is set).
type fakeRefunds struct {
	refund   payments.Refund
	err      error
	stateErr error
	refunded bool

	mu    sync.Mutex
	calls []payments.RefundParams
}

func (f *fakeRefunds) PaymentState(_ context.Context, pi string) (payments.PaymentState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := payments.PaymentState{PaymentIntentID: pi, Status: "succeeded", AmountCents: paidAmount}
	if f.refunded {
		st.AmountRefundedCents, st.Refunded = paidAmount, true
	}
	return st, f.stateErr
}

var errNotUsed = errors.New("not used by RefundPayment")

func (f *fakeRefunds) CreateCheckout(context.Context, payments.CheckoutParams) (payments.Session, error) {
	return payments.Session{}, errNotUsed
}

func (f *fakeRefunds) GetSession(context.Context, string) (payments.Session, error) {
	return payments.Session{}, errNotUsed
}

func (f *fakeRefunds) ExpireSession(context.Context, string, string) (payments.Session, error) {
	return payments.Session{}, errNotUsed
}

func (f *fakeRefunds) Refund(_ context.Context, p payments.RefundParams) (payments.Refund, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, p)
	if f.err == nil || errors.Is(f.err, payments.ErrAlreadyRefunded) {
		f.refunded = true
	}
	return f.refund, f.err
}

func (f *fakeRefunds) seen() []payments.RefundParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]payments.RefundParams(nil), f.calls...)
}

var _ activities.Payments = (*fakeRefunds)(nil)

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// newRefundJob stores a job awaiting payment and returns its ID.
func newRefundJob(t *testing.T) string {
	t.Helper()
	id := uuid.NewString()
	_, created, err := refundStore.CreateJob(t.Context(), store.NewJob{
		ID:                 id,
		ImageURL:           "https://images.example.com/" + id + ".png",
		Resolution:         jobs.Resolution4x,
		Email:              "buyer@example.com",
		PostID:             42,
		ImageWidth:         640,
		ImageHeight:        480,
		OutputWidth:        2560,
		OutputHeight:       1920,
		AccessTokenHash:    sum("access:" + id),
		RequestHash:        sum("request:" + id),
		CallbackSecret:     "secret-" + id,
		Currency:           "usd",
		PriceCents:         499,
		MarkupPercent:      30,
		EstimatedCredits:   16,
		EstimatedCostCents: 64,
		CheckoutExpiresAt:  time.Now().Add(30 * time.Minute),
	})
	require.NoError(t, err)
	require.True(t, created)
	return id
}

// paidAmount is what the customer paid for every job here; the price is
// another amount, so that a refund recording the price is caught.
const paidAmount = 437

// newPaidJob stores a paid job, failed at Upsampler: a refund is owed.
func newPaidJob(t *testing.T) store.Job {
	t.Helper()
	ctx := t.Context()
	id := newRefundJob(t)
	require.NoError(t, refundStore.MarkPaid(ctx, store.Payment{JobID: id, Cause: "evt_" + id,
		PaymentIntentID: "pi_" + id, AmountCents: paidAmount, Currency: "usd", CustomerEmail: "payer@example.com"}))
	require.NoError(t, refundStore.MarkFailed(ctx, id, jobs.ReasonUpsamplerFailed, "setup"))
	job, err := refundStore.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, jobs.PaymentPaid, job.PaymentStatus)
	return job
}

func refundInput(job store.Job) activities.RefundInput {
	in := activities.RefundInput{JobID: job.ID, Reason: jobs.ReasonUpsamplerFailed}
	if job.PaymentIntentID != nil {
		in.PaymentIntentID = *job.PaymentIntentID
	}
	if job.AmountPaidCents != nil {
		in.AmountCents = *job.AmountPaidCents
	}
	return in
}

// runRefund runs RefundPayment the way a worker would.
func runRefund(t *testing.T, fake *fakeRefunds, in activities.RefundInput) (activities.RefundResult, error) {
	t.Helper()
	acts := &activities.Activities{Store: refundStore, Payments: fake}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	val, err := env.ExecuteActivity(acts.RefundPayment, in)
	var res activities.RefundResult
	if err == nil {
		require.NoError(t, val.Get(&res))
	}
	return res, err
}

func getRefundJob(t *testing.T, id string) store.Job {
	t.Helper()
	job, err := refundStore.Get(t.Context(), id)
	require.NoError(t, err)
	return job
}

func TestRefundPaymentRecordsTheRefund(t *testing.T) {
	tests := []struct {
		name string
		// stripe returns the fake's answer for job id.
		stripe     func(id string) (payments.Refund, error)
		want       func(id string) activities.RefundResult
		wantCause  func(id string) string
		wantNullID bool
	}{
		{
			name: "refund accepted",
			stripe: func(id string) (payments.Refund, error) {
				return payments.Refund{ID: "re_" + id, PaymentIntentID: "pi_" + id, Status: "succeeded",
					AmountCents: paidAmount, Currency: "usd", JobID: id}, nil
			},
			want: func(id string) activities.RefundResult {
				return activities.RefundResult{RefundID: "re_" + id, AmountCents: paidAmount, Status: "succeeded"}
			},
			wantCause: func(id string) string { return "refund:re_" + id },
		},
		{
			name: "refund pending at Stripe",
			stripe: func(id string) (payments.Refund, error) {
				return payments.Refund{ID: "re_" + id, Status: "pending", AmountCents: paidAmount}, nil
			},
			want: func(id string) activities.RefundResult {
				return activities.RefundResult{RefundID: "re_" + id, AmountCents: paidAmount, Status: "pending"}
			},
			wantCause: func(id string) string { return "refund:re_" + id },
		},
		{
			name: "already refunded, say from the dashboard",
			stripe: func(id string) (payments.Refund, error) {
				// As the real client wraps it.
				return payments.Refund{}, fmt.Errorf("payments: refund pi_%s for job %s: %w: stripe: 400 invalid_request_error code=charge_already_refunded",
					id, id, payments.ErrAlreadyRefunded)
			},
			want: func(string) activities.RefundResult {
				return activities.RefundResult{AmountCents: paidAmount, Status: "succeeded"}
			},
			wantCause:  func(string) string { return "refund" },
			wantNullID: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newPaidJob(t)
			r, err := tt.stripe(job.ID)
			fake := &fakeRefunds{refund: r, err: err}
			in := refundInput(job)

			res, err := runRefund(t, fake, in)
			require.NoError(t, err)
			want := tt.want(job.ID)
			assert.Equal(t, want, res)
			assert.Equal(t, []payments.RefundParams{{JobID: job.ID, PaymentIntentID: "pi_" + job.ID,
				Reason: jobs.ReasonUpsamplerFailed}}, fake.seen())

			after := getRefundJob(t, job.ID)
			assert.Equal(t, jobs.PaymentRefunded, after.PaymentStatus)
			assert.Equal(t, jobs.StatusFailed, after.Status)
			if tt.wantNullID {
				assert.Nil(t, after.RefundID)
			} else {
				assert.Equal(t, &want.RefundID, after.RefundID)
			}
			if assert.NotNil(t, after.RefundAmountCents) {
				assert.Equal(t, int64(paidAmount), *after.RefundAmountCents, "the paid amount")
			}
			assert.Equal(t, &want.Status, after.RefundStatus)
			assert.NotNil(t, after.RefundedAt)
			assert.Nil(t, after.RefundError)
			evs, err := refundStore.Events(t.Context(), job.ID)
			require.NoError(t, err)
			require.NotEmpty(t, evs)
			assert.Equal(t, tt.wantCause(job.ID), evs[len(evs)-1].Cause)

			// A retried activity finds the refund at Stripe, sends nothing
			// and records nothing more.
			res, err = runRefund(t, fake, in)
			require.NoError(t, err)
			assert.Equal(t, activities.RefundResult{AmountCents: paidAmount, Status: "succeeded"}, res)
			assert.Len(t, fake.seen(), 1)
			assert.Equal(t, after, getRefundJob(t, job.ID))
			evsAgain, err := refundStore.Events(t.Context(), job.ID)
			require.NoError(t, err)
			assert.Equal(t, evs, evsAgain)
		})
	}
}

func TestRefundPaymentStripeErrors(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		nonRetryable bool
	}{
		{"our validation", fmt.Errorf("payments: refund for job x: %w: payment intent ID must start with pi_", payments.ErrInvalidInput), true},
		{"invalid request", fmt.Errorf("payments: refund: %w", &payments.APIError{HTTPStatus: 400,
			Type: "invalid_request_error", Code: "resource_missing"}), true},
		{"idempotency error", &payments.APIError{HTTPStatus: 400, Type: "idempotency_error"}, true},
		{"connection reset", errors.New("connection reset"), false},
		{"Stripe down", fmt.Errorf("payments: refund: %w", &payments.APIError{HTTPStatus: 503, Type: "api_error"}), false},
		{"rate limited", &payments.APIError{HTTPStatus: 429, Type: "invalid_request_error", Code: "rate_limit"}, false},
		{"refused for good", fmt.Errorf("payments: refund: %w: %w", payments.ErrRefundRefused, &payments.APIError{HTTPStatus: 400,
			Type: "invalid_request_error", Code: "charge_disputed"}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, !tt.nonRetryable, payments.Retryable(tt.err), "test case premise")
			job := newPaidJob(t)
			evBefore, err := refundStore.Events(t.Context(), job.ID)
			require.NoError(t, err)
			fake := &fakeRefunds{err: tt.err}

			_, err = runRefund(t, fake, refundInput(job))
			require.Error(t, err)
			assert.Len(t, fake.seen(), 1)
			var appErr *temporal.ApplicationError
			if tt.nonRetryable {
				require.True(t, errors.As(err, &appErr), "want an ApplicationError, got %T: %v", err, err)
				want := activities.ErrTypeStripeRejected
				if errors.Is(tt.err, payments.ErrRefundRefused) {
					want = activities.ErrTypeRefundRefused // the workflow tries a new key later
				}
				assert.Equal(t, want, appErr.Type())
				assert.True(t, appErr.NonRetryable(), "a refused refund must not be retried: %v", err)
			} else if errors.As(err, &appErr) {
				assert.False(t, appErr.NonRetryable(), "want a retryable error, got %v", err)
				assert.NotEqual(t, activities.ErrTypeStripeRejected, appErr.Type())
			}
			assert.Contains(t, err.Error(), tt.err.Error(), "Stripe's error is kept for the admins")

			// Nothing is recorded: the workflow decides what to do.
			assert.Equal(t, job, getRefundJob(t, job.ID))
			evs, err := refundStore.Events(t.Context(), job.ID)
			require.NoError(t, err)
			assert.Equal(t, evBefore, evs)
		})
	}
}

func TestRefundPaymentStoreRefuses(t *testing.T) {
	tests := []struct {
		name  string
		jobID func(t *testing.T) string
	}{
		{"payment not recorded", newRefundJob},
		{"unknown job", func(*testing.T) string { return uuid.NewString() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.jobID(t)
			fake := &fakeRefunds{refund: payments.Refund{ID: "re_" + id, Status: "succeeded", AmountCents: paidAmount}}
			_, err := runRefund(t, fake, activities.RefundInput{JobID: id, PaymentIntentID: "pi_" + id,
				AmountCents: paidAmount, Reason: jobs.ReasonCancelled})
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "want an ApplicationError, got %T: %v", err, err)
			assert.Equal(t, activities.ErrTypeInvalidTransition, appErr.Type())
			assert.True(t, appErr.NonRetryable())
		})
	}
}

// A refund found at Stripe (made by hand in the Dashboard, or by an
// earlier attempt) is recorded without another call; a new attempt's key
// is numbered; reading Stripe's state failing sends nothing.
func TestRefundPaymentReadsStripeFirst(t *testing.T) {
	t.Run("refunded by hand", func(t *testing.T) {
		job := newPaidJob(t)
		fake := &fakeRefunds{refunded: true}
		res, err := runRefund(t, fake, refundInput(job))
		require.NoError(t, err)
		assert.Equal(t, activities.RefundResult{AmountCents: paidAmount, Status: "succeeded"}, res)
		assert.Empty(t, fake.seen())
		assert.Equal(t, jobs.PaymentRefunded, getRefundJob(t, job.ID).PaymentStatus)
	})
	t.Run("a later attempt", func(t *testing.T) {
		job := newPaidJob(t)
		fake := &fakeRefunds{refund: payments.Refund{ID: "re_2", Status: "succeeded", AmountCents: paidAmount}}
		in := refundInput(job)
		in.Attempt = 2
		_, err := runRefund(t, fake, in)
		require.NoError(t, err)
		require.Len(t, fake.seen(), 1)
		assert.Equal(t, 2, fake.seen()[0].Attempt)
	})
	t.Run("Stripe cannot be read", func(t *testing.T) {
		job := newPaidJob(t)
		fake := &fakeRefunds{stateErr: fmt.Errorf("payments: %w", &payments.APIError{HTTPStatus: 503, Type: "api_error"})}
		_, err := runRefund(t, fake, refundInput(job))
		require.Error(t, err)
		assert.Empty(t, fake.seen(), "nothing sent while Stripe's state is unknown")
		assert.Equal(t, jobs.PaymentPaid, getRefundJob(t, job.ID).PaymentStatus)
	})
}
