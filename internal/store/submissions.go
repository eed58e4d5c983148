package store

import (
	"context"
	"fmt"
)

// BeginSubmission notes that submission n (numbered from 1 over the job's
// life) is about to be sent to Upsampler. It reports false when n was noted
// before: this is a retry of a submission whose answer was lost, and
// Upsampler may have the job, so it must not be sent again.
func (s *Store) BeginSubmission(ctx context.Context, id string, n int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET upsampler_submission = $2
		WHERE id = $1 AND COALESCE(upsampler_submission, 0) < $2`, id, n)
	if err != nil {
		return false, fmt.Errorf("store: begin submission %d of %s: %w", n, id, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
		return false, fmt.Errorf("store: begin submission %d of %s: %w", n, id, err)
	}
	if !exists {
		return false, fmt.Errorf("store: begin submission %d of %s: %w", n, id, ErrNotFound)
	}
	return false, nil
}

// ForgetSubmission takes back BeginSubmission's note of submission n when
// Upsampler certainly did not take it (refused connection, 429, 503): a
// retry may then send it. A no-op once a later submission was noted.
func (s *Store) ForgetSubmission(ctx context.Context, id string, n int) error {
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET upsampler_submission = NULLIF($2 - 1, 0)
		WHERE id = $1 AND upsampler_submission = $2`, id, n)
	if err != nil {
		return fmt.Errorf("store: forget submission %d of %s: %w", n, id, err)
	}
	return nil
}

// RecordSubmission remembers the Upsampler job of an attempt as soon as
// Upsampler accepts it, so that a retried submission finds it.
func (s *Store) RecordSubmission(ctx context.Context, id string, attempt int, upsamplerJobID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE jobs SET upsampler_job_id = $3, upsampler_attempt = $2, updated_at = now()
		WHERE id = $1 AND attempt = $2`, id, attempt, upsamplerJobID)
	if err != nil {
		return fmt.Errorf("store: record submission of %s: %w", id, err)
	}
	return nil
}
