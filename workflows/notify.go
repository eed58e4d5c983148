package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"hires/activities"
)

// notify sends an email and/or an integration event about the job, in the
// background: the job does not wait for them, but the workflow does not end
// before they are delivered (see flush). They run in a context an admin's
// cancellation does not reach. Each activity is idempotent per job,
// message and attempt, so retries and replays deliver once.
func (w *job) notify(ctx workflow.Context, email, hook string) {
	nctx := workflow.WithActivityOptions(w.notifyCtx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour, // then it is given up, and logged
		RetryPolicy:            backoff(time.Second, 10*time.Minute, activities.ErrTypeNotificationRejected),
	})
	if email != "" {
		w.pending = append(w.pending, workflow.ExecuteActivity(nctx, a.SendEmail, activities.SendEmailInput{
			JobID: w.in.JobID, Kind: email, Seq: w.resends,
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
