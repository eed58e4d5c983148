package store

import (
	"context"
	"fmt"
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
