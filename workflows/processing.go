package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/upsampler"
)

// process has Upsampler upscale the paid image and keeps the result: the
// image is sent, the workflow waits for the verdict (woken by a callback,
// or polling) within the processing deadline, and the output is stored
// before its URL expires, which completes the job with its download link.
// It returns the link's expiry; a business failure comes back as a *failure.
func (w *job) process(ctx workflow.Context) (expires time.Time, err error) {
	w.processBy = workflow.Now(ctx).Add(w.in.Timeouts.Processing)
	st, err := w.upscale(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return w.storeResult(ctx, st)
}

// upscale sends the image to Upsampler and waits for its verdict.
func (w *job) upscale(ctx workflow.Context) (activities.UpscaleStatus, error) {
	t := w.in.Timeouts
	remaining := func() time.Duration { return w.processBy.Sub(workflow.Now(ctx)) }

	sub := w.submit(ctx)
	var st activities.UpscaleStatus
	err := sub.result.Get(ctx, &st)
	// A lost answer: Upsampler may have the job, and sending the image again
	// could upscale it twice. The callback of that submission names the job;
	// only without one, after LostSubmission, is the image sent again.
	for isType(err, activities.ErrTypeUpsamplerAmbiguous) {
		wait := remaining()
		if t.LostSubmission > 0 {
			wait = min(wait, t.LostSubmission)
		}
		if wait <= 0 {
			return st, failed(jobs.ReasonUpsamplerTimeout, err)
		}
		n := sub.n
		named, aerr := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "lost submission's callback"}},
			func() bool { return w.calledBack[n] != "" })
		if aerr != nil {
			return st, aerr
		}
		if !named {
			// The callback may have come in the very task the timer fired
			// in: let the signal handlers see it before deciding.
			if aerr := yield(ctx); aerr != nil {
				return st, aerr
			}
			named = w.calledBack[n] != ""
		}
		if named {
			// Confirmed with the status endpoint in the loop below, at once.
			st, err = activities.UpscaleStatus{UpsamplerJobID: w.calledBack[n]}, nil
			break
		}
		if remaining() <= 0 {
			return st, failed(jobs.ReasonUpsamplerTimeout, err)
		}
		workflow.GetLogger(ctx).Warn("No callback for a submission whose answer was lost; sending the image again", "submission", n)
		sub = w.submit(ctx)
		err = sub.result.Get(ctx, &st)
	}
	if err != nil {
		if isType(err, activities.ErrTypeUpsamplerRejected) {
			return st, failed(jobs.ReasonUpsamplerRejected, err)
		}
		return st, failed(jobs.ReasonUpsamplerSubmitErr, err)
	}
	w.state.UpsamplerJobID = st.UpsamplerJobID
	if !st.Recorded { // the submission could not write it: a database outage
		err = workflow.ExecuteActivity(dbOptions(ctx), a.MarkProcessing,
			activities.MarkProcessingInput{JobID: w.in.JobID, UpsamplerJobID: st.UpsamplerJobID}).Get(ctx, nil)
		if err != nil {
			return st, err
		}
	}
	if err := w.setStatus(ctx, jobs.StatusProcessing); err != nil {
		return st, err
	}

	// A callback can beat the submission's own answer (a fast Upsampler):
	// one that came after the submission started wakes the first check at once.
	seen := sub.hints
	for st.Status != upsampler.StatusSuccess && st.Status != upsampler.StatusFailed {
		left := remaining()
		if left <= 0 {
			return st, failed(jobs.ReasonUpsamplerTimeout, fmt.Errorf("no result from Upsampler within %s", t.Processing))
		}
		if w.hints == seen {
			if _, err := workflow.AwaitWithOptions(ctx,
				workflow.AwaitOptions{Timeout: min(t.PollInterval, left), TimerOptions: workflow.TimerOptions{Summary: "poll Upsampler"}},
				func() bool { return w.hints != seen }); err != nil {
				return st, err
			}
		}
		seen = w.hints
		if remaining() <= 0 {
			continue
		}
		var next activities.UpscaleStatus
		err := workflow.ExecuteActivity(upsamplerOptions(ctx, min(max(t.PollInterval, time.Minute), remaining())),
			a.CheckUpscale, activities.CheckUpscaleInput{UpsamplerJobID: st.UpsamplerJobID}).Get(ctx, &next)
		switch {
		case temporal.IsCanceledError(err):
			return st, err
		case isType(err, activities.ErrTypeUpsamplerUnknown):
			return st, failed(jobs.ReasonUpsamplerFailed, err)
		case err != nil: // transient trouble past its retries: try again at the next poll
			workflow.GetLogger(ctx).Warn("Upsampler status check failed", "error", err)
		default:
			st = next
		}
	}
	if st.Status == upsampler.StatusFailed {
		return st, failed(jobs.ReasonUpsamplerFailed, errors.New("Upsampler failed: "+st.Error))
	}
	if st.ResultURL == "" {
		return st, failed(jobs.ReasonUpsamplerNoOutput, errors.New("Upsampler reported success without an output URL"))
	}
	return st, nil
}

// submission is a SubmitUpscale under way.
type submission struct {
	result workflow.Future
	n      int // its number, in its callback URL
	hints  int // callbacks received before it started
}

// submit sends the image to Upsampler. The first send, right after the
// payment was recorded, runs inline (a local activity, in the same
// workflow task: no task hop before Upsampler gets the image); later ones
// are regular activities. Both retry under the same policy and deadline.
func (w *job) submit(ctx workflow.Context) *submission {
	inline := w.submissions == 0
	w.submissions++
	in := activities.SubmitUpscaleInput{JobID: w.in.JobID, ImageURL: w.in.ImageURL,
		Factor: w.in.Resolution.Factor(), Attempt: w.state.Attempt, Submission: w.submissions}
	s := &submission{n: w.submissions, hints: w.hints}
	deadline := w.processBy.Sub(workflow.Now(ctx))
	if inline {
		s.result = workflow.ExecuteLocalActivity(upsamplerLocalOptions(ctx, deadline), a.SubmitUpscale, in)
	} else {
		s.result = workflow.ExecuteActivity(upsamplerOptions(ctx, deadline), a.SubmitUpscale, in)
	}
	return s
}

// storeResult keeps Upsampler's output before its URL expires, within what
// is left of the attempt's processing deadline, and completes the job: its
// download link expires DownloadTTL from now, and the customer is reminded
// ReminderLead before (if they have not downloaded the image by then).
func (w *job) storeResult(ctx workflow.Context, st activities.UpscaleStatus) (time.Time, error) {
	left := w.processBy.Sub(workflow.Now(ctx))
	if left <= 0 {
		return time.Time{}, failed(jobs.ReasonUpsamplerTimeout, fmt.Errorf("no stored result within %s", w.in.Timeouts.Processing))
	}
	f := w.in.Resolution.Factor()
	expires := workflow.Now(ctx).Add(w.in.Timeouts.DownloadTTL)
	w.storing = true
	err := workflow.ExecuteActivity(resultOptions(ctx, left), a.StoreResult,
		activities.StoreResultInput{
			JobID: w.in.JobID, ResultURL: st.ResultURL,
			ExpectedWidth: w.in.ImageWidth * f, ExpectedHeight: w.in.ImageHeight * f,
			UpsamplerJobID: st.UpsamplerJobID, CreditCost: st.CreditCost,
			ExpiresAt: expires, RemindAt: w.remindAt(ctx, expires),
		}).Get(ctx, nil)
	w.storing = false
	switch {
	case err == nil:
		return expires, nil
	case isType(err, activities.ErrTypeResultInvalid):
		return time.Time{}, failed(jobs.ReasonResultInvalid, err)
	case temporal.IsTimeoutError(err):
		return time.Time{}, failed(jobs.ReasonUpsamplerTimeout, err)
	}
	return time.Time{}, failed(jobs.ReasonResultFetchFailed, err)
}
