package store

import (
	"context"
	"fmt"
	"time"
)

// CostDay is one day of the cost report, in integer cents.
type CostDay struct {
	Day           time.Time `json:"day"`
	PaidJobs      int64     `json:"paid_jobs"`
	RevenueCents  int64     `json:"revenue_cents"`
	UpsamplerCost int64     `json:"upsampler_cost_cents"`
	RefundsCents  int64     `json:"refunds_cents"`
	MarginCents   int64     `json:"margin_cents"`
}

// CostReport sums revenue (by payment day), Upsampler cost (by completion
// day, the actual cost when known, else the estimate) and refunds (by
// refund day) per UTC day in [from, to), with the margin.
func (s *Store) CostReport(ctx context.Context, from, to time.Time) ([]CostDay, error) {
	rows, err := s.pool.Query(ctx, `
		WITH money AS (
			SELECT date_trunc('day', paid_at AT TIME ZONE 'UTC') AS day, 1 AS paid, amount_paid_cents AS revenue,
			       0 AS cost, 0 AS refunds
			  FROM jobs WHERE paid_at >= $1 AND paid_at < $2 AND amount_paid_cents IS NOT NULL
			UNION ALL
			SELECT date_trunc('day', processing_completed_at AT TIME ZONE 'UTC'), 0, 0,
			       COALESCE(upsampler_cost_cents, estimated_cost_cents), 0
			  FROM jobs WHERE processing_completed_at >= $1 AND processing_completed_at < $2
			UNION ALL
			SELECT date_trunc('day', refunded_at AT TIME ZONE 'UTC'), 0, 0, 0, COALESCE(refund_amount_cents, 0)
			  FROM jobs WHERE refunded_at >= $1 AND refunded_at < $2
		)
		SELECT day, sum(paid)::bigint, sum(revenue)::bigint, sum(cost)::bigint, sum(refunds)::bigint
		  FROM money GROUP BY day ORDER BY day`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: cost report: %w", err)
	}
	defer rows.Close()
	var out []CostDay
	for rows.Next() {
		var d CostDay
		if err := rows.Scan(&d.Day, &d.PaidJobs, &d.RevenueCents, &d.UpsamplerCost, &d.RefundsCents); err != nil {
			return nil, fmt.Errorf("store: cost report: %w", err)
		}
		d.Day = time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC)
		d.MarginCents = d.RevenueCents - d.UpsamplerCost - d.RefundsCents
		out = append(out, d)
	}
	return out, rows.Err()
}
