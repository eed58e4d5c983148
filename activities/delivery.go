package activities

import (
	"context"
	"time"

	"hires/internal/store"
	"hires/internal/token"
)

// ExpireDownloadInput names the job whose link expired.
type ExpireDownloadInput struct {
	JobID string
}

// ExpireDownload deletes the file and marks the download expired.
func (a *Activities) ExpireDownload(ctx context.Context, in ExpireDownloadInput) error {
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return storeErr(err)
	}
	if job.ResultKey != nil {
		if err := a.Files.Delete(ctx, *job.ResultKey); err != nil {
			return err
		}
	}
	return storeErr(a.Store.MarkDownloadExpired(ctx, in.JobID))
}

// SetDownloadInput moves a completed job's download expiry.
type SetDownloadInput struct {
	JobID     string
	ExpiresAt time.Time
	NewToken  bool // issue a fresh token; the old link stops working
	Cause     string
	// Seq numbers the email that sends the link again; RemindAt is when
	// the customer is reminded of the new expiry (zero: never).
	Seq      int
	RemindAt time.Time
}

// SetDownload records a new expiry, and a fresh token if asked; the link
// goes out again.
func (a *Activities) SetDownload(ctx context.Context, in SetDownloadInput) error {
	tok := ""
	if in.NewToken {
		tok = token.Alnum(token.DownloadLength)
	}
	return storeErr(a.Store.SetDownload(ctx, store.DownloadChange{JobID: in.JobID, Token: tok, ExpiresAt: in.ExpiresAt,
		Cause: in.Cause, Seq: in.Seq, RemindAt: in.RemindAt}))
}
