package bench

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The baseline: a workflow with the job's shape (one update that waits for
// an activity, two signals, the same timers and the same number of
// activities) and none of its work. The job's throughput is compared with it
// in the same run, on the same Temporal server.
const (
	baselineQueue    = "hires-bench-baseline"
	baselineWorkflow = "BenchBaselineJob"
	parkedWorkflow   = "BenchParked"
	baselineUpdate   = "checkout"
	baselinePaid     = "paid"
	baselineDone     = "done"
)

// BaselineInput is the baseline's single input.
type BaselineInput struct {
	// Activities after payment (the update runs one more).
	Activities     int
	PaymentTimeout time.Duration
	PollInterval   time.Duration
	ReminderAfter  time.Duration // first timer after delivery
	ExpireAfter    time.Duration // second timer after delivery
}

// BaselineJob mirrors a paid job's life: update (one activity), wait for the
// payment signal against a timer, activities, a "submit" activity whose
// completion is signalled back, a poll timer racing that signal, the rest of
// the activities, then two timers to expiry.
func BaselineJob(ctx workflow.Context, in BaselineInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	var checkout string
	done := false
	if err := workflow.SetUpdateHandler(ctx, baselineUpdate, func(ctx workflow.Context) (string, error) {
		if err := workflow.Await(ctx, func() bool { return done }); err != nil {
			return "", err
		}
		return checkout, nil
	}); err != nil {
		return err
	}
	var a *baselineActivities
	if err := workflow.ExecuteActivity(ctx, a.Noop, 0).Get(ctx, &checkout); err != nil {
		return err
	}
	done = true

	if !awaitSignal(ctx, baselinePaid, in.PaymentTimeout) {
		return nil // abandoned
	}
	remaining := max(in.Activities, 2)
	for i := 1; i < remaining/2; i++ {
		if err := workflow.ExecuteActivity(ctx, a.Noop, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	info := workflow.GetInfo(ctx)
	if err := workflow.ExecuteActivity(ctx, a.Submit, info.WorkflowExecution.ID).Get(ctx, nil); err != nil {
		return err
	}
	for !awaitSignal(ctx, baselineDone, in.PollInterval) {
	}
	for i := remaining / 2; i < remaining-1; i++ {
		if err := workflow.ExecuteActivity(ctx, a.Noop, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	if err := workflow.Sleep(ctx, in.ReminderAfter); err != nil {
		return err
	}
	if err := workflow.Sleep(ctx, in.ExpireAfter); err != nil {
		return err
	}
	return workflow.ExecuteActivity(ctx, a.Noop, remaining).Get(ctx, nil)
}

// awaitSignal waits for one signal or the timer, whichever comes first.
func awaitSignal(ctx workflow.Context, name string, timeout time.Duration) bool {
	ch := workflow.GetSignalChannel(ctx, name)
	if ch.ReceiveAsync(nil) {
		return true
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	got := false
	workflow.NewSelector(ctx).
		AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); got = true }).
		AddFuture(workflow.NewTimer(tctx, timeout), func(workflow.Future) {}).
		Select(ctx)
	return got
}

// BenchParked is the bare workflow behind the round-trip baselines: started
// like a job, it waits for one signal (bounded by a timer) and ends.
func BenchParked(ctx workflow.Context, timeout time.Duration) error {
	awaitSignal(ctx, baselinePaid, timeout)
	return nil
}

// baselineActivities do nothing but what Temporal needs of an activity; Submit
// signals the workflow back, as Upsampler's callback does for a job.
type baselineActivities struct {
	temporal client.Client
}

func (a *baselineActivities) Noop(_ context.Context, step int) (string, error) {
	return fmt.Sprintf("step %d", step), nil
}

func (a *baselineActivities) Submit(ctx context.Context, workflowID string) error {
	if err := a.temporal.SignalWorkflow(ctx, workflowID, "", baselineDone, nil); err != nil {
		return fmt.Errorf("signal %s: %w", workflowID, err)
	}
	activity.GetLogger(ctx).Debug("baseline submitted")
	return nil
}

// newBaselineWorker runs the baseline workflows in this process.
func newBaselineWorker(c client.Client) sdkworker.Worker {
	w := sdkworker.New(c, baselineQueue, sdkworker.Options{ // as the job worker's
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflowWithOptions(BaselineJob, workflow.RegisterOptions{Name: baselineWorkflow})
	w.RegisterWorkflowWithOptions(BenchParked, workflow.RegisterOptions{Name: parkedWorkflow})
	w.RegisterActivity(&baselineActivities{temporal: c})
	return w
}
