package workflows

import (
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// deliver completes the job with its download link, emails it, sleeps
// until the link expires (reminding the customer before), then deletes
// the file. Admins can send the link again meanwhile (setDownload).
func (w *job) deliver(ctx workflow.Context, u upscaled) error {
	expires := workflow.Now(ctx).Add(w.in.Timeouts.DownloadTTL)
	err := workflow.ExecuteActivity(dbOptions(ctx), a.CompleteJob, activities.CompleteJobInput{
		JobID: w.in.JobID, UpsamplerJobID: u.status.UpsamplerJobID, CreditCost: u.status.CreditCost,
		Result: u.result, ExpiresAt: expires,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.state.DownloadExpiry = expires
	if err := w.setStatus(ctx, jobs.StatusCompleted); err != nil {
		return err
	}
	w.notify(ctx, jobs.EmailImageReady, jobs.HookJobCompleted)
	if err := w.awaitDownloadExpiry(ctx); err != nil {
		return err
	}
	w.expiring = true // download updates are refused from here on
	return w.deleteDownload(ctx)
}

// awaitDownloadExpiry sleeps until the link expires, reminding the customer
// ReminderLead before (if they have not downloaded yet). Admin updates can
// move the expiry; the timers follow.
func (w *job) awaitDownloadExpiry(ctx workflow.Context) error {
	lead := w.in.Timeouts.ReminderLead
	for {
		expiry := w.state.DownloadExpiry
		wake, reminding := expiry, false
		if !w.reminded && lead > 0 && workflow.Now(ctx).Before(expiry.Add(-lead)) {
			wake, reminding = expiry.Add(-lead), true
		}
		w.expiryMoved = false
		moved, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: max(wake.Sub(workflow.Now(ctx)), 0), TimerOptions: workflow.TimerOptions{Summary: "download expiry"}},
			func() bool { return w.expiryMoved })
		switch {
		case err != nil:
			return err
		case moved:
			continue
		case reminding:
			w.reminded = true
			w.notify(ctx, jobs.EmailExpiringSoon, "")
			continue
		}
		return nil
	}
}

// deleteDownload deletes the result file and marks the link expired.
func (w *job) deleteDownload(ctx workflow.Context) error {
	err := workflow.ExecuteActivity(dbOptions(ctx), a.ExpireDownload,
		activities.ExpireDownloadInput{JobID: w.in.JobID}).Get(ctx, nil)
	if err == nil {
		w.cleanedUp = true
	}
	return err
}

// setDownload is the handler of both download updates: a new expiry (and
// token), recorded, the timers moved, the link emailed again.
func (w *job) setDownload(ctx workflow.Context, newToken bool, r jobs.DownloadRequest) (jobs.DownloadInfo, error) {
	expires := workflow.Now(ctx).Add(w.in.Timeouts.DownloadTTL)
	cause := "admin_resend"
	if newToken {
		cause = "admin_new_token"
	}
	if r.RequestedBy != "" {
		cause += ":" + r.RequestedBy
	}
	err := workflow.ExecuteActivity(dbOptions(ctx), a.SetDownload, activities.SetDownloadInput{
		JobID: w.in.JobID, ExpiresAt: expires, NewToken: newToken, Cause: cause,
	}).Get(ctx, nil)
	if isType(err, activities.ErrTypeInvalidTransition) {
		return jobs.DownloadInfo{}, errNotDownloadable // the file was deleted meanwhile
	}
	if err != nil {
		return jobs.DownloadInfo{}, err
	}
	w.state.DownloadExpiry, w.expiryMoved, w.reminded = expires, true, false
	w.resends++
	w.notify(ctx, jobs.EmailImageReady, "")
	return jobs.DownloadInfo{ExpiresAt: expires}, nil
}

// validateDownloadUpdate accepts the download updates only while the job
// is delivered and its link has not reached its expiry: one racing the
// expiry would email a link to a file being deleted.
func (w *job) validateDownloadUpdate(ctx workflow.Context, _ jobs.DownloadRequest) error {
	if w.state.Status != jobs.StatusCompleted || w.cleanedUp || w.expiring ||
		!workflow.Now(ctx).Before(w.state.DownloadExpiry) {
		return errNotDownloadable
	}
	if limit := w.in.Limits.MaxResends; limit > 0 && w.resends >= limit {
		return errResendLimit
	}
	return nil
}
