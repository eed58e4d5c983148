//go:build integration

package activities_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"hires/activities"
	"hires/internal/payments"
)

// fakeCheckouts is Stripe for the checkout activities: its sessions are
// completed and paid, by the customer with email.
type fakeCheckouts struct {
	activities.Payments
	email string
}

func (f *fakeCheckouts) ExpireSession(context.Context, string, string) (payments.Session, error) {
	return payments.Session{}, payments.ErrSessionNotOpen
}

func (f *fakeCheckouts) GetSession(_ context.Context, id string) (payments.Session, error) {
	return payments.Session{ID: id, Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_" + id,
		AmountTotal: paidAmount, Currency: "usd", CustomerEmail: f.email}, nil
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
