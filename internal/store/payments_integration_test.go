//go:build integration

package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/store"
)

// The webhook records Stripe's customer email before the payment reaches
// the workflow, whose payment record carries none: MarkPaid keeps it.
func TestSetCustomerEmail(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name    string
		webhook string // SetCustomerEmail's address ("" writes nothing)
		paid    string // the payment's CustomerEmail (histories of older versions carry one)
		want    *string
	}{
		{"stored by the webhook, kept by the payment", "payer@example.com", "", ptr("payer@example.com")},
		{"none anywhere", "", "", nil},
		{"only from an older payment record", "", "old@example.com", ptr("old@example.com")},
		{"the payment's own wins", "payer@example.com", "old@example.com", ptr("old@example.com")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := createJob(t, newJobInput()).ID
			for range 2 { // idempotent
				require.NoError(t, st.SetCustomerEmail(ctx, id, tt.webhook))
			}
			p := payment(id)
			p.CustomerEmail = tt.paid
			require.NoError(t, st.MarkPaid(ctx, p))
			require.Equal(t, tt.want, getJob(t, id).CustomerEmail)
		})
	}
	t.Run("unknown job", func(t *testing.T) {
		require.NoError(t, st.SetCustomerEmail(ctx, "00000000-0000-4000-8000-000000000000", "x@example.com"))
	})
}

// ?email= matches the site's email or Stripe's, exactly.
func TestListByEmail(t *testing.T) {
	ctx := t.Context()
	s, _ := newDatabase(t)
	mk := func(email, customer string) string {
		n := newJobInput()
		n.Email = email
		job, _, err := s.CreateJob(ctx, n)
		require.NoError(t, err)
		require.NoError(t, s.SetCustomerEmail(ctx, job.ID, customer))
		return job.ID
	}
	siteOnly := mk("ada@example.com", "")
	stripeOnly := mk("", "ada@example.com")
	both := mk("ada@example.com", "ada@example.com")
	other := mk("bob@example.com", "ada.other@example.com")
	tests := []struct {
		email string
		want  []string
	}{
		{"ada@example.com", []string{siteOnly, stripeOnly, both}},
		{"ADA@example.com", nil}, // exact match
		{"ada.other@example.com", []string{other}},
		{"nobody@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			list, err := s.List(ctx, store.ListFilter{Email: tt.email, Limit: 10, Statuses: []jobs.Status{jobs.StatusAwaitingPayment}})
			require.NoError(t, err)
			var got []string
			for _, j := range list {
				got = append(got, j.ID)
			}
			require.ElementsMatch(t, tt.want, got)
		})
	}
	require.Equal(t, 2, countRows(t, `SELECT count(*) FROM pg_indexes
		WHERE tablename = 'jobs' AND indexname IN ('jobs_email_idx', 'jobs_customer_email_idx')`))
}
