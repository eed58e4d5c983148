package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"hires/api"
	"hires/dev/devstack"
	"hires/dev/localstack"
	"hires/dev/samplesite"
	"hires/dev/stripetest"
	"hires/dev/upsamplersim"
	"hires/internal/adminclient"
	"hires/internal/config"
	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/temporalclient"
)

// Settings are the service's durations in a run: short, so that hundreds
// of jobs live their whole lives in a few minutes.
type Settings struct {
	// PaymentTimeout is long enough for the parked jobs to be awaiting
	// payment through the whole traffic, terminations included.
	PaymentTimeout    time.Duration
	ProcessingTimeout time.Duration
	PollInterval      time.Duration
	LostAnswerWait    time.Duration // UPSAMPLER_LOST_ANSWER_WAIT
	DownloadTTL       time.Duration // longer than the run: links are checked at the end
	ReminderLead      time.Duration
	RetryWindow       time.Duration
	RefundRetry       time.Duration
	RefundAttention   time.Duration // REFUND_ATTENTION_AFTER
	AsyncPayment      time.Duration // ASYNC_PAYMENT_TIMEOUT
	ReconcileInterval time.Duration
	ReconcileGrace    time.Duration
}

// DefaultSettings are the durations `make chaos` runs with.
var DefaultSettings = Settings{
	PaymentTimeout:    4 * time.Minute,
	ProcessingTimeout: 2 * time.Minute,
	PollInterval:      2 * time.Second,
	// Between the stand-in's usual 1s (a lost answer is recovered by the
	// callback) and its slow 8s (the image is sent again).
	LostAnswerWait:    4 * time.Second,
	DownloadTTL:       30 * time.Minute,
	ReminderLead:      30*time.Minute - 10*time.Second, // the reminder goes out 10s after delivery
	RetryWindow:       30 * time.Minute,
	RefundRetry:       15 * time.Second, // also the deadline of one refund attempt
	RefundAttention:   90 * time.Second, // at most 7 attempts
	AsyncPayment:      time.Minute,
	ReconcileInterval: 10 * time.Second,
	ReconcileGrace:    30 * time.Second,
}

// stack is every component of a run. The API and the worker are processes
// of the `hires` binary; PostgreSQL and Temporal can be restarted in place.
type stack struct {
	dir     string
	logs    *os.File // components' output
	appLogs *os.File // the API's and the worker's JSON logs
	pg      *devstack.Postgres
	mode    Mode
	// temporal is the dev server, or cluster Temporal's processes on pg.
	temporal    *devstack.Temporal
	cluster     *devstack.TemporalCluster
	temporalAt  string // the frontend's host:port
	namespace   string
	stripe      *stripetest.Recorder
	standIn     *upsamplersim.Server
	standInAddr string
	mailpit     *devstack.Mailpit
	hooks       *receiver
	env         map[string]string
	apiURL      string
	siteKey     string // the selling site's, made once the API is up
	api         *service
	worker      *service
	// tc is the admins' Temporal client: terminations, cancellations, and
	// the histories read at the end.
	tc client.Client

	mu    sync.Mutex // guards stops: components start in parallel
	stops []func()
}

// CheckPrerequisites reports, before anything starts, what the mode
// needs and is missing.
func CheckPrerequisites(mode Mode) error {
	var errs []error
	if _, _, err := devstack.PostgresBinaries(); err != nil {
		errs = append(errs, err)
	}
	for _, tool := range prerequisiteTools(mode) {
		if _, err := devstack.ToolPath(tool); err != nil {
			errs = append(errs, err)
		}
	}
	if mode == ModeCluster {
		if _, err := devstack.ToolDir("temporal-schema"); err != nil {
			errs = append(errs, fmt.Errorf("%w (make cluster-tools)", err))
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		errs = append(errs, fmt.Errorf("the go command is needed to build hires: %w", err))
	}
	return errors.Join(errs...)
}

// prerequisiteTools are the pinned tools a mode runs.
func prerequisiteTools(mode Mode) []string {
	if mode == ModeCluster {
		return []string{"temporal-server", "temporal-sql-tool", "stripe-mock", "mailpit"}
	}
	return []string{"temporal", "stripe-mock", "mailpit"}
}

// startStack brings every component up in dir, the slow ones in parallel.
func startStack(ctx context.Context, dir string, mode Mode, st Settings, b upsamplersim.Behavior, seed int64) (_ *stack, err error) {
	s := &stack{dir: dir, mode: mode}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.logs, err = os.Create(filepath.Join(dir, "components.log")); err != nil {
		return nil, err
	}
	if s.appLogs, err = os.Create(filepath.Join(dir, "hires.log")); err != nil {
		return nil, err
	}
	s.onStop(func() { s.logs.Close(); s.appLogs.Close() })

	var bin string
	err = parallel(
		func() (err error) { bin, err = buildHires(dir); return err },
		func() error {
			if mode != ModeCluster {
				return s.startPostgres(ctx)
			}
			// The cluster keeps its databases on the run's PostgreSQL.
			if err := s.startPostgres(ctx); err != nil {
				return err
			}
			return s.startTemporal(ctx)
		},
		func() error {
			if mode == ModeCluster {
				return nil
			}
			return s.startTemporal(ctx)
		},
		func() error { return s.startStripe(ctx) },
		func() error { return s.startMailpit(ctx) },
	)
	if err != nil {
		return nil, err
	}
	s.hooks = newReceiver(seed, 0.3)
	s.onStop(s.hooks.close)
	samples, err := s.serve(samplesite.Handler())
	if err != nil {
		return nil, err
	}
	if err := s.startStandIn(b); err != nil {
		return nil, err
	}
	if err := s.configure(st, samples); err != nil {
		return nil, err
	}
	if err := s.startServices(ctx, bin); err != nil {
		return nil, err
	}
	return s, s.registerReceiver(ctx)
}

// registerReceiver makes the run's receiver an endpoint of every event
// type, through the admin API as an operator would, and hands it the secret.
func (s *stack) registerReceiver(ctx context.Context) error {
	c := adminclient.Client{BaseURL: s.apiURL, Token: s.adminToken()}
	types := make([]string, len(events.Types))
	for i, t := range events.Types {
		types[i] = string(t)
	}
	ep, err := c.Create(ctx, s.hooks.srv.URL+"/hooks", "chaos receiver", types)
	if err != nil {
		return fmt.Errorf("register the event receiver: %w", err)
	}
	return s.hooks.setSecret(ep.Secret)
}

// parallel runs fs at once and joins their errors.
func parallel(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// buildHires compiles the service once; every API and worker process of
// the run is this binary.
func buildHires(dir string) (string, error) {
	bin := filepath.Join(dir, "hires")
	out, err := exec.Command("go", "build", "-o", bin, "hires/cmd/hires").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build hires (run from the repository): %v: %s", err, out)
	}
	return bin, nil
}

func (s *stack) startPostgres(ctx context.Context) error {
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Output: s.logs})
	if err != nil {
		return err
	}
	s.pg = pg
	s.onStop(func() { _ = pg.Stop() })
	return nil
}

// startTemporal starts the mode's Temporal: the dev server on its own
// SQLite file, or the four roles on the run's PostgreSQL (started first).
func (s *stack) startTemporal(ctx context.Context) error {
	if s.mode == ModeCluster {
		c, err := devstack.StartTemporalCluster(ctx, devstack.TemporalClusterOptions{
			PostgresPort: s.pg.Port, UIPort: -1, SearchAttributes: jobs.SearchAttributes,
			DynamicConfig: devstack.OnePartition, Dir: filepath.Join(s.dir, "temporal"), Output: s.logs,
		})
		if err != nil {
			return err
		}
		s.cluster, s.temporalAt, s.namespace = c, c.Address, c.Namespace
		s.onStop(func() { _ = c.Stop() })
	} else {
		t, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
			UIPort: -1, DBFile: filepath.Join(s.dir, "temporal.db"),
			SearchAttributes: jobs.SearchAttributes, Output: s.logs,
			DynamicConfig: devstack.OnePartition,
		})
		if err != nil {
			return err
		}
		s.temporal, s.temporalAt, s.namespace = t, t.Address, t.Namespace
		s.onStop(func() { _ = t.Stop() })
	}
	c, err := temporalclient.Dial(s.temporalAt, s.namespace, slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	s.tc = c
	s.onStop(c.Close)
	return nil
}

func (s *stack) startStripe(ctx context.Context) error {
	sm, err := devstack.StartStripeMock(ctx, devstack.StripeMockOptions{Output: s.logs})
	if err != nil {
		return err
	}
	s.onStop(func() { _ = sm.Stop() })
	s.stripe = stripetest.NewRecorder(sm.URL)
	s.stripe.Start()
	s.onStop(s.stripe.Close)
	return nil
}

func (s *stack) startMailpit(ctx context.Context) error {
	// Keep every message: the checks count them all.
	mp, err := devstack.StartMailpit(ctx, devstack.MailpitOptions{MaxMessages: -1, Output: s.logs})
	if err != nil {
		return err
	}
	s.mailpit = mp
	s.onStop(func() { _ = mp.Stop() })
	return nil
}

// startStandIn serves the Upsampler stand-in with the run's behaviour.
func (s *stack) startStandIn(b upsamplersim.Behavior) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("stand-in: %w", err)
	}
	s.standInAddr = ln.Addr().String()
	base := "http://" + s.standInAddr
	s.standIn = upsamplersim.New(upsamplersim.Options{
		APIKey: localstack.LocalUpsamplerAPIKey, PublicURL: base, ProcessingDelay: b.ProcessingDelay,
		MaxOutputPixels: 256_000_000,
	})
	if err := s.standIn.SetBehavior(b); err != nil {
		s.standIn.Close()
		return fmt.Errorf("stand-in behaviour: %w", err)
	}
	s.onStop(s.standIn.Close)
	s.serveOn(ln, s.standIn)
	return nil
}

// serve runs h on a free loopback port and returns its host:port.
func (s *stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.serveOn(ln, h)
	return ln.Addr().String(), nil
}

func (s *stack) serveOn(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed at stop
	s.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// configure builds the environment of the API and the worker, with the
// same settings localstack gives them, and validates it for both roles.
func (s *stack) configure(st Settings, samples string) error {
	apiPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	workerPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	s.apiURL = "http://127.0.0.1:" + strconv.Itoa(apiPort)
	s.env = map[string]string{
		"HTTP_ADDR":                  "127.0.0.1:" + strconv.Itoa(apiPort),
		"WORKER_HTTP_ADDR":           "127.0.0.1:" + strconv.Itoa(workerPort),
		"PUBLIC_BASE_URL":            s.apiURL,
		"DATABASE_URL":               s.pg.URL,
		"DATA_DIR":                   filepath.Join(s.dir, "files"),
		"TEMPORAL_ADDRESS":           s.temporalAt,
		"TEMPORAL_NAMESPACE":         s.namespace,
		"STRIPE_API_BASE":            s.stripe.URL(),
		"STRIPE_SECRET_KEY":          devstack.StripeMockAPIKey,
		"STRIPE_WEBHOOK_SECRET":      localstack.LocalWebhookSecret,
		"UPSAMPLER_API_KEY":          localstack.LocalUpsamplerAPIKey,
		"UPSAMPLER_BASE_URL":         "http://" + s.standInAddr + "/api/v1",
		"UPSAMPLER_RESULT_HOSTS":     s.standInAddr,
		"SOURCE_HOSTS":               samples,
		"SMTP_HOST":                  s.mailpit.SMTPHost,
		"SMTP_PORT":                  strconv.Itoa(s.mailpit.SMTPPort),
		"SMTP_TLS":                   "none",
		"ADMIN_EMAIL":                "admin@localhost",
		"ADMIN_TOKEN":                localstack.LocalAdminToken,
		"ACCESS_TOKEN_SECRET":        localstack.LocalAccessTokenSecret,
		"PAYMENT_TIMEOUT":            st.PaymentTimeout.String(),
		"PROCESSING_TIMEOUT":         st.ProcessingTimeout.String(),
		"UPSAMPLER_POLL_INTERVAL":    st.PollInterval.String(),
		"UPSAMPLER_LOST_ANSWER_WAIT": st.LostAnswerWait.String(),
		"REFUND_ATTENTION_AFTER":     st.RefundAttention.String(),
		"ASYNC_PAYMENT_TIMEOUT":      st.AsyncPayment.String(),
		"DOWNLOAD_TTL":               st.DownloadTTL.String(),
		"EXPIRY_REMINDER_LEAD":       st.ReminderLead.String(),
		"RETRY_WINDOW":               st.RetryWindow.String(),
		"REFUND_RETRY_INTERVAL":      st.RefundRetry.String(),
		"RECONCILE_INTERVAL":         st.ReconcileInterval.String(),
		"RECONCILE_GRACE":            st.ReconcileGrace.String(),
		"RATE_LIMIT_CREATE":          "1000000", // one client address creates every job
		"RATE_LIMIT_DOWNLOAD":        "1000000",
		"RATE_LIMIT_PAGE":            "1000000", // one address reads every job
		"LOG_FORMAT":                 "json",
	}
	for _, r := range []struct {
		name string
		role config.Role
	}{{"API", config.RoleAPI}, {"worker", config.RoleWorker}} {
		if _, err := config.LoadEnv(r.role, s.env); err != nil {
			return fmt.Errorf("configuration of the %s: %w", r.name, err)
		}
	}
	return nil
}

// startServices starts the worker and the API and waits for both.
func (s *stack) startServices(ctx context.Context, bin string) error {
	s.worker = newService("worker", bin, s.env, s.appLogs, "http://"+s.env["WORKER_HTTP_ADDR"]+"/readyz")
	s.api = newService("api", bin, s.env, s.appLogs, s.apiURL+"/healthz")
	s.onStop(func() {
		// Both at once: the API drains requests while the worker drains activities.
		_ = parallel(
			func() error { s.api.stop(10 * time.Second); return nil },
			func() error { s.worker.stop(10 * time.Second); return nil },
		)
	})
	for _, svc := range []*service{s.worker, s.api} {
		if err := svc.start(); err != nil {
			return err
		}
		if err := svc.waitHealthy(ctx, 90*time.Second); err != nil {
			return err
		}
	}
	return s.createSiteKey(ctx)
}

// createSiteKey gives the run's selling site a key, through the admin API.
func (s *stack) createSiteKey(ctx context.Context) error {
	k, err := adminclient.Client{BaseURL: s.apiURL, Token: s.adminToken()}.CreateSiteKey(ctx, api.CreateSiteKeyRequest{Name: "chaos"})
	if err != nil {
		return fmt.Errorf("create site key: %w", err)
	}
	s.siteKey = k.Key
	return nil
}

// onStop registers f to run at stop.
func (s *stack) onStop(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = append(s.stops, f)
}

// stop stops everything, newest first.
func (s *stack) stop() {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// adminToken is the run's admin bearer token.
func (s *stack) adminToken() string { return s.env["ADMIN_TOKEN"] }
