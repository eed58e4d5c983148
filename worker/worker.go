// Package worker runs the job workflow and its activities on the task queue.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/internal/config"
	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/mail"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/temporalclient"
	"hires/internal/upsampler"
	"hires/internal/urlguard"
	"hires/workflows"
)

// New registers the job workflow and acts on a worker for the job task queue.
func New(c client.Client, acts *activities.Activities) sdkworker.Worker {
	w := sdkworker.New(c, jobs.TaskQueue, sdkworker.Options{})
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	return w
}

// WorkflowRegistry is a worker or a replayer.
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// RegisterWorkflows registers the workflows under their contract names.
func RegisterWorkflows(r WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.ImageJob, workflow.RegisterOptions{Name: jobs.WorkflowName})
	r.RegisterWorkflowWithOptions(workflows.LatePaymentRefund, workflow.RegisterOptions{Name: jobs.LatePaymentWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: jobs.ReconcileWorkflow})
}

// NewActivities builds the activities' dependencies from configuration.
func NewActivities(cfg config.Config, st *store.Store) (*activities.Activities, error) {
	pay, err := payments.New(cfg.StripeSecretKey, cfg.StripeAPIBase)
	if err != nil {
		return nil, err
	}
	files, err := storage.NewLocal(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	results, err := urlguard.New(cfg.UpsamplerResultHosts)
	if err != nil {
		return nil, fmt.Errorf("UPSAMPLER_RESULT_HOSTS: %w", err)
	}
	sender, err := events.NewSender(cfg.EventWebhookURLs, cfg.EventWebhookSecret, nil)
	if err != nil {
		return nil, fmt.Errorf("EVENT_WEBHOOK_URLS: %w", err)
	}
	mailer, err := mail.New(mail.Config{
		Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
		TLS: cfg.SMTPTLS, From: cfg.MailFrom, AdminCopy: cfg.AdminEmail,
	})
	if err != nil && !errors.Is(err, mail.ErrDisabled) {
		return nil, fmt.Errorf("SMTP settings: %w", err)
	}
	return &activities.Activities{
		Events:         sender,
		Mailer:         mailer,
		SiteName:       cfg.SiteName,
		Store:          st,
		Payments:       pay,
		Upsampler:      upsampler.New(cfg.UpsamplerBaseURL, cfg.UpsamplerAPIKey, &http.Client{Timeout: 60 * time.Second}),
		Files:          files,
		ResultClient:   results.HTTPClient(10 * time.Minute),
		MaxResultBytes: cfg.MaxResultBytes,
		PublicBaseURL:  cfg.PublicBaseURL,
	}, nil
}

// Run applies migrations, connects, and runs the worker until ctx ends.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	st, err := store.OpenMigrated(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := temporalclient.Dial(cfg.TemporalAddress, cfg.TemporalNamespace, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	acts, err := NewActivities(cfg, st)
	if err != nil {
		return err
	}
	acts.Temporal = c
	if err := EnsureReconcileSchedule(ctx, c, cfg.ReconcileInterval, cfg.ReconcileGrace); err != nil {
		return err
	}
	w := New(c, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	logger.Info("worker started", "task_queue", jobs.TaskQueue, "temporal", cfg.TemporalAddress)
	<-ctx.Done()
	w.Stop() // stops polling and waits for running activities
	return nil
}

// EnsureReconcileSchedule creates the Temporal Schedule that runs the
// reconciliation sweep every interval, or updates its interval. Overlapping
// runs are skipped.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, interval, grace time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:        "reconcile",
		Workflow:  jobs.ReconcileWorkflow,
		Args:      []any{jobs.ReconcileInput{Grace: grace, Batch: 200}},
		TaskQueue: jobs.TaskQueue,
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: jobs.ReconcileSchedule, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, jobs.ReconcileSchedule).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				in.Description.Schedule.Spec = &spec
				in.Description.Schedule.Action = action
				return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("worker: reconcile schedule: %w", err)
	}
	return nil
}
