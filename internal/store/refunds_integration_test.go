//go:build integration

package store_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/store"
)

// ---------------------------------------------------------------------------
// helpers for refunds and retries

// paidFailed returns a job that failed after it was paid: a refund is owed.
func paidFailed(t *testing.T) string {
	t.Helper()
	id := jobIn(t, jobs.StatusPending)
	require.NoError(t, st.MarkFailed(t.Context(), id, jobs.ReasonUpsamplerFailed, "setup"))
	job := getJob(t, id)
	require.Equal(t, jobs.StatusFailed, job.Status)
	require.Equal(t, jobs.PaymentPaid, job.PaymentStatus)
	return id
}

// refundRefused returns a paid, failed job whose refund Stripe refused.
func refundRefused(t *testing.T) string {
	t.Helper()
	id := paidFailed(t)
	require.NoError(t, st.MarkRefundFailed(t.Context(), id, "setup: card expired", 1))
	require.Equal(t, jobs.PaymentRefundFailed, getJob(t, id).PaymentStatus)
	return id
}

// refunded returns a paid, failed job whose refund is recorded.
func refunded(t *testing.T) string {
	t.Helper()
	id := paidFailed(t)
	require.NoError(t, st.MarkRefunded(t.Context(), store.Refund{JobID: id, RefundID: "re_setup_" + id,
		AmountCents: 499, Status: "succeeded"}))
	require.Equal(t, jobs.PaymentRefunded, getJob(t, id).PaymentStatus)
	return id
}

// abandonedWith returns an unpaid job abandoned with payment status ps.
func abandonedWith(t *testing.T, ps jobs.PaymentStatus) string {
	t.Helper()
	id := createJob(t, newJobInput()).ID
	require.NoError(t, st.MarkAbandoned(t.Context(), id, "setup", ps))
	job := getJob(t, id)
	require.Equal(t, jobs.StatusAbandoned, job.Status)
	require.Equal(t, ps, job.PaymentStatus)
	return id
}

// latePaid returns an abandoned job whose late payment was recorded.
func latePaid(t *testing.T) string {
	t.Helper()
	id := abandonedWith(t, jobs.PaymentExpired)
	require.NoError(t, st.RecordLatePayment(t.Context(), payment(id)))
	require.Equal(t, jobs.PaymentPaid, getJob(t, id).PaymentStatus)
	return id
}

// awaiting returns a job that is still waiting for its payment.
func awaiting(t *testing.T) string {
	t.Helper()
	return jobIn(t, jobs.StatusAwaitingPayment)
}

// requireAnnotated checks that exactly one trail row was appended after
// evBefore, from and to the job's (unchanged) status, written with the update.
func requireAnnotated(t *testing.T, after store.Job, evBefore []store.Event, cause string, detail *string) {
	t.Helper()
	evs := events(t, after.ID)
	require.Len(t, evs, len(evBefore)+1, "want exactly one new trail row")
	assert.Equal(t, evBefore, evs[:len(evBefore)], "earlier trail untouched")
	last := evs[len(evs)-1]
	assert.Equal(t, ptr(string(after.Status)), last.FromStatus)
	assert.Equal(t, string(after.Status), last.ToStatus)
	assert.Equal(t, cause, last.Cause)
	assert.Equal(t, detail, last.Detail)
	assert.True(t, last.At.Equal(after.UpdatedAt), "event at %v, update at %v", last.At, after.UpdatedAt)
}

// requireUnchanged checks that job id and its trail are still before and evBefore.
func requireUnchanged(t *testing.T, before store.Job, evBefore []store.Event) {
	t.Helper()
	assert.Equal(t, before, getJob(t, before.ID), "job changed")
	assert.Equal(t, evBefore, events(t, before.ID), "trail changed")
}

// ---------------------------------------------------------------------------
// MarkRefunded

func TestMarkRefunded(t *testing.T) {
	ctx := t.Context()

	t.Run("records the refund once", func(t *testing.T) {
		tests := []struct {
			name   string
			setup  func(*testing.T) string
			refund store.Refund // JobID is filled in
			cause  string
		}{
			{"paid", paidFailed,
				store.Refund{RefundID: "re_1", AmountCents: 499, Status: "succeeded"}, "refund:re_1"},
			{"after Stripe refused it", refundRefused,
				store.Refund{RefundID: "re_2", AmountCents: 499, Status: "pending"}, "refund:re_2"},
			{"late payment of an abandoned job", latePaid,
				store.Refund{RefundID: "re_3", AmountCents: 499, Status: "succeeded"}, "refund:re_3"},
			{"already refunded at Stripe: no refund ID", paidFailed,
				store.Refund{AmountCents: 499, Status: "succeeded"}, "refund"},
			{"no refund status", paidFailed,
				store.Refund{RefundID: "re_4", AmountCents: 250}, "refund:re_4"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.setup(t)
				before := getJob(t, id)
				evBefore := events(t, id)
				r := tt.refund
				r.JobID = id

				require.NoError(t, st.MarkRefunded(ctx, r))
				after := getJob(t, id)
				assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")

				want := before
				want.PaymentStatus = jobs.PaymentRefunded
				want.RefundID = nil // empty is unknown, not ""
				if r.RefundID != "" {
					want.RefundID = ptr(r.RefundID)
				}
				want.RefundAmountCents = ptr(r.AmountCents)
				want.RefundStatus = nil
				if r.Status != "" {
					want.RefundStatus = ptr(r.Status)
				}
				want.RefundError = nil
				requireNow(t, after.RefundedAt, after)
				want.RefundedAt = after.RefundedAt
				want.UpdatedAt = after.UpdatedAt
				assert.Equal(t, want, after, "fields written")
				assert.Equal(t, before.Status, after.Status, "status kept")
				requireAnnotated(t, after, evBefore, tt.cause, nil)

				// Recording it again, even with other values, changes nothing.
				// (Only values already known are offered in another version:
				// filling in a refund ID or status that is still missing would
				// be fine.)
				evs := events(t, id)
				again := []store.Refund{r, {JobID: id, RefundID: r.RefundID, AmountCents: 1, Status: r.Status}}
				if r.RefundID != "" && r.Status != "" {
					again = append(again, store.Refund{JobID: id, RefundID: "re_other", AmountCents: 1, Status: "failed"})
				}
				for _, again := range again {
					require.NoError(t, st.MarkRefunded(ctx, again), "repeat %+v", again)
					requireUnchanged(t, after, evs)
				}
			})
		}
	})

	t.Run("refused unless a payment is owed", func(t *testing.T) {
		tests := []struct {
			name  string
			setup func(*testing.T) string
			ps    jobs.PaymentStatus
		}{
			{"payment pending", awaiting, jobs.PaymentPending},
			{"checkout expired", func(t *testing.T) string { return abandonedWith(t, jobs.PaymentExpired) }, jobs.PaymentExpired},
			{"payment failed", func(t *testing.T) string { return abandonedWith(t, jobs.PaymentFailed) }, jobs.PaymentFailed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.setup(t)
				before := getJob(t, id)
				require.Equal(t, tt.ps, before.PaymentStatus)
				evBefore := events(t, id)
				err := st.MarkRefunded(ctx, store.Refund{JobID: id, RefundID: "re_x", AmountCents: 499, Status: "succeeded"})
				require.Error(t, err)
				assert.ErrorIs(t, err, store.ErrInvalidTransition)
				assert.NotErrorIs(t, err, store.ErrNotFound)
				assert.Contains(t, err.Error(), id)
				requireUnchanged(t, before, evBefore)
			})
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		err := st.MarkRefunded(ctx, store.Refund{JobID: id, RefundID: "re_x", AmountCents: 499})
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.NotErrorIs(t, err, store.ErrInvalidTransition)
		assert.Empty(t, events(t, id))
	})
}

// ---------------------------------------------------------------------------
// MarkRefundFailed

func TestMarkRefundFailed(t *testing.T) {
	ctx := t.Context()

	t.Run("first refusal gets a trail row, later ones update the error", func(t *testing.T) {
		id := paidFailed(t)
		before := getJob(t, id)
		evBefore := events(t, id)

		require.NoError(t, st.MarkRefundFailed(ctx, id, "stripe: 402 card_error: expired card", 1))
		after := getJob(t, id)
		assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")
		want := before
		want.PaymentStatus = jobs.PaymentRefundFailed
		want.RefundError = ptr("stripe: 402 card_error: expired card")
		want.RefundAttempt = 1 // the next key's number
		require.NotNil(t, after.RefundRefusedAt)
		want.RefundRefusedAt = after.RefundRefusedAt
		want.UpdatedAt = after.UpdatedAt
		assert.Equal(t, want, after)
		requireAnnotated(t, after, evBefore, "refund_failed", ptr("stripe: 402 card_error: expired card"))

		evs := events(t, id)
		for i, detail := range []string{"second refusal", "third refusal"} {
			require.NoError(t, st.MarkRefundFailed(ctx, id, detail, i+2))
			again := getJob(t, id)
			want := after
			want.RefundError = ptr(detail) // the latest refusal
			want.RefundAttempt = i + 2     // the refusals' start stays
			want.UpdatedAt = again.UpdatedAt
			assert.Equal(t, want, again)
			assert.Equal(t, evs, events(t, id), "no new trail row for %q", detail)
		}

		// Stripe finally accepts: the error goes.
		require.NoError(t, st.MarkRefunded(ctx, store.Refund{JobID: id, RefundID: "re_ok", AmountCents: 499, Status: "succeeded"}))
		done := getJob(t, id)
		assert.Equal(t, jobs.PaymentRefunded, done.PaymentStatus)
		assert.Nil(t, done.RefundError)
	})

	t.Run("a payment refunded meanwhile is left alone", func(t *testing.T) {
		id := refunded(t)
		before := getJob(t, id)
		evBefore := events(t, id)
		require.NoError(t, st.MarkRefundFailed(ctx, id, "refused", 1))
		requireUnchanged(t, before, evBefore)
	})

	t.Run("refused unless a payment is owed", func(t *testing.T) {
		tests := []struct {
			name  string
			setup func(*testing.T) string
		}{
			{"payment pending", awaiting},
			{"checkout expired", func(t *testing.T) string { return abandonedWith(t, jobs.PaymentExpired) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.setup(t)
				before := getJob(t, id)
				evBefore := events(t, id)
				err := st.MarkRefundFailed(ctx, id, "refused", 1)
				require.Error(t, err)
				assert.ErrorIs(t, err, store.ErrInvalidTransition)
				assert.Contains(t, err.Error(), id)
				requireUnchanged(t, before, evBefore)
			})
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		err := st.MarkRefundFailed(ctx, id, "refused", 1)
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.Empty(t, events(t, id))
	})
}

// ---------------------------------------------------------------------------
// ConfirmRefund

func TestConfirmRefund(t *testing.T) {
	ctx := t.Context()

	t.Run("confirms once", func(t *testing.T) {
		tests := []struct {
			name     string
			setup    func(*testing.T) string
			refundID string // in the event
			amount   int64  // in the event
			// keeps: the refund was recorded before; its ID, amount and
			// time stay. Otherwise the event's fill them.
			keeps bool
		}{
			{"our refund, recorded", refunded, "re_event", 999, true},
			{"our refund, event without refund ID", refunded, "", 999, true},
			{"dashboard refund of a failed job", paidFailed, "re_dash", 499, false},
			{"dashboard refund of a completed job", func(t *testing.T) string { return jobIn(t, jobs.StatusCompleted) },
				"re_dash", 499, false},
			{"dashboard refund, event without refund ID", paidFailed, "", 499, false},
			{"after Stripe refused ours", refundRefused, "re_late", 499, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.setup(t)
				before := getJob(t, id)
				evBefore := events(t, id)
				require.NotNil(t, before.PaymentIntentID)
				evt := "evt_refunded_" + id

				got, err := st.ConfirmRefund(ctx, store.RefundConfirmation{EventID: evt,
					PaymentIntentID: *before.PaymentIntentID, RefundID: tt.refundID, AmountRefundedCents: tt.amount})
				require.NoError(t, err)
				assert.Equal(t, id, got)

				after := getJob(t, id)
				assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")
				want := before
				want.PaymentStatus = jobs.PaymentRefunded
				requireNow(t, after.RefundConfirmedAt, after)
				want.RefundConfirmedAt = after.RefundConfirmedAt
				want.RefundError = nil
				if tt.keeps {
					require.NotNil(t, before.RefundedAt)
					assert.True(t, before.RefundedAt.Before(after.UpdatedAt))
				} else {
					require.Nil(t, before.RefundID)
					want.RefundID = nil
					if tt.refundID != "" {
						want.RefundID = ptr(tt.refundID)
					}
					want.RefundAmountCents = ptr(tt.amount)
					requireNow(t, after.RefundedAt, after)
					want.RefundedAt = after.RefundedAt
				}
				want.UpdatedAt = after.UpdatedAt
				assert.Equal(t, want, after)
				requireAnnotated(t, after, evBefore, evt, ptr("charge.refunded"))

				// Another charge.refunded (a redelivery under a new ID, or a
				// later event) changes nothing.
				evs := events(t, id)
				got, err = st.ConfirmRefund(ctx, store.RefundConfirmation{EventID: evt + "_again",
					PaymentIntentID: *before.PaymentIntentID, RefundID: "re_again", AmountRefundedCents: 1})
				require.NoError(t, err)
				assert.Equal(t, id, got)
				requireUnchanged(t, after, evs)
			})
		}
	})

	t.Run("unknown payment intent", func(t *testing.T) {
		got, err := st.ConfirmRefund(ctx, store.RefundConfirmation{EventID: "evt_" + uuid.NewString(),
			PaymentIntentID: "pi_unknown_" + uuid.NewString(), RefundID: "re_x", AmountRefundedCents: 499})
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.Empty(t, got)
	})
}

// ---------------------------------------------------------------------------
// RecordLatePayment

func TestRecordLatePayment(t *testing.T) {
	ctx := t.Context()

	t.Run("records the payment once, job stays abandoned", func(t *testing.T) {
		tests := []struct {
			name  string
			ps    jobs.PaymentStatus // when abandoned
			email string
		}{
			{"after the checkout expired", jobs.PaymentExpired, "late@example.com"},
			{"after an asynchronous payment failed", jobs.PaymentFailed, "late@example.com"},
			{"without customer email", jobs.PaymentExpired, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := abandonedWith(t, tt.ps)
				before := getJob(t, id)
				evBefore := events(t, id)
				p := store.Payment{JobID: id, Cause: "evt_late_" + id, PaymentIntentID: "pi_late_" + id,
					AmountCents: 499, Currency: "usd", CustomerEmail: tt.email}

				require.NoError(t, st.RecordLatePayment(ctx, p))
				after := getJob(t, id)
				assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")
				want := before
				want.PaymentStatus = jobs.PaymentPaid
				want.PaymentIntentID = ptr(p.PaymentIntentID)
				want.AmountPaidCents = ptr(p.AmountCents)
				want.PaidCurrency = ptr(p.Currency)
				want.CustomerEmail = nil // empty is unknown, not ""
				if tt.email != "" {
					want.CustomerEmail = ptr(tt.email)
				}
				requireNow(t, after.PaidAt, after)
				want.PaidAt = after.PaidAt
				want.UpdatedAt = after.UpdatedAt
				assert.Equal(t, want, after)
				assert.Equal(t, jobs.StatusAbandoned, after.Status)
				requireAnnotated(t, after, evBefore, "late_payment:"+p.Cause, nil)

				evs := events(t, id)
				for _, again := range []store.Payment{p, {JobID: id, Cause: "evt_other", PaymentIntentID: "pi_other",
					AmountCents: 1, Currency: "eur", CustomerEmail: "other@example.com"}} {
					require.NoError(t, st.RecordLatePayment(ctx, again))
					requireUnchanged(t, after, evs)
				}
			})
		}
	})

	t.Run("left alone once refunded or refused", func(t *testing.T) {
		tests := []struct {
			name  string
			after func(t *testing.T, id string) // applied after the late payment
		}{
			{"refunded", func(t *testing.T, id string) {
				require.NoError(t, st.MarkRefunded(t.Context(), store.Refund{JobID: id, RefundID: "re_" + id, AmountCents: 499, Status: "succeeded"}))
			}},
			{"refund refused", func(t *testing.T, id string) {
				require.NoError(t, st.MarkRefundFailed(t.Context(), id, "refused", 1))
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := latePaid(t)
				tt.after(t, id)
				before := getJob(t, id)
				evBefore := events(t, id)
				require.NoError(t, st.RecordLatePayment(ctx, store.Payment{JobID: id, Cause: "evt_again",
					PaymentIntentID: "pi_again", AmountCents: 999, Currency: "eur", CustomerEmail: "again@example.com"}))
				requireUnchanged(t, before, evBefore)
			})
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		err := st.RecordLatePayment(ctx, payment(id))
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.Empty(t, events(t, id))
	})
}

// ---------------------------------------------------------------------------
// MarkRetrying and RecordSubmission

// failedInProcessing returns a paid job that failed at Upsampler after the
// submission of its first attempt was recorded.
func failedInProcessing(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	id := jobIn(t, jobs.StatusProcessing)
	require.NoError(t, st.RecordSubmission(ctx, id, 0, "ups-"+id))
	require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonUpsamplerFailed, "Upsampler said no"))
	job := getJob(t, id)
	require.NotNil(t, job.UpsamplerJobID)
	require.NotNil(t, job.UpsamplerAttempt)
	require.NotNil(t, job.FailedAt)
	require.NotNil(t, job.FailureReason)
	require.NotNil(t, job.FailureDetail)
	return id
}

func TestMarkRetrying(t *testing.T) {
	ctx := t.Context()

	t.Run("failed job goes back to pending", func(t *testing.T) {
		id := failedInProcessing(t)
		before := getJob(t, id)
		evBefore := events(t, id)

		require.NoError(t, st.MarkRetrying(ctx, id, 1, "admin_retry:alice"))
		after := getJob(t, id)
		assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")
		want := before
		want.Status = jobs.StatusPending
		want.Attempt = 1
		want.FailedAt, want.FailureReason, want.FailureDetail = nil, nil, nil
		want.UpsamplerJobID, want.UpsamplerAttempt = nil, nil
		want.UpdatedAt = after.UpdatedAt
		assert.Equal(t, want, after, "payment and everything else kept")

		evs := events(t, id)
		require.Len(t, evs, len(evBefore)+1)
		assert.Equal(t, evBefore, evs[:len(evBefore)])
		last := evs[len(evs)-1]
		assert.Equal(t, ptr(string(jobs.StatusFailed)), last.FromStatus)
		assert.Equal(t, string(jobs.StatusPending), last.ToStatus)
		assert.Equal(t, "admin_retry:alice", last.Cause)
		assert.Nil(t, last.Detail)
		assert.True(t, last.At.Equal(after.UpdatedAt))

		// A retried activity finds the job pending: nothing changes.
		require.NoError(t, st.MarkRetrying(ctx, id, 1, "admin_retry:alice"))
		requireUnchanged(t, after, evs)

		// The next attempt fails too and is retried again.
		require.NoError(t, st.MarkProcessing(ctx, id, "ups-second-"+id))
		require.NoError(t, st.RecordSubmission(ctx, id, 1, "ups-second-"+id))
		require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonUpsamplerTimeout, ""))
		require.NoError(t, st.MarkRetrying(ctx, id, 2, "admin_retry"))
		second := getJob(t, id)
		assert.Equal(t, jobs.StatusPending, second.Status)
		assert.Equal(t, 2, second.Attempt)
		assert.Nil(t, second.UpsamplerJobID)
		assert.Nil(t, second.UpsamplerAttempt)
		assert.Nil(t, second.FailureReason)
		// The trail keeps both failures.
		var failures []string
		for _, ev := range events(t, id) {
			if ev.ToStatus == string(jobs.StatusFailed) {
				failures = append(failures, ev.Cause)
			}
		}
		assert.Equal(t, []string{jobs.ReasonUpsamplerFailed, jobs.ReasonUpsamplerTimeout}, failures)
	})

	t.Run("forbidden unless failed", func(t *testing.T) {
		for _, from := range []jobs.Status{jobs.StatusAwaitingPayment, jobs.StatusProcessing,
			jobs.StatusCompleted, jobs.StatusAbandoned} {
			t.Run("from "+string(from), func(t *testing.T) {
				id := jobIn(t, from)
				before := getJob(t, id)
				evBefore := events(t, id)
				err := st.MarkRetrying(ctx, id, 1, "admin_retry")
				require.Error(t, err)
				assert.ErrorIs(t, err, store.ErrInvalidTransition)
				assert.Contains(t, err.Error(), id)
				requireUnchanged(t, before, evBefore)
			})
		}
	})

	t.Run("already pending is a no-op", func(t *testing.T) {
		// Not an error: it is how a retried MarkRetrying activity is harmless.
		id := jobIn(t, jobs.StatusPending)
		before := getJob(t, id)
		evBefore := events(t, id)
		require.NoError(t, st.MarkRetrying(ctx, id, 1, "admin_retry"))
		requireUnchanged(t, before, evBefore)
	})

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		err := st.MarkRetrying(ctx, id, 1, "admin_retry")
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		assert.Empty(t, events(t, id))
	})
}

func TestRecordSubmission(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name           string
		jobAttempt     int // the job's attempt
		submitAttempt  int // the submission's
		wantRecorded   bool
		alreadyHasPrev bool // an earlier submission is recorded first
	}{
		{"first attempt", 0, 0, true, false},
		{"retry", 1, 1, true, false},
		{"stale attempt is ignored", 1, 0, false, false},
		{"future attempt is ignored", 0, 1, false, false},
		{"stale attempt keeps the current submission", 2, 1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := jobIn(t, jobs.StatusPending)
			if tt.jobAttempt > 0 {
				_, err := pool.Exec(ctx, `UPDATE jobs SET attempt = $2 WHERE id = $1`, id, tt.jobAttempt)
				require.NoError(t, err)
			}
			if tt.alreadyHasPrev {
				require.NoError(t, st.RecordSubmission(ctx, id, tt.jobAttempt, "ups-prev-"+id))
				job := getJob(t, id)
				require.Equal(t, ptr("ups-prev-"+id), job.UpsamplerJobID)
				require.Equal(t, ptr(tt.jobAttempt), job.UpsamplerAttempt)
			}
			before := getJob(t, id)
			evBefore := events(t, id)

			require.NoError(t, st.RecordSubmission(ctx, id, tt.submitAttempt, "ups-new-"+id))
			after := getJob(t, id)
			if !tt.wantRecorded {
				assert.Equal(t, before, after, "a submission of another attempt must change nothing")
			} else {
				assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")
				want := before
				want.UpsamplerJobID = ptr("ups-new-" + id)
				want.UpsamplerAttempt = ptr(tt.submitAttempt)
				want.UpdatedAt = after.UpdatedAt
				assert.Equal(t, want, after)
				assert.Equal(t, jobs.StatusPending, after.Status, "not a status change")
			}
			assert.Equal(t, evBefore, events(t, id), "no trail row")
		})
	}
}

// ---------------------------------------------------------------------------
// ListOwed

// A charge.refunded recorded before our own refund record (the activity
// crashed after Stripe accepted the refund) does not lose the refund's ID.
func TestMarkRefundedAfterConfirmationKeepsTheRefundID(t *testing.T) {
	ctx := t.Context()
	n := newJobInput()
	_, _, err := st.CreateJob(ctx, n)
	require.NoError(t, err)
	require.NoError(t, st.MarkPaid(ctx, store.Payment{JobID: n.ID, Cause: "evt_p", PaymentIntentID: "pi_" + n.ID[:8], AmountCents: 499, Currency: "usd"}))
	_, err = st.ConfirmRefund(ctx, store.RefundConfirmation{EventID: "evt_c", PaymentIntentID: "pi_" + n.ID[:8], AmountRefundedCents: 499})
	require.NoError(t, err)
	trail := events(t, n.ID)
	require.NoError(t, st.MarkRefunded(ctx, store.Refund{JobID: n.ID, RefundID: "re_late", AmountCents: 499, Status: "succeeded"}))
	j, err := st.Get(ctx, n.ID)
	require.NoError(t, err)
	require.Equal(t, "re_late", *j.RefundID)
	require.Equal(t, "succeeded", *j.RefundStatus)
	require.Equal(t, trail, events(t, n.ID), "no second trail row")
}
