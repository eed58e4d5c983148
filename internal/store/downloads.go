package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/internal/jobs"
)

// MarkDownloadExpired records that the file was deleted at the link's
// expiry. The job stays completed; the trail gets a row.
func (s *Store) MarkDownloadExpired(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status jobs.Status
		var expired *time.Time
		err := tx.QueryRow(ctx, `SELECT status, download_expired_at FROM jobs WHERE id = $1 FOR UPDATE`, id).
			Scan(&status, &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case status != jobs.StatusCompleted:
			return fmt.Errorf("%w: download of a %s job", ErrInvalidTransition, status)
		case expired != nil:
			return nil // already done
		}
		if _, err := tx.Exec(ctx, `UPDATE jobs SET download_expired_at = now(), result_key = NULL,
			updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		return insertEvent(ctx, tx, id, string(status), status, "download_expired", "")
	})
	if err != nil {
		return fmt.Errorf("store: download expired for %s: %w", id, err)
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

// DownloadChange is an admin's new expiry (and token) for a job's link.
type DownloadChange struct {
	JobID     string
	Token     string // a new token, or empty to keep the link
	ExpiresAt time.Time
	Cause     string // for the trail
	// Seq numbers the email that sends the link again (1 for the first
	// resend); RemindAt is when to remind the customer of the new expiry
	// (zero: no reminder).
	Seq      int
	RemindAt time.Time
}

// SetDownload gives a completed job's link a new expiry and, with a Token,
// a new token (the old link stops working), and emails the link again.
func (s *Store) SetDownload(ctx context.Context, d DownloadChange) error {
	send := func(current) []Outgoing {
		out := []Outgoing{{Email: jobs.EmailImageReady, Seq: d.Seq}}
		if !d.RemindAt.IsZero() {
			out = append(out, Outgoing{Email: jobs.EmailExpiringSoon, Seq: d.Seq, DueAt: d.RemindAt, Replace: true})
		}
		return out
	}
	return s.annotate(ctx, d.JobID, d.Cause, d.ExpiresAt.UTC().Format(time.RFC3339), func(c current) (bool, error) {
		switch {
		case c.Status != jobs.StatusCompleted:
			return false, fmt.Errorf("%w: the download of a %s job", ErrInvalidTransition, c.Status)
		case c.FileDeleted:
			// The link expired and its file is gone: a new link would be dead.
			return false, fmt.Errorf("%w: the download expired and its file was deleted", ErrInvalidTransition)
		}
		return true, nil
	}, send, `UPDATE jobs SET download_expires_at = $2, download_token = COALESCE(NULLIF($3, ''), download_token),
		download_token_hash = COALESCE($4, download_token_hash)`,
		d.ExpiresAt, d.Token, tokenHash(d.Token))
}
