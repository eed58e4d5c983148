//go:build integration

package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/store"
)

// outboxKeys lists a job's messages: key, and whether it is done.
func outboxKeys(t *testing.T, id string) map[string]bool {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT key, done_at IS NOT NULL FROM outbox WHERE job_id = $1`, id)
	require.NoError(t, err)
	out := map[string]bool{}
	for rows.Next() {
		var k string
		var done bool
		require.NoError(t, rows.Scan(&k, &done))
		out[k] = done
	}
	require.NoError(t, rows.Err())
	return out
}

// Each change writes the messages it sends with it, once however often it
// is repeated; a change that does not happen sends nothing.
func TestChangesWriteTheirMessages(t *testing.T) {
	ctx := t.Context()
	id := jobIn(t, jobs.StatusAwaitingPayment)
	require.Empty(t, outboxKeys(t, id))
	for range 2 {
		require.NoError(t, st.MarkPaid(ctx, store.Payment{JobID: id, Cause: "evt_1", PaymentIntentID: "pi_1", AmountCents: 50, Currency: "usd"}))
	}
	require.Equal(t, map[string]bool{"email:payment-received:0": false, "event:payment.completed:0": false}, outboxKeys(t, id))
	require.NoError(t, st.MarkProcessing(ctx, id, "up_1"))
	require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonUpsamplerFailed, "x"))
	require.NoError(t, st.MarkRefunded(ctx, store.Refund{JobID: id, RefundID: "re_1", AmountCents: 50, Status: "succeeded"}))
	require.NoError(t, st.MarkRetrying(ctx, id, 1, "admin_retry"))
	require.NoError(t, st.MarkProcessing(ctx, id, "up_2"))
	require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonUpsamplerFailed, "again"))
	require.Equal(t, map[string]bool{
		"email:payment-received:0": false, "event:payment.completed:0": false,
		"event:job.failed:0": false, "email:failed-refunded:0": false,
		"event:job.failed:1": false, // the retry's own failure
	}, outboxKeys(t, id))

	refused := jobIn(t, jobs.StatusCompleted)
	before := outboxKeys(t, refused)
	require.Error(t, st.MarkFailed(ctx, refused, jobs.ReasonUpsamplerFailed, "x"), "completed -> failed is not a transition")
	require.Equal(t, before, outboxKeys(t, refused))
	require.NotContains(t, before, "event:job.failed:0")
}

// The dispatcher's side: a claimed message is its own for the lease; a
// retry waits until it is due; a done or given-up one is not claimed again.
func TestOutboxClaims(t *testing.T) {
	ctx := t.Context()
	s, _ := newDatabase(t)
	n := newJobInput()
	_, _, err := s.CreateJob(ctx, n)
	require.NoError(t, err)
	require.NoError(t, s.SetCheckout(ctx, n.ID, "cs_1", "https://checkout.stripe.com/c/pay/cs_1", time.Now().Add(time.Hour)))
	require.NoError(t, s.MarkPaid(ctx, store.Payment{JobID: n.ID, Cause: "evt_1", PaymentIntentID: "pi_1", AmountCents: 50, Currency: "usd"}))

	claimed, err := s.ClaimDue(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	again, err := s.ClaimDue(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Empty(t, again, "leased")
	byKey := map[string]store.Message{}
	for _, m := range claimed {
		require.Equal(t, 1, m.Attempts)
		byKey[m.Key] = m
	}
	created, ok := byKey["event:job.created:0"]
	require.True(t, ok, "%v", byKey)
	typ, attempt, ok := created.Event()
	require.True(t, ok)
	require.Equal(t, "job.created", typ)
	require.Zero(t, attempt)
	kind, seq, ok := byKey["email:payment-received:0"].Email()
	require.True(t, ok)
	require.Equal(t, "payment-received", kind)
	require.Zero(t, seq)

	require.NoError(t, s.Delivered(ctx, created, ""))
	require.NoError(t, s.RetryAt(ctx, byKey["email:payment-received:0"], time.Now().Add(-time.Second), errors.New("421 busy")))
	require.NoError(t, s.GiveUp(ctx, byKey["event:payment.completed:0"], errors.New("410 gone")))
	due, err := s.DueMessages(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, due, "only the retry is due")
	retry, err := s.ClaimDue(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, retry, 1)
	require.Equal(t, "email:payment-received:0", retry[0].Key)
	require.Equal(t, 2, retry[0].Attempts)
	sent, err := s.Sent(ctx, n.ID, "event:job.created:0")
	require.NoError(t, err)
	require.True(t, sent)
}

func TestCostReport(t *testing.T) {
	ctx := t.Context()
	s, dbURL := newDatabase(t)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	day1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	// paid, completed cost, refund (amounts in cents), with their days.
	rows := []struct {
		paidAt, doneAt, refundedAt *time.Time
		paid, estCost              int64
		actualCost, refund         *int64
	}{
		{paidAt: &day1, doneAt: &day1, paid: 384, estCost: 64, actualCost: ptr(int64(60))},
		{paidAt: &day1, doneAt: &day2, paid: 192, estCost: 64}, // estimate used, cost on day 2
		{paidAt: &day1, refundedAt: &day2, paid: 50, estCost: 4, refund: ptr(int64(50))},
		{paidAt: ptr(day2.Add(48 * time.Hour)), paid: 999, estCost: 4}, // outside the range
	}
	for _, r := range rows {
		n := newJobInput()
		n.EstimatedCostCents = r.estCost
		_, _, err := s.CreateJob(ctx, n)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `UPDATE jobs SET paid_at = $2, amount_paid_cents = $3, processing_completed_at = $4,
			upsampler_cost_cents = $5, refunded_at = $6, refund_amount_cents = $7 WHERE id = $1`,
			n.ID, r.paidAt, r.paid, r.doneAt, r.actualCost, r.refundedAt, r.refund)
		require.NoError(t, err)
	}
	got, err := s.CostReport(ctx, day1.Truncate(24*time.Hour), day2.Truncate(24*time.Hour).Add(24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, []store.CostDay{
		{Day: day1.Truncate(24 * time.Hour), PaidJobs: 3, RevenueCents: 626, UpsamplerCost: 60, RefundsCents: 0, MarginCents: 566},
		{Day: day2.Truncate(24 * time.Hour), PaidJobs: 0, RevenueCents: 0, UpsamplerCost: 64, RefundsCents: 50, MarginCents: -114},
	}, got)
}
