package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// deliver mirrors the completed job (its link is on its way to the
// customer), sleeps until the link expires, then deletes the file. Admins
// can send the link again meanwhile (setDownload), which moves the expiry.
func (w *job) deliver(ctx workflow.Context, expires time.Time) error {
	w.state.DownloadExpiry = expires
	if err := w.setStatus(ctx, jobs.StatusCompleted); err != nil {
		return err
	}
	for {
		w.expiryMoved = false
		moved, err := workflow.AwaitWithOptions(ctx,
			workflow.AwaitOptions{Timeout: max(w.state.DownloadExpiry.Sub(workflow.Now(ctx)), 0), TimerOptions: workflow.TimerOptions{Summary: "download expiry"}},
			func() bool { return w.expiryMoved })
		if err != nil {
			return err
		}
		if !moved {
			break
		}
	}
	w.expiring = true // download updates are refused from here on
	return w.deleteDownload(ctx)
}

// remindAt is when the customer is reminded that a link expiring at
// expires is about to (ReminderLead before), or zero for no reminder.
func (w *job) remindAt(ctx workflow.Context, expires time.Time) time.Time {
	lead := w.in.Timeouts.ReminderLead
	if lead <= 0 || !workflow.Now(ctx).Before(expires.Add(-lead)) {
		return time.Time{}
	}
	return expires.Add(-lead)
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

// awaitStored lets a download update accepted while the result was stored
// wait for the outcome (StoreResult's own deadline bounds the wait), then
// judges it as one that arrived afterwards.
func (w *job) awaitStored(ctx workflow.Context, r jobs.DownloadRequest) error {
	if err := workflow.Await(ctx, func() bool { return !w.storing }); err != nil {
		return err
	}
	return w.validateDownloadUpdate(ctx, r)
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
		Seq: w.resends + 1, RemindAt: w.remindAt(ctx, expires),
	}).Get(ctx, nil)
	if isType(err, activities.ErrTypeInvalidTransition) {
		return jobs.DownloadInfo{}, errNotDownloadable // the file was deleted meanwhile
	}
	if err != nil {
		return jobs.DownloadInfo{}, err
	}
	w.state.DownloadExpiry, w.expiryMoved = expires, true
	w.resends++
	return jobs.DownloadInfo{ExpiresAt: expires}, nil
}

// validateDownloadUpdate accepts the download updates only while the job
// is delivered and its link has not reached its expiry: one racing the
// expiry would email a link to a file being deleted. While the result is
// stored it accepts them too: the job record already says completed once
// StoreResult commits, before the workflow hears of it, and an admin acting
// on that must not be refused; the handler waits for the result and checks
// again (awaitStored).
func (w *job) validateDownloadUpdate(ctx workflow.Context, _ jobs.DownloadRequest) error {
	if w.storing {
		return nil
	}
	if w.state.Status != jobs.StatusCompleted || w.cleanedUp || w.expiring ||
		!workflow.Now(ctx).Before(w.state.DownloadExpiry) {
		return errNotDownloadable
	}
	if limit := w.in.Limits.MaxResends; limit > 0 && w.resends >= limit {
		return errResendLimit
	}
	return nil
}
