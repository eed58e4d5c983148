package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/jobs"
)

// notificationsVersion marks the workflow change that added emails and
// integration events: histories recorded before it replay without them.
const notificationsVersion = "notifications"

// detachedNotificationsVersion marks the change that runs notifications in
// a context the workflow's cancellation does not reach: before it, a
// cancelled job dropped the emails and events still being delivered.
const detachedNotificationsVersion = "notifications-survive-cancel"

// notify sends an email and/or an integration event about the job, in the
// background: the job does not wait for them, but the workflow does not end
// before they are delivered (see flush). Each activity is idempotent per
// job, message and attempt, so retries and replays deliver once.
func (w *job) notify(ctx workflow.Context, email, hook string) {
	if w.notifyV == workflow.DefaultVersion {
		return
	}
	base := ctx
	if w.notifyCtx != nil {
		base = w.notifyCtx
	}
	nctx := workflow.WithActivityOptions(base, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour, // then it is given up, and logged
		RetryPolicy:            backoff(time.Second, 10*time.Minute, activities.ErrTypeNotificationRejected),
	})
	if email != "" {
		w.pending = append(w.pending, workflow.ExecuteActivity(nctx, a.SendEmail, activities.SendEmailInput{
			JobID: w.in.JobID, Kind: email, Seq: w.resends, PageURL: w.pageURL(),
		}))
	}
	if hook != "" {
		w.pending = append(w.pending, workflow.ExecuteActivity(nctx, a.DeliverEvent, activities.DeliverEventInput{
			JobID: w.in.JobID, Type: hook, Attempt: w.state.Attempt, At: workflow.Now(ctx),
		}))
	}
}

// flush waits for the notifications still in flight.
func (w *job) flush(ctx workflow.Context) {
	for _, f := range w.pending {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("Notification not delivered", "error", err)
		}
	}
	w.pending = nil
}

// pageURL is the customer's status page as older workflows carried it:
// empty for workflows started now, whose emails get the link from the
// SendEmail activity (it derives the access token; Temporal never sees it).
func (w *job) pageURL() string { return w.in.SuccessURL }

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
