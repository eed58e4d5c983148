// Package worker runs the job workflow and its activities on the task queue.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
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
	"hires/internal/metrics"
	"hires/internal/notify"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/temporalclient"
	"hires/internal/upsampler"
	"hires/internal/urlguard"
	"hires/workflows"
)

// New registers the job workflow and acts on a worker for the job task queue.
func New(c client.Client, acts *activities.Activities, t Tuning) sdkworker.Worker {
	if t.StickyCacheSize > 0 {
		sdkworker.SetStickyWorkflowCacheSize(t.StickyCacheSize) // process-wide, before the first worker starts
	}
	w := sdkworker.New(c, jobs.TaskQueue, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     t.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: t.MaxConcurrentWorkflowTasks,
		// A burst of payments is a burst of tasks: two fixed pollers per
		// kind (the SDK's default) queue them; autoscaled pollers follow it.
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		// On SIGTERM the worker stops polling and gives running activities
		// this long to finish before they are cancelled.
		WorkerStopTimeout: t.StopTimeout,
	})
	RegisterWorkflows(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	return w
}

// Tuning is the worker's capacity, from configuration (0 keeps the SDK's default).
type Tuning struct {
	MaxConcurrentActivities    int
	MaxConcurrentWorkflowTasks int
	StickyCacheSize            int
	StopTimeout                time.Duration
}

// TuningFrom reads the worker's capacity from the configuration.
func TuningFrom(cfg config.Config) Tuning {
	return Tuning{
		MaxConcurrentActivities:    cfg.WorkerMaxActivities,
		MaxConcurrentWorkflowTasks: cfg.WorkerMaxWorkflowTasks,
		StickyCacheSize:            cfg.WorkerStickyCacheSize,
		StopTimeout:                cfg.WorkerStopTimeout,
	}
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
	r.RegisterWorkflowWithOptions(workflows.OwedRefund, workflow.RegisterOptions{Name: jobs.OwedRefundWorkflow})
}

// NewActivities builds the activities' dependencies from configuration.
func NewActivities(cfg config.Config, st *store.Store) (*activities.Activities, error) {
	pay, err := payments.New(cfg.StripeSecretKey, cfg.StripeAPIBase)
	if err != nil {
		return nil, err
	}
	files, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	results, err := urlguard.New(cfg.UpsamplerResultHosts)
	if err != nil {
		return nil, fmt.Errorf("UPSAMPLER_RESULT_HOSTS: %w", err)
	}
	return &activities.Activities{
		Store:          st,
		Payments:       pay,
		Upsampler:      upsampler.New(cfg.UpsamplerBaseURL, cfg.UpsamplerAPIKey, &http.Client{Timeout: 60 * time.Second}),
		Files:          files,
		ResultClient:   results.HTTPClient(10 * time.Minute),
		MaxResultBytes: cfg.MaxResultBytes,
		PublicBaseURL:  cfg.PublicBaseURL,
	}, nil
}

// NewDispatcher builds the outbox's dispatcher from configuration.
func NewDispatcher(cfg config.Config, st *store.Store, logger *slog.Logger, m *metrics.Business) (*notify.Dispatcher, error) {
	mailer, err := mail.New(mail.Config{
		Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
		TLS: cfg.SMTPTLS, From: cfg.MailFrom, AdminCopy: cfg.AdminEmail,
	})
	if err != nil && !errors.Is(err, mail.ErrDisabled) {
		return nil, fmt.Errorf("SMTP settings: %w", err)
	}
	return &notify.Dispatcher{
		Store: st, Wake: st.ListenOutbox(), Mailer: mailer,
		// Endpoints and their secrets are read from the database per event.
		Events:        events.NewSender(nil),
		PublicBaseURL: cfg.PublicBaseURL, AccessSecret: []byte(cfg.AccessTokenSecret), SiteName: cfg.SiteName,
		Poll: cfg.NotifyPollInterval, Batch: 100, Parallel: 16, Lease: 2 * time.Minute,
		GiveUpAfter: cfg.NotifyGiveUpAfter, FirstRetry: time.Second, MaxRetry: cfg.NotifyMaxRetryInterval,
		Logger: logger, Failed: m.NotificationGivenUp,
	}, nil
}

// Run applies migrations, connects, and runs the worker until ctx ends.
// Its HTTP server on cfg.WorkerHTTPAddr (/metrics, /healthz, /readyz)
// starts first, so start-up shows as not ready, and stops last.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	reg := metrics.New(logger)
	defer reg.Close()
	ready := metrics.NewReadiness(logger)
	migrated, polling := ready.Flag("migrations"), ready.Flag("worker")
	srv, err := startHTTP(cfg.WorkerHTTPAddr, reg, ready, logger)
	if err != nil {
		return err
	}
	defer srv.shutdown()

	st, err := store.OpenMigrated(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	migrated.Set(true)
	ready.Check("database", st.Ping)
	// The worker inherits the client's tracing interceptor; closing runs
	// after the worker stops, and flushes the last spans.
	c, closeTemporal, err := temporalclient.Connect(ctx, cfg, logger, reg.Temporal())
	if err != nil {
		return err
	}
	defer closeTemporal()
	ready.Check("temporal", metrics.TemporalCheck(c))
	acts, err := NewActivities(cfg, st)
	if err != nil {
		return err
	}
	acts.Temporal = c
	acts.Metrics = reg.Business()
	sweep := jobs.ReconcileInput{
		Grace: cfg.ReconcileGrace, Batch: 200,
		RefundRetry: cfg.RefundRetryInterval, RefundAttention: cfg.RefundAttentionAfter,
	}
	// The sweep's schedule follows the configuration. Temporal can refuse
	// the update for a while (its scheduler recovering from an outage):
	// jobs must not wait for it, so the worker starts and keeps trying.
	go keepTrying(ctx, logger, "reconcile schedule", time.Second, time.Minute, func(ctx context.Context) error {
		return EnsureReconcileSchedule(ctx, c, cfg.ReconcileInterval, sweep)
	})
	dispatcher, err := NewDispatcher(cfg, st, logger, reg.Business())
	if err != nil {
		return err
	}
	w := New(c, acts, TuningFrom(cfg))
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	// The outbox's emails and events go out from every worker; each message
	// is taken by one of them at a time.
	dctx, stopDispatcher := context.WithCancel(context.WithoutCancel(ctx))
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		dispatcher.Run(dctx)
	}()
	polling.Set(true)
	logger.Info("worker started", "task_queue", jobs.TaskQueue, "temporal", cfg.TemporalAddress)
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srv.errc:
		runErr = fmt.Errorf("worker: http server: %w", err)
	}
	polling.Set(false) // not ready while draining
	w.Stop()           // stops polling and waits for running activities
	stopDispatcher()   // messages being sent are finished or retried later
	<-dispatched
	srv.shutdown()
	return runErr
}

// httpServer is the worker's own HTTP server.
type httpServer struct {
	srv  *http.Server
	errc chan error
	once sync.Once
}

// startHTTP serves /metrics, /healthz (alive) and /readyz on addr.
func startHTTP(addr string, reg *metrics.Registry, ready *metrics.Readiness, logger *slog.Logger) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: listen on %s (WORKER_HTTP_ADDR): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", metrics.Healthz)
	mux.Handle("GET /readyz", ready)
	s := &httpServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		errc: make(chan error, 1),
	}
	logger.Info("worker http listening", "addr", ln.Addr().String())
	go func() {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
	return s, nil
}

// shutdown stops the server gracefully, once.
func (s *httpServer) shutdown() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
	})
}

// EnsureReconcileSchedule creates the Temporal Schedule that runs the
// reconciliation sweep every interval, or updates its interval. Overlapping
// runs are skipped.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, interval time.Duration, in jobs.ReconcileInput) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:        "reconcile",
		Workflow:  jobs.ReconcileWorkflow,
		Args:      []any{in},
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
