//go:build integration

package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/store"
)

// A refund Stripe kept refusing is handed to admins once, and only while
// it is owed; an admin's settlement ends it.
func TestRefundNeedsAttentionAndSettled(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name      string
		job       func(t *testing.T) string
		moved     bool
		refuseErr bool
	}{
		{"refused so far", refundRefused, true, false},
		{"paid, first refusal", paidFailed, true, false},
		{"refunded meanwhile", refunded, false, false},
		{"never paid", awaiting, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.job(t)
			moved, err := st.MarkRefundNeedsAttention(ctx, id, "charge_disputed")
			if tt.refuseErr {
				require.ErrorIs(t, err, store.ErrInvalidTransition)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.moved, moved)
			if !moved {
				require.Equal(t, jobs.PaymentRefunded, getJob(t, id).PaymentStatus)
				return
			}
			job := getJob(t, id)
			require.Equal(t, jobs.PaymentRefundNeedsAttention, job.PaymentStatus)
			require.Equal(t, "charge_disputed", *job.RefundError)
			again, err := st.MarkRefundNeedsAttention(ctx, id, "charge_disputed")
			require.NoError(t, err)
			require.False(t, again, "recorded once")

			evBefore := events(t, id)
			require.NoError(t, st.MarkRefundSettled(ctx, id, "alice", "paid back by bank transfer"))
			job = getJob(t, id)
			require.Equal(t, jobs.PaymentRefunded, job.PaymentStatus)
			require.NotNil(t, job.RefundedAt)
			require.Equal(t, job.AmountPaidCents, job.RefundAmountCents)
			evs := events(t, id)
			require.Len(t, evs, len(evBefore)+1)
			require.Equal(t, "refund_settled:alice", evs[len(evs)-1].Cause)
			require.NoError(t, st.MarkRefundSettled(ctx, id, "alice", "again"), "a no-op")
			require.Len(t, events(t, id), len(evs))
		})
	}
	t.Run("nothing owed cannot be settled", func(t *testing.T) {
		id := paidFailed(t)
		require.ErrorIs(t, st.MarkRefundSettled(ctx, id, "bob", "note"), store.ErrInvalidTransition)
		require.Equal(t, jobs.PaymentPaid, getJob(t, id).PaymentStatus)
	})
}

func TestMarkPaymentProcessing(t *testing.T) {
	ctx := t.Context()
	id := awaiting(t)
	require.NoError(t, st.MarkPaymentProcessing(ctx, id, "evt_delayed"))
	require.NoError(t, st.MarkPaymentProcessing(ctx, id, "evt_delayed"), "again: a no-op")
	job := getJob(t, id)
	require.Equal(t, jobs.StatusAwaitingPayment, job.Status)
	require.Equal(t, jobs.PaymentProcessing, job.PaymentStatus)
	require.Len(t, events(t, id), 2, "created, then the processing payment once")
	// Then Stripe's verdict: paid.
	require.NoError(t, st.MarkPaid(ctx, payment(id)))
	require.Equal(t, jobs.PaymentPaid, getJob(t, id).PaymentStatus)
	require.ErrorIs(t, st.MarkPaymentProcessing(ctx, id, "evt_late"), store.ErrInvalidTransition)
}

// Each Upsampler submission is noted once before it is sent; one Upsampler
// certainly did not take can be taken back.
func TestBeginSubmission(t *testing.T) {
	ctx := t.Context()
	id := jobIn(t, jobs.StatusPending)
	first, err := st.BeginSubmission(ctx, id, 1)
	require.NoError(t, err)
	require.True(t, first)
	first, err = st.BeginSubmission(ctx, id, 1)
	require.NoError(t, err)
	require.False(t, first, "sent before: its answer may be lost")

	require.NoError(t, st.ForgetSubmission(ctx, id, 1))
	first, err = st.BeginSubmission(ctx, id, 1)
	require.NoError(t, err)
	require.True(t, first, "not taken: may be sent")

	first, err = st.BeginSubmission(ctx, id, 2)
	require.NoError(t, err)
	require.True(t, first)
	require.NoError(t, st.ForgetSubmission(ctx, id, 1), "a no-op once a later one was noted")
	require.Equal(t, 2, *getJob(t, id).UpsamplerSubmission)

	_, err = st.BeginSubmission(ctx, "00000000-0000-4000-8000-000000000000", 1)
	require.True(t, errors.Is(err, store.ErrNotFound), "%v", err)
}

// A new download link for a job whose file was deleted would be dead.
func TestSetDownloadAfterTheFileIsGone(t *testing.T) {
	ctx := t.Context()
	id := jobIn(t, jobs.StatusCompleted)
	require.NoError(t, st.SetDownload(ctx, store.DownloadChange{JobID: id, ExpiresAt: time.Now().Add(time.Hour), Cause: "admin_resend", Seq: 1}))
	require.NoError(t, st.MarkDownloadExpired(ctx, id))
	before := getJob(t, id)
	err := st.SetDownload(ctx, store.DownloadChange{JobID: id, ExpiresAt: time.Now().Add(2 * time.Hour), Cause: "admin_resend", Seq: 2})
	require.ErrorIs(t, err, store.ErrInvalidTransition)
	require.Equal(t, before, getJob(t, id))
}
