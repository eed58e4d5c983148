package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.temporal.io/sdk/temporal"

	"hires/internal/metrics"
	"hires/internal/upsampler"
)

// SubmitUpscaleInput is one job to send to Upsampler.
type SubmitUpscaleInput struct {
	JobID    string
	ImageURL string
	Factor   int
	Attempt  int // 0, then one more per admin retry
}

// UpscaleStatus is Upsampler's view of a job.
type UpscaleStatus struct {
	UpsamplerJobID string
	Status         string
	ResultURL      string
	CreditCost     float64
	Error          string
}

// SubmitUpscale sends the image to Upsampler with a per-job callback URL.
// The callback carries a secret only this job knows; it is still treated as
// a hint and confirmed through the status endpoint.
func (a *Activities) SubmitUpscale(ctx context.Context, in SubmitUpscaleInput) (UpscaleStatus, error) {
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return UpscaleStatus{}, storeErr(err)
	}
	if job.UpsamplerJobID != nil && job.UpsamplerAttempt != nil && *job.UpsamplerAttempt == in.Attempt {
		// This attempt was submitted already (a retry after a crash): never submit twice.
		return a.CheckUpscale(ctx, CheckUpscaleInput{UpsamplerJobID: *job.UpsamplerJobID})
	}
	start := time.Now()
	j, err := a.Upsampler.Submit(ctx, upsampler.SubmitRequest{
		ImageURL:      in.ImageURL,
		UpscaleFactor: float64(in.Factor),
		WebhookURL:    a.callbackURL(in.JobID, job.CallbackSecret),
	})
	a.Metrics.UpsamplerRequest(metrics.UpsamplerSubmit, time.Since(start))
	if err != nil {
		return UpscaleStatus{}, upsamplerErr(err, ErrTypeUpsamplerRejected)
	}
	// Remember it at once: if this process dies now, the retry finds it;
	// through a database outage, insist rather than submit again.
	if err := keepRecording(ctx, func(ctx context.Context) error {
		return a.Store.RecordSubmission(ctx, in.JobID, in.Attempt, j.ID)
	}); err != nil {
		return UpscaleStatus{}, err
	}
	return statusOf(j), nil
}

// callbackURL is where Upsampler reports a job's result.
func (a *Activities) callbackURL(jobID, secret string) string {
	return a.PublicBaseURL + "/v1/webhooks/upsampler/" + url.PathEscape(jobID) + "/" + url.PathEscape(secret)
}

// MarkProcessingInput records the Upsampler job.
type MarkProcessingInput struct {
	JobID          string
	UpsamplerJobID string
}

// MarkProcessing moves the job to processing, with Upsampler's job ID.
func (a *Activities) MarkProcessing(ctx context.Context, in MarkProcessingInput) error {
	return storeErr(a.Store.MarkProcessing(ctx, in.JobID, in.UpsamplerJobID))
}

// CheckUpscaleInput names the Upsampler job to look at.
type CheckUpscaleInput struct {
	UpsamplerJobID string
}

// CheckUpscale asks Upsampler for the job's status with our API key: the
// only source the workflow trusts.
func (a *Activities) CheckUpscale(ctx context.Context, in CheckUpscaleInput) (UpscaleStatus, error) {
	start := time.Now()
	j, err := a.Upsampler.Status(ctx, in.UpsamplerJobID)
	a.Metrics.UpsamplerRequest(metrics.UpsamplerStatus, time.Since(start))
	if err != nil {
		return UpscaleStatus{}, upsamplerErr(err, ErrTypeUpsamplerUnknown)
	}
	return statusOf(j), nil
}

func statusOf(j upsampler.Job) UpscaleStatus {
	return UpscaleStatus{
		UpsamplerJobID: j.ID,
		Status:         j.Status,
		ResultURL:      j.ImageURL,
		CreditCost:     j.CreditCost,
		Error:          j.Error,
	}
}

// upsamplerErr keeps 429, 5xx and network errors retryable; any other
// answer is final and reported under typ.
func upsamplerErr(err error, typ string) error {
	var apiErr *upsampler.APIError
	if !errors.As(err, &apiErr) || apiErr.Retryable() {
		if apiErr != nil && apiErr.RetryAfter > 0 {
			return temporal.NewApplicationErrorWithOptions(err.Error(), "UpsamplerBusy",
				temporal.ApplicationErrorOptions{Cause: err, NextRetryDelay: apiErr.RetryAfter})
		}
		return fmt.Errorf("upsampler: %w", err)
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err)
}
