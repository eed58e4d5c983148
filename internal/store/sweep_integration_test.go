//go:build integration

package store_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/store"
)

// eachOwed collects what EachOwed hands out, page by page.
func eachOwed(t *testing.T, s *store.Store, cutoff time.Time, pageSize int) [][]store.OwedJob {
	t.Helper()
	var pages [][]store.OwedJob
	require.NoError(t, s.EachOwed(t.Context(), cutoff, pageSize, func(p []store.OwedJob) error {
		pages = append(pages, slices.Clone(p))
		return nil
	}))
	return pages
}

func owedIDs(pages [][]store.OwedJob) []string {
	var ids []string
	for _, p := range pages {
		for _, j := range p {
			ids = append(ids, j.ID)
		}
	}
	return ids
}

func TestEachOwed(t *testing.T) {
	ctx := t.Context()
	// A database of its own: only these jobs exist.
	s, dbURL := newDatabase(t)
	raw, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(raw.Close)

	base := time.Date(2001, 1, 1, 12, 0, 0, 0, time.UTC)
	cutoff := base.Add(time.Hour)
	type row struct {
		status  jobs.Status
		payment jobs.PaymentStatus
		updated time.Time
		owed    bool
	}
	rows := []row{
		{jobs.StatusAwaitingPayment, jobs.PaymentPending, base.Add(5 * time.Minute), true},
		{jobs.StatusAwaitingPayment, jobs.PaymentProcessing, base.Add(6 * time.Minute), true}, // a bank debit under way
		{jobs.StatusPending, jobs.PaymentPaid, base.Add(1 * time.Minute), true},
		{jobs.StatusProcessing, jobs.PaymentPaid, base.Add(9 * time.Minute), true},
		{jobs.StatusFailed, jobs.PaymentPaid, base.Add(3 * time.Minute), true},
		{jobs.StatusFailed, jobs.PaymentRefundFailed, base.Add(7 * time.Minute), true},
		{jobs.StatusAbandoned, jobs.PaymentPaid, base.Add(2 * time.Minute), true}, // a late payment
		{jobs.StatusAbandoned, jobs.PaymentRefundFailed, base.Add(8 * time.Minute), true},
		{jobs.StatusCompleted, jobs.PaymentPaid, base.Add(4 * time.Minute), false},
		{jobs.StatusFailed, jobs.PaymentRefunded, base.Add(6 * time.Minute), false},
		{jobs.StatusFailed, jobs.PaymentPending, base.Add(10 * time.Minute), false}, // failed before payment
		{jobs.StatusAbandoned, jobs.PaymentExpired, base.Add(11 * time.Minute), false},
		{jobs.StatusAbandoned, jobs.PaymentFailed, base.Add(12 * time.Minute), false},
		{jobs.StatusAbandoned, jobs.PaymentRefunded, base.Add(13 * time.Minute), false},
		{jobs.StatusCompleted, jobs.PaymentRefunded, base.Add(14 * time.Minute), false},
		// Refunds Stripe kept refusing belong to the admins.
		{jobs.StatusFailed, jobs.PaymentRefundNeedsAttention, base.Add(15 * time.Minute), false},
		{jobs.StatusAbandoned, jobs.PaymentRefundNeedsAttention, base.Add(16 * time.Minute), false},
		{jobs.StatusProcessing, jobs.PaymentRefundNeedsAttention, base.Add(17 * time.Minute), false},
		// Owed, but changed too recently.
		{jobs.StatusPending, jobs.PaymentPaid, cutoff, false}, // the cutoff is exclusive
		{jobs.StatusProcessing, jobs.PaymentPaid, cutoff.Add(time.Minute), false},
		{jobs.StatusFailed, jobs.PaymentPaid, cutoff.Add(2 * time.Minute), false},
	}
	ids := make([]string, len(rows))
	owed := map[string]row{}
	for i, r := range rows {
		job, created, err := s.CreateJob(ctx, newJobInput())
		require.NoError(t, err)
		require.True(t, created)
		id := job.ID
		ids[i] = id
		_, err = raw.Exec(ctx, `UPDATE jobs SET status = $2, payment_status = $3, updated_at = $4,
			payment_intent_id = $5, amount_paid_cents = $6, failure_reason = $7, checkout_session_id = $8,
			attempt = $9, checkout_expires_at = $10 WHERE id = $1`,
			id, r.status, r.payment, r.updated, "pi_"+id, 400+i, "reason-"+strconv.Itoa(i), "cs_"+id, i,
			r.updated.Add(30*time.Minute))
		require.NoError(t, err)
		if r.owed {
			owed[id] = r
		}
	}

	t.Run("every owed job, with what the sweep needs", func(t *testing.T) {
		pages := eachOwed(t, s, cutoff, 0)
		require.Len(t, pages, 1)
		got := map[string]store.OwedJob{}
		for _, j := range pages[0] {
			got[j.ID] = j
		}
		require.Len(t, got, len(owed))
		for i, id := range ids {
			r := rows[i]
			j, ok := got[id]
			require.Equal(t, r.owed, ok, "job %d (%s, payment %s, %s)", i, r.status, r.payment, r.updated)
			if !ok {
				continue
			}
			assert.Equal(t, store.OwedJob{
				ID: id, Status: r.status, PaymentStatus: r.payment,
				PaymentIntentID: ptr("pi_" + id), AmountPaidCents: ptr(int64(400 + i)),
				FailureReason: ptr("reason-" + strconv.Itoa(i)), CheckoutSessionID: ptr("cs_" + id),
				Attempt: i, UpdatedAt: j.UpdatedAt, CheckoutExpiresAt: j.CheckoutExpiresAt,
			}, j)
			assert.True(t, r.updated.Equal(j.UpdatedAt), "updated_at %v, want %v", j.UpdatedAt, r.updated)
			if assert.NotNil(t, j.CheckoutExpiresAt) {
				want := r.updated.Add(30 * time.Minute)
				assert.True(t, want.Equal(*j.CheckoutExpiresAt), "checkout_expires_at %v, want %v", *j.CheckoutExpiresAt, want)
			}
		}
		assert.True(t, slices.IsSorted(owedIDs(pages)), "in ID order")
	})

	t.Run("the cutoff", func(t *testing.T) {
		var want []string
		for id, r := range owed {
			if r.updated.Before(base.Add(3 * time.Minute)) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		require.Len(t, want, 2)
		assert.Equal(t, want, owedIDs(eachOwed(t, s, base.Add(3*time.Minute), 0)), "exclusive")
		assert.Empty(t, eachOwed(t, s, base, 0), "before every job")
		later := owedIDs(eachOwed(t, s, cutoff.Add(time.Hour), 0))
		assert.Len(t, later, len(owed)+3, "a later cutoff takes in the recent ones")
		assert.Contains(t, later, ids[18])
	})

	t.Run("pages cover every job once", func(t *testing.T) {
		all := owedIDs(eachOwed(t, s, cutoff, 0))
		for _, size := range []int{1, 2, 3, len(all), len(all) + 1} {
			pages := eachOwed(t, s, cutoff, size)
			assert.Equal(t, all, owedIDs(pages), "page size %d", size)
			for _, p := range pages {
				assert.NotEmpty(t, p, "no empty page")
				assert.LessOrEqual(t, len(p), size)
			}
		}
	})

	t.Run("OwedPage continues after an ID", func(t *testing.T) {
		all := owedIDs(eachOwed(t, s, cutoff, 0))
		first, err := s.OwedPage(ctx, cutoff, "", 3)
		require.NoError(t, err)
		require.Len(t, first, 3)
		next, err := s.OwedPage(ctx, cutoff, first[2].ID, 100)
		require.NoError(t, err)
		assert.Equal(t, all, owedIDs([][]store.OwedJob{first, next}))
	})

	t.Run("fn's error stops it", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		err := s.EachOwed(ctx, cutoff, 2, func([]store.OwedJob) error {
			calls++
			return boom
		})
		require.ErrorIs(t, err, boom)
		assert.Equal(t, 1, calls)
	})

	// Far more owed jobs than a page (or than any fixed window): all come
	// through, once each, whatever their change time.
	t.Run("more than a page", func(t *testing.T) {
		const bulk = 2500
		tag, err := raw.Exec(ctx, `INSERT INTO jobs (id, status, image_url, resolution, image_width, image_height,
				output_width, output_height, access_token_hash, request_hash, callback_secret, currency, price_cents,
				markup_percent, estimated_credits, estimated_cost_cents, payment_status, updated_at)
			SELECT gen_random_uuid(), CASE WHEN g % 5 = 0 THEN 'completed' ELSE 'awaiting_payment' END,
				'https://images.example.com/bulk.png', '4x', 640, 480, 2560, 1920, '\x00', '\x00', 'secret', 'usd',
				499, 30, 16, 64, 'pending', $2::timestamptz + g * interval '1 ms'
			FROM generate_series(1, $1) g`, bulk, base)
		require.NoError(t, err)
		require.EqualValues(t, bulk, tag.RowsAffected())
		wantBulk := bulk - bulk/5 // every fifth completed

		pages := eachOwed(t, s, cutoff, 0)
		got := owedIDs(pages)
		require.Equal(t, wantBulk+len(owed), len(got))
		require.Len(t, pages, 3)
		assert.Len(t, pages[0], store.OwedPageSize)
		assert.Len(t, pages[1], store.OwedPageSize)
		assert.True(t, slices.IsSorted(got), "in ID order")
		assert.Equal(t, len(got), len(slices.Compact(slices.Clone(got))), "no job twice")
		for id := range owed {
			assert.Contains(t, got, id)
		}
	})
}
