package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// OwedJob is what the reconciliation sweep needs of a job that still owes
// the customer something.
type OwedJob struct {
	ID                string             `db:"id"`
	Status            jobs.Status        `db:"status"`
	PaymentStatus     jobs.PaymentStatus `db:"payment_status"`
	PaymentIntentID   *string            `db:"payment_intent_id"`
	AmountPaidCents   *int64             `db:"amount_paid_cents"`
	FailureReason     *string            `db:"failure_reason"`
	CheckoutSessionID *string            `db:"checkout_session_id"`
	CheckoutExpiresAt *time.Time         `db:"checkout_expires_at"`
	Attempt           int                `db:"attempt"`
	RefundAttempt     int                `db:"refund_attempt"`
	RefundRefusedAt   *time.Time         `db:"refund_refused_at"`
	UpdatedAt         time.Time          `db:"updated_at"`
}

// OwedPageSize is the page size EachOwed uses when given none.
const OwedPageSize = 1000

// owedColumns and owedWhere select the owed jobs: not finished, or paid and
// not refunded after failing or being abandoned. A refund that Stripe kept
// refusing (refund_needs_attention) belongs to an admin, not to the sweep.
// The first part of owedWhere is, word for word, the predicate of the
// partial indexes jobs_owed_idx and jobs_owed_id_idx, so that the planner
// can use them.
const (
	owedColumns = `id, status, payment_status, payment_intent_id, amount_paid_cents, failure_reason,
		checkout_session_id, checkout_expires_at, attempt, refund_attempt, refund_refused_at, updated_at`
	owedWhere = `(status IN ('awaiting_payment', 'pending', 'processing')
		       OR status IN ('failed', 'abandoned') AND payment_status IN ('paid', 'refund_failed'))
		  AND payment_status <> 'refund_needs_attention'
		  AND updated_at < $1`
)

// OwedPage returns up to limit owed jobs last changed before cutoff whose
// IDs follow after ("" starts from the first), in ID order. Paging on the
// ID, unlike on the change time, neither skips nor repeats a job that
// changes meanwhile.
func (s *Store) OwedPage(ctx context.Context, cutoff time.Time, after string, limit int) ([]OwedJob, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+owedColumns+` FROM jobs WHERE `+owedWhere+`
			ORDER BY id LIMIT $2`, cutoff, limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+owedColumns+` FROM jobs WHERE `+owedWhere+`
			AND id > $3 ORDER BY id LIMIT $2`, cutoff, limit, after)
	}
	if err != nil {
		return nil, fmt.Errorf("store: owed jobs: %w", err)
	}
	page, err := pgx.CollectRows(rows, pgx.RowToStructByName[OwedJob])
	if err != nil {
		return nil, fmt.Errorf("store: owed jobs: %w", err)
	}
	return page, nil
}

// EachOwed hands every owed job last changed before cutoff to fn, a page
// of at most pageSize jobs (OwedPageSize when 0) at a time, in ID order.
// There is no overall limit: the sweep must see them all. It stops at the
// first error, fn's included.
func (s *Store) EachOwed(ctx context.Context, cutoff time.Time, pageSize int, fn func([]OwedJob) error) error {
	if pageSize <= 0 {
		pageSize = OwedPageSize
	}
	after := ""
	for {
		page, err := s.OwedPage(ctx, cutoff, after, pageSize)
		if err != nil {
			return err
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}
