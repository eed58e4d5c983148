package store

import (
	"context"
	"fmt"
	"time"

	"hires/internal/jobs"
)

// Notified reports whether the notification key was delivered for the job.
func (s *Store) Notified(ctx context.Context, jobID, key string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications WHERE job_id = $1 AND key = $2)`,
		jobID, key).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: notified: %w", err)
	}
	return ok, nil
}

// RecordNotification remembers that key was delivered for the job.
func (s *Store) RecordNotification(ctx context.Context, jobID, key string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO notifications (job_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		jobID, key)
	if err != nil {
		return fmt.Errorf("store: record notification: %w", err)
	}
	return nil
}

// MarkDownloaded records the first download of the job's result.
func (s *Store) MarkDownloaded(ctx context.Context, jobID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET downloaded_at = now() WHERE id = $1 AND downloaded_at IS NULL`, jobID)
	if err != nil {
		return fmt.Errorf("store: mark downloaded: %w", err)
	}
	return nil
}

// SetDownload gives a completed job's link a new expiry and, when token is
// not empty, a new token (the old link stops working). cause goes to the trail.
func (s *Store) SetDownload(ctx context.Context, jobID, token string, expiresAt time.Time, cause string) error {
	return s.annotate(ctx, jobID, cause, expiresAt.UTC().Format(time.RFC3339), func(c current) (bool, error) {
		switch {
		case c.Status != jobs.StatusCompleted:
			return false, fmt.Errorf("%w: the download of a %s job", ErrInvalidTransition, c.Status)
		case c.FileDeleted:
			// The link expired and its file is gone: a new link would be dead.
			return false, fmt.Errorf("%w: the download expired and its file was deleted", ErrInvalidTransition)
		}
		return true, nil
	}, `UPDATE jobs SET download_expires_at = $2, download_token = COALESCE(NULLIF($3, ''), download_token),
		download_token_hash = COALESCE($4, download_token_hash)`,
		expiresAt, token, tokenHash(token))
}

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
