//go:build integration

package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"hires/internal/store"
)

func TestNotifications(t *testing.T) {
	ctx := t.Context()
	n := newJobInput()
	_, _, err := st.CreateJob(ctx, n)
	require.NoError(t, err)
	sent, err := st.Notified(ctx, n.ID, "email:image-ready:0")
	require.NoError(t, err)
	require.False(t, sent)
	for i := 0; i < 2; i++ { // idempotent
		require.NoError(t, st.RecordNotification(ctx, n.ID, "email:image-ready:0"))
	}
	sent, err = st.Notified(ctx, n.ID, "email:image-ready:0")
	require.NoError(t, err)
	require.True(t, sent)
	sent, err = st.Notified(ctx, n.ID, "email:image-ready:1")
	require.NoError(t, err)
	require.False(t, sent, "a resend is another notification")
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
