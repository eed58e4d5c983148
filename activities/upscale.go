package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
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
	// Submission numbers the sends over the job's life, from 1; it is in
	// the callback URL, so a callback tells which send it answers. 0 (from
	// histories before it) sends unnumbered.
	Submission int
}

// ErrTypeUpsamplerAmbiguous: the submission's answer was lost and Upsampler
// may have the job. Sending it again could upscale (and charge) it twice;
// the workflow waits for this submission's callback instead.
const ErrTypeUpsamplerAmbiguous = "UpsamplerAnswerLost"

// UpscaleStatus is Upsampler's view of a job.
type UpscaleStatus struct {
	UpsamplerJobID string
	Status         string
	ResultURL      string
	CreditCost     float64
	Error          string
	// Recorded: the job record holds the Upsampler job and the job is
	// processing (SubmitUpscale's answer only).
	Recorded bool `json:",omitempty"`
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
		st, err := a.CheckUpscale(ctx, CheckUpscaleInput{UpsamplerJobID: *job.UpsamplerJobID})
		if err != nil {
			return st, err
		}
		return a.recordProcessing(ctx, in, st), nil
	}
	if in.Submission > 0 {
		first, err := a.Store.BeginSubmission(ctx, in.JobID, in.Submission)
		if err != nil {
			return UpscaleStatus{}, storeErr(err)
		}
		if !first {
			// An earlier try of this submission was sent and its answer lost
			// (this process died, or the call timed out).
			return UpscaleStatus{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("submission %d was sent before and its answer lost", in.Submission), ErrTypeUpsamplerAmbiguous, nil)
		}
	}
	start := time.Now()
	j, err := a.Upsampler.Submit(ctx, upsampler.SubmitRequest{
		ImageURL:      in.ImageURL,
		UpscaleFactor: float64(in.Factor),
		WebhookURL:    a.callbackURL(in.JobID, job.CallbackSecret, in.Submission),
	})
	a.Metrics.UpsamplerRequest(metrics.UpsamplerSubmit, time.Since(start))
	if err != nil && in.Submission > 0 {
		if upsampler.Ambiguous(err) {
			return UpscaleStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUpsamplerAmbiguous, err)
		}
		// Not taken: a retry may send it. If this write fails, the retry
		// takes the answer for lost and waits for a callback instead.
		if ferr := a.Store.ForgetSubmission(ctx, in.JobID, in.Submission); ferr != nil {
			activity.GetLogger(ctx).Warn("Could not note that Upsampler did not take the submission", "error", ferr)
		}
	}
	if err != nil {
		return UpscaleStatus{}, upsamplerErr(err, ErrTypeUpsamplerRejected)
	}
	return a.recordProcessing(ctx, in, statusOf(j)), nil
}

// recordProcessing notes the job Upsampler accepted at once, and moves the
// job to processing: if this process dies now, the retry finds it; through
// a database outage, it insists for a while. If the record still cannot be
// written, the ID goes back to the workflow all the same, not Recorded
// (its MarkProcessing records it): an accepted job is never lost.
func (a *Activities) recordProcessing(ctx context.Context, in SubmitUpscaleInput, st UpscaleStatus) UpscaleStatus {
	err := keepRecording(ctx, func(ctx context.Context) error {
		if err := a.Store.RecordSubmission(ctx, in.JobID, in.Attempt, st.UpsamplerJobID); err != nil {
			return err
		}
		return a.Store.MarkProcessing(ctx, in.JobID, st.UpsamplerJobID)
	})
	if err != nil {
		activity.GetLogger(ctx).Warn("Upsampler accepted the job but it could not be recorded yet",
			"upsampler_job_id", st.UpsamplerJobID, "error", err)
	}
	st.Recorded = err == nil
	return st
}

// callbackURL is where Upsampler reports a job's result; s names the submission.
func (a *Activities) callbackURL(jobID, secret string, submission int) string {
	u := a.PublicBaseURL + "/v1/webhooks/upsampler/" + url.PathEscape(jobID) + "/" + url.PathEscape(secret)
	if submission > 0 {
		u += "?s=" + strconv.Itoa(submission)
	}
	return u
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
