//go:build integration

package activities_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/store"
	"hires/internal/token"
)

// fakeCheckouts is Stripe for the checkout activities: it records the
// session parameters and answers with a completed, paid session.
type fakeCheckouts struct {
	activities.Payments
	mu     sync.Mutex
	params []payments.CheckoutParams
	email  string
}

func (f *fakeCheckouts) CreateCheckout(_ context.Context, p payments.CheckoutParams) (payments.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.params = append(f.params, p)
	return payments.Session{ID: "cs_test_" + p.JobID, URL: "https://checkout.stripe.com/c/pay/" + p.JobID}, nil
}

func (f *fakeCheckouts) ExpireSession(context.Context, string, string) (payments.Session, error) {
	return payments.Session{}, payments.ErrSessionNotOpen
}

func (f *fakeCheckouts) GetSession(_ context.Context, id string) (payments.Session, error) {
	return payments.Session{ID: id, Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_" + id,
		AmountTotal: paidAmount, Currency: "usd", CustomerEmail: f.email}, nil
}

const linkSecret = "access-secret-for-tests-0123456789"

// CreateCheckout (workflows started before the API made the session)
// takes the email and return links from the job's row, and returns no URL.
func TestCreateCheckoutReadsTheJob(t *testing.T) {
	ctx := t.Context()
	id := uuid.NewString()
	_, _, err := refundStore.CreateJob(ctx, store.NewJob{ID: id, ImageURL: "https://images.example.com/a.png",
		Resolution: jobs.Resolution4x, Email: "buyer@example.com", ImageWidth: 640, ImageHeight: 480,
		OutputWidth: 2560, OutputHeight: 1920, AccessTokenHash: token.Hash(token.Access([]byte(linkSecret), id)),
		RequestHash: sum("request:" + id), CallbackSecret: "secret-" + id, Currency: "usd", PriceCents: 499,
		CheckoutExpiresAt: time.Now().Add(30 * time.Minute)})
	require.NoError(t, err)
	f := &fakeCheckouts{}
	a := &activities.Activities{Store: refundStore, Payments: f, AccessSecret: []byte(linkSecret), PublicBaseURL: "https://hires.example.com"}
	c, err := a.CreateCheckout(ctx, activities.CreateCheckoutInput{JobID: id, AmountCents: 499, Currency: "usd",
		Resolution: jobs.Resolution4x, ImageWidth: 640, ImageHeight: 480})
	require.NoError(t, err)
	require.Equal(t, "cs_test_"+id, c.SessionID)
	require.Empty(t, c.URL, "the Checkout URL stays out of the history")
	require.Len(t, f.params, 1)
	p := f.params[0]
	page := "https://hires.example.com/jobs/" + id + "?token=" + token.Access([]byte(linkSecret), id)
	require.Equal(t, "buyer@example.com", p.CustomerEmail)
	require.Equal(t, page+"&checkout=success", p.SuccessURL)
	require.Equal(t, page+"&checkout=cancelled", p.CancelURL)
	job, err := refundStore.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "https://checkout.stripe.com/c/pay/"+id, *job.CheckoutURL)
}

// A session found paid when the window closes: the email Stripe reports
// is recorded on the job, not returned to the workflow.
func TestExpireCheckoutStoresTheEmail(t *testing.T) {
	ctx := t.Context()
	id := newRefundJob(t)
	a := &activities.Activities{Store: refundStore, Payments: &fakeCheckouts{email: "payer@example.com"}}
	res, err := a.ExpireCheckout(ctx, activities.ExpireCheckoutInput{JobID: id, SessionID: "cs_test_" + id})
	require.NoError(t, err)
	require.True(t, res.Paid)
	raw, err := json.Marshal(res)
	require.NoError(t, err)
	require.False(t, strings.Contains(string(raw), "payer@example.com"), "result holds the email: %s", raw)
	job, err := refundStore.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "payer@example.com", *job.CustomerEmail)
	// Recording the payment (its event carries no email) keeps it.
	require.NoError(t, a.RecordPayment(ctx, activities.RecordPaymentInput{JobID: id, Cause: "stripe:x", Payment: res.Payment}))
	job, err = refundStore.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "payer@example.com", *job.CustomerEmail)
}
