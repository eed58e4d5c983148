package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
)

// Activity options, by kind of call. Per-attempt timeouts are short and
// fixed; how long retries may go on is bounded by each call's
// ScheduleToClose, which the business deadlines in jobs.Timeouts cap.

// database writes: retried through outages, stopped by impossible transitions.
func dbOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy:            backoff(time.Second, time.Minute, activities.ErrTypeInvalidTransition),
	})
}

// dbLocalOptions are dbOptions for a local activity.
func dbLocalOptions(ctx workflow.Context) workflow.Context {
	return localOptions(ctx, dbOptions(ctx))
}

// Stripe calls: every write carries an idempotency key derived from the job.
func stripeOptions(ctx workflow.Context, deadline time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute, // the client tries 3 times with a 30s timeout
		ScheduleToCloseTimeout: deadline,
		RetryPolicy:            backoff(time.Second, 30*time.Second, activities.ErrTypeStripeRejected, activities.ErrTypeInvalidTransition),
	})
}

// Upsampler submission and status checks.
func upsamplerOptions(ctx workflow.Context, deadline time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    70 * time.Second, // the client's own timeout is 60s
		ScheduleToCloseTimeout: deadline,
		RetryPolicy: backoff(2*time.Second, time.Minute, activities.ErrTypeUpsamplerRejected,
			activities.ErrTypeUpsamplerUnknown, activities.ErrTypeInvalidTransition),
	})
}

// upsamplerLocalOptions are upsamplerOptions for a local activity.
func upsamplerLocalOptions(ctx workflow.Context, deadline time.Duration) workflow.Context {
	return localOptions(ctx, upsamplerOptions(ctx, deadline))
}

// localOptions gives ctx, for local activities, the options with set.
func localOptions(ctx, with workflow.Context) workflow.Context {
	o := workflow.GetActivityOptions(with)
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy,
	})
}

// Result download: large files, so a heartbeat shows progress.
func resultOptions(ctx workflow.Context, deadline time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		ScheduleToCloseTimeout: deadline,
		RetryPolicy:            backoff(2*time.Second, time.Minute, activities.ErrTypeResultInvalid, activities.ErrTypeResultGone),
	})
}

// Refunds: retried with backoff for up to retryEvery; a refusal ends the
// attempt at once, and the workflow tries again after retryEvery.
func refundOptions(ctx workflow.Context, retryEvery time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute, // the client tries 3 times with a 30s timeout
		ScheduleToCloseTimeout: retryEvery,
		RetryPolicy:            backoff(time.Second, 5*time.Minute, activities.ErrTypeStripeRejected, activities.ErrTypeInvalidTransition),
	})
}

// backoff retries with exponential backoff from first to at most ceiling,
// until the activity's ScheduleToClose; the listed error types stop it.
func backoff(first, ceiling time.Duration, nonRetryable ...string) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        first,
		BackoffCoefficient:     2,
		MaximumInterval:        ceiling,
		NonRetryableErrorTypes: nonRetryable,
	}
}
