package activities

import (
	"context"
	"net/url"
	"time"

	"hires/internal/metrics"
	"hires/internal/store"
	"hires/internal/token"
)

// DownloadTokenLength is the length of download tokens, as in the original.
const DownloadTokenLength = 64

// CompleteJobInput delivers the stored result.
type CompleteJobInput struct {
	JobID          string
	UpsamplerJobID string
	CreditCost     float64
	Result         StoredResult
	ExpiresAt      time.Time
}

// CompleteJob issues the download token and marks the job completed. The
// token never enters workflow history; a retry keeps the first token.
func (a *Activities) CompleteJob(ctx context.Context, in CompleteJobInput) error {
	err := storeErr(a.Store.MarkCompleted(ctx, store.Completion{
		JobID:             in.JobID,
		UpsamplerJobID:    in.UpsamplerJobID,
		UpsamplerCredits:  in.CreditCost,
		ResultKey:         in.Result.Key,
		ContentType:       in.Result.ContentType,
		Bytes:             in.Result.Bytes,
		SHA256:            in.Result.SHA256,
		Width:             in.Result.Width,
		Height:            in.Result.Height,
		DownloadToken:     token.Alnum(DownloadTokenLength),
		DownloadExpiresAt: in.ExpiresAt,
	}))
	if err == nil {
		a.Metrics.JobFinished(metrics.JobCompleted)
		a.Metrics.UpsamplerCredits(in.CreditCost)
	}
	return err
}

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
}

// SetDownload records a new expiry, and a fresh token if asked.
func (a *Activities) SetDownload(ctx context.Context, in SetDownloadInput) error {
	tok := ""
	if in.NewToken {
		tok = token.Alnum(DownloadTokenLength)
	}
	return storeErr(a.Store.SetDownload(ctx, in.JobID, tok, in.ExpiresAt, in.Cause))
}

// pageURL is job j's page for its customer, with the access token in it.
// The token is derived here from ACCESS_TOKEN_SECRET, so no link ever
// travels through Temporal.
func (a *Activities) pageURL(j store.Job) string {
	return a.PublicBaseURL + "/jobs/" + url.PathEscape(j.ID) + "?token=" + token.Access(a.AccessSecret, j.ID)
}
