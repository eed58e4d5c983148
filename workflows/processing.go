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

// process upscales the paid image and delivers it. A business failure
// comes back as its reason and cause; an error with no reason means the
// workflow itself cannot go on (cancelled, or the record refused a change).
func (w *job) process(ctx workflow.Context) (reason string, err error) {
	st, reason, err := w.upscale(ctx)
	if err != nil {
		return w.classify(ctx, reason, err)
	}
	res, reason, err := w.storeResult(ctx, st)
	if err != nil {
		return w.classify(ctx, reason, err)
	}
	expires := workflow.Now(ctx).Add(w.in.Timeouts.DownloadTTL)
	err = workflow.ExecuteActivity(dbOptions(ctx), a.CompleteJob, activities.CompleteJobInput{
		JobID: w.in.JobID, UpsamplerJobID: st.UpsamplerJobID, CreditCost: st.CreditCost,
		Result: res, ExpiresAt: expires,
	}).Get(ctx, nil)
	if err != nil {
		return "", err
	}
	w.state.DownloadExpiry = expires
	if err := w.setStatus(ctx, jobs.StatusCompleted); err != nil {
		return "", err
	}
	w.notify(ctx, jobs.EmailImageReady, jobs.HookJobCompleted)
	return "", nil
}

// classify keeps cancellation a workflow-level error, not a job failure.
func (w *job) classify(ctx workflow.Context, reason string, err error) (string, error) {
	if ctx.Err() != nil || temporal.IsCanceledError(err) || reason == "" {
		return "", err
	}
	return reason, err
}

// upscale submits the image and waits for Upsampler's verdict, woken by a
// callback or by the poll interval, within the processing deadline. On
// failure it returns the failure reason with the error.
func (w *job) upscale(ctx workflow.Context) (activities.UpscaleStatus, string, error) {
	t := w.in.Timeouts
	w.processBy = workflow.Now(ctx).Add(t.Processing)
	remaining := func() time.Duration { return w.processBy.Sub(workflow.Now(ctx)) }

	sub := w.submission // started with the payment, on the first attempt
	w.submission = nil
	if sub == nil {
		sub = w.submit(ctx, false)
	}
	// A callback can beat the submission's own answer (a fast Upsampler):
	// one that arrives after the submission started must wake the first check.
	hintsBefore := sub.hints
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
			return st, jobs.ReasonUpsamplerTimeout, err
		}
		n := sub.n
		named, aerr := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: wait, TimerOptions: workflow.TimerOptions{Summary: "lost submission's callback"}},
			func() bool { return w.calledBack[n] != "" })
		if aerr != nil {
			return st, "", aerr
		}
		if !named {
			// The callback may have come in the very task the timer fired
			// in: let the signal handlers see it before deciding.
			if aerr := yield(ctx); aerr != nil {
				return st, "", aerr
			}
			named = w.calledBack[n] != ""
		}
		if named {
			// Confirmed with the status endpoint in the loop below, at once.
			st, err = activities.UpscaleStatus{UpsamplerJobID: w.calledBack[n]}, nil
			break
		}
		workflow.GetLogger(ctx).Warn("No callback for a submission whose answer was lost; sending the image again", "submission", n)
		sub = w.submit(ctx, false)
		hintsBefore = sub.hints
		err = sub.result.Get(ctx, &st)
	}
	if err != nil {
		if isType(err, activities.ErrTypeUpsamplerRejected) {
			return st, jobs.ReasonUpsamplerRejected, err
		}
		return st, jobs.ReasonUpsamplerSubmitErr, err
	}
	w.state.UpsamplerJobID = st.UpsamplerJobID
	err = workflow.ExecuteActivity(dbOptions(ctx), a.MarkProcessing,
		activities.MarkProcessingInput{JobID: w.in.JobID, UpsamplerJobID: st.UpsamplerJobID}).Get(ctx, nil)
	if err == nil {
		err = w.setStatus(ctx, jobs.StatusProcessing)
	}
	if err != nil {
		return st, "", err
	}

	seen := w.hints
	// From version 1 a callback that came early wakes the first check at
	// once, with no poll timer started for nothing.
	early := workflow.GetVersion(ctx, "early-callback", workflow.DefaultVersion, 1) >= 1
	if early {
		seen = hintsBefore
	}
	for st.Status != upsampler.StatusSuccess && st.Status != upsampler.StatusFailed {
		left := remaining()
		if left <= 0 {
			return st, jobs.ReasonUpsamplerTimeout, fmt.Errorf("no result from Upsampler within %s", t.Processing)
		}
		if woken := early && w.hints != seen; !woken {
			if _, err := workflow.AwaitWithOptions(ctx,
				workflow.AwaitOptions{Timeout: min(t.PollInterval, left), TimerOptions: workflow.TimerOptions{Summary: "poll Upsampler"}},
				func() bool { return w.hints != seen }); err != nil {
				return st, "", err
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
			return st, "", err
		case isType(err, activities.ErrTypeUpsamplerUnknown):
			return st, jobs.ReasonUpsamplerFailed, err
		case err != nil: // transient trouble past its retries: try again at the next poll
			workflow.GetLogger(ctx).Warn("Upsampler status check failed", "error", err)
		default:
			st = next
		}
	}
	if st.Status == upsampler.StatusFailed {
		return st, jobs.ReasonUpsamplerFailed, errors.New("Upsampler failed: " + st.Error)
	}
	if st.ResultURL == "" {
		return st, jobs.ReasonUpsamplerNoOutput, errors.New("Upsampler reported success without an output URL")
	}
	return st, "", nil
}

// submission is a SubmitUpscale under way.
type submission struct {
	result workflow.Future
	n      int // its number, in its callback URL
	hints  int // callbacks received before it started
}

// submit sends the image to Upsampler, inline (a local activity) or as a
// regular activity; both retry under the same policy and deadline.
func (w *job) submit(ctx workflow.Context, inline bool) *submission {
	w.submissions++
	in := activities.SubmitUpscaleInput{JobID: w.in.JobID, ImageURL: w.in.ImageURL,
		Factor: w.in.Resolution.Factor(), Attempt: w.state.Attempt, Submission: w.submissions}
	s := &submission{n: w.submissions, hints: w.hints}
	if inline {
		s.result = workflow.ExecuteLocalActivity(upsamplerLocalOptions(ctx, w.in.Timeouts.Processing), a.SubmitUpscale, in)
	} else {
		s.result = workflow.ExecuteActivity(upsamplerOptions(ctx, w.in.Timeouts.Processing), a.SubmitUpscale, in)
	}
	return s
}

// storeResult keeps Upsampler's output before its URL expires, within what
// is left of the attempt's processing deadline.
func (w *job) storeResult(ctx workflow.Context, st activities.UpscaleStatus) (activities.StoredResult, string, error) {
	f := w.in.Resolution.Factor()
	var res activities.StoredResult
	left := w.processBy.Sub(workflow.Now(ctx))
	if left <= 0 {
		return res, jobs.ReasonUpsamplerTimeout, fmt.Errorf("no stored result within %s", w.in.Timeouts.Processing)
	}
	err := workflow.ExecuteActivity(resultOptions(ctx, left), a.StoreResult,
		activities.StoreResultInput{
			JobID: w.in.JobID, ResultURL: st.ResultURL,
			ExpectedWidth: w.in.ImageWidth * f, ExpectedHeight: w.in.ImageHeight * f,
		}).Get(ctx, &res)
	if err != nil {
		if isType(err, activities.ErrTypeResultInvalid) {
			return res, jobs.ReasonResultInvalid, err
		}
		if temporal.IsTimeoutError(err) {
			return res, jobs.ReasonUpsamplerTimeout, err
		}
		return res, jobs.ReasonResultFetchFailed, err
	}
	return res, "", nil
}

// expireDownload sleeps until the link expires, then deletes the file.
func (w *job) expireDownload(ctx workflow.Context) error {
	var err error
	if w.notifyV == workflow.DefaultVersion {
		err = workflow.Sleep(ctx, w.state.DownloadExpiry.Sub(workflow.Now(ctx)))
	} else {
		err = w.awaitDownloadExpiry(ctx)
	}
	if err != nil {
		return err
	}
	w.expiring = true // download updates are refused from here on
	return w.deleteDownload(ctx)
}

func (w *job) deleteDownload(ctx workflow.Context) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.ExpireDownload,
		activities.ExpireDownloadInput{JobID: w.in.JobID}).Get(ctx, nil)
	if err == nil {
		w.cleanedUp = true
	}
	return err
}
