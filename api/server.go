// Package api is the REST API (Echo): job creation for the selling site,
// status and downloads for customers, webhooks for Stripe and Upsampler,
// and the admin listing.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.temporal.io/sdk/client"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/storage"
	"hires/internal/store"
	"hires/internal/tracing"
	"hires/internal/urlguard"
)

// Deps are the API's collaborators.
type Deps struct {
	Config   config.Config
	Store    *store.Store
	Temporal client.Client
	// Payments makes each job's Checkout Session.
	Payments Checkouts
	Files    storage.Store
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics is the process's registry, served on /metrics; nil means a
	// registry of this server's own.
	Metrics *metrics.Registry
	// Ready answers /readyz; nil means checks of Store and Temporal only.
	Ready *metrics.Readiness
}

// jobStore is what the handlers need of the database: *store.Store in
// production; the handlers' unit tests drive them with one kept in a map.
type jobStore interface {
	CreateJob(ctx context.Context, n store.NewJob) (job store.Job, created bool, err error)
	Get(ctx context.Context, id string) (store.Job, error)
	GetByDownloadToken(ctx context.Context, token string) (store.Job, error)
	List(ctx context.Context, f store.ListFilter) ([]store.Job, error)
	Events(ctx context.Context, id string) ([]store.Event, error)
	MarkDownloaded(ctx context.Context, jobID string) error
	SetCustomerEmail(ctx context.Context, id, email string) error
	StripeEventSeen(ctx context.Context, eventID string) (bool, error)
	RecordStripeEvent(ctx context.Context, eventID, typ, jobID, outcome string) (bool, error)
	SetCheckout(ctx context.Context, id, sessionID, url string, expiresAt time.Time) error
	MarkFailed(ctx context.Context, id, reason, detail string) error
	ConfirmRefund(ctx context.Context, c store.RefundConfirmation) (string, error)
	MarkRefundSettled(ctx context.Context, id, by, note string) error
	CostReport(ctx context.Context, from, to time.Time) ([]store.CostDay, error)

	Authenticate(ctx context.Context, keyHash []byte) (store.SiteKey, error)
	CreateSiteKey(ctx context.Context, k store.NewSiteKey) (store.SiteKey, bool, error)
	SiteKeys(ctx context.Context) ([]store.SiteKey, error)
	RevokeSiteKey(ctx context.Context, id string) (store.SiteKey, error)
	Allow(ctx context.Context, bucket string, perMinute, burst int) (bool, time.Duration, error)
	ReserveIdempotency(ctx context.Context, site string, keyHash, requestHash []byte, jobID string, lease, ttl time.Duration) (store.Idempotency, error)
	CompleteIdempotency(ctx context.Context, site string, keyHash []byte, status int, body []byte) error
	ReleaseIdempotency(ctx context.Context, site string, keyHash []byte) error

	webhookStore
}

var _ jobStore = (*store.Store)(nil)

// Checkouts makes Stripe Checkout Sessions (*payments.Client).
type Checkouts interface {
	CreateCheckout(ctx context.Context, p payments.CheckoutParams) (payments.Session, error)
}

// Server serves the API.
type Server struct {
	cfg      config.Config
	store    jobStore
	temporal client.Client
	payments Checkouts
	files    storage.Store
	sources  *urlguard.Policy
	log      *slog.Logger
	now      func() time.Time
	webhooks *metrics.Webhooks
}

// New builds the Echo application.
func New(d Deps) (*echo.Echo, error) {
	var st jobStore
	if d.Store != nil {
		st = d.Store
	}
	return newEcho(d, st)
}

// newEcho builds the Echo application on st, which stands for d.Store.
func newEcho(d Deps, st jobStore) (*echo.Echo, error) {
	sources, err := urlguard.New(d.Config.SourceHosts)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: d.Config, store: st, temporal: d.Temporal, payments: d.Payments, files: d.Files,
		sources: sources, log: d.Logger, now: d.Now,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(s.log)
	}
	if d.Ready == nil {
		d.Ready = metrics.NewReadiness(s.log)
		if d.Store != nil {
			d.Ready.Check("database", d.Store.Ping)
		}
		if d.Temporal != nil {
			d.Ready.Check("temporal", metrics.TemporalCheck(d.Temporal))
		}
	}
	s.webhooks = d.Metrics.Webhooks()

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	if e.IPExtractor, err = s.clientIP(); err != nil {
		return nil, err
	}
	e.Use(d.Metrics.HTTP().Middleware(), middleware.Recover(), middleware.RequestID(), tracing.EchoMiddleware(d.Config), s.requestLog)

	// Customers' routes are limited per client address; job creation per site key.
	pages := perMinute(s.cfg.RateLimitPage)
	e.GET("/jobs/:id", s.jobPage, pages)
	e.GET("/assets/:name", s.asset)
	if s.cfg.DevPayments { // local runs and tests only: the page's "Pay (simulated)" button
		s.log.Warn("DEV_PAYMENTS is on: anyone with a job's link can mark it paid; never use it in production")
		e.POST("/dev/jobs/:id/pay", s.devPay)
	}
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", echo.WrapHandler(d.Ready))
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))

	v1 := e.Group("/v1")
	v1.GET("/openapi.yaml", serveOpenAPIYAML)
	v1.GET("/openapi.json", serveOpenAPIJSON)
	v1.POST("/jobs", s.createJob, s.requireSite, s.limitCreation, timeout(45*time.Second), middleware.BodyLimit("16K"))
	// The one route a browser calls from a site's own pages: CORS here only.
	cors := s.cors()
	v1.GET("/jobs/:id", s.getJob, cors, pages, timeout(10*time.Second))
	v1.OPTIONS("/jobs/:id", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, cors)
	downloads := perMinute(s.cfg.RateLimitDownload) // downloads stream: no handler timeout
	v1.GET("/downloads/:token", s.download, downloads)
	v1.HEAD("/downloads/:token", s.download, downloads)
	v1.POST("/webhooks/stripe", s.stripeWebhook, timeout(20*time.Second), middleware.BodyLimit("64K"))
	v1.POST("/webhooks/upsampler/:id/:secret", s.upsamplerWebhook, timeout(20*time.Second), middleware.BodyLimit("1M"))

	admin := v1.Group("/admin", s.requireAdmin, timeout(45*time.Second))
	admin.GET("/jobs", s.listJobs)
	admin.GET("/jobs/:id", s.adminGetJob)
	admin.GET("/jobs/:id/events", s.jobEvents)
	admin.GET("/reports/costs", s.costReport)
	admin.POST("/jobs/:id/resend-download", s.adminDownloadAction(jobs.UpdateResendDownload), middleware.BodyLimit("4K"))
	admin.POST("/jobs/:id/new-download-token", s.adminDownloadAction(jobs.UpdateNewDownloadToken), middleware.BodyLimit("4K"))
	admin.POST("/jobs/:id/refund-settled", s.adminRefundSettled, middleware.BodyLimit("4K"))
	admin.GET("/site-keys", s.listSiteKeys)
	admin.POST("/site-keys", s.createSiteKey, middleware.BodyLimit("4K"))
	admin.POST("/site-keys/:id/revoke", s.revokeSiteKey)
	s.webhookAdminRoutes(admin)
	return e, nil
}

// requestLog logs one line per request; paths with secrets (download
// tokens, callback secrets) are logged by route, never by raw path.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		}
		if id := c.Param("id"); id != "" {
			attrs = append(attrs, slog.String("job_id", id)) // job IDs are not secret; tokens never logged
		}
		s.log.LogAttrs(c.Request().Context(), level, "http request", attrs...)
		return nil
	}
}

// Error is the body of every error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type errorBody struct {
	Error Error `json:"error"`
}

// apiError is an error with its HTTP answer.
type apiError struct {
	status int
	body   Error
}

func (e *apiError) Error() string { return e.body.Message }

func fail(status int, code, message string) error {
	return &apiError{status: status, body: Error{Code: code, Message: message}}
}

func invalidField(field, code, message string) error {
	return &apiError{status: http.StatusUnprocessableEntity, body: Error{Code: code, Message: message, Field: field}}
}

var errNotFound = fail(http.StatusNotFound, "not_found", "not found")

func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{status: he.Code, body: Error{Code: echoCode(he.Code), Message: http.StatusText(he.Code)}}
		if he.Code == http.StatusRequestEntityTooLarge {
			ae.body.Message = "request body too large"
		}
	case errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{status: http.StatusServiceUnavailable, body: Error{Code: "timeout", Message: "the request timed out, please retry"}}
	case unavailable(err):
		s.log.WarnContext(c.Request().Context(), "a dependency is unavailable", "route", c.Path(), "error", err)
		c.Response().Header().Set("Retry-After", "5")
		errors.As(errUnavailable, &ae)
	default:
		s.log.ErrorContext(c.Request().Context(), "request failed", "route", c.Path(), "error", err)
		ae = &apiError{status: http.StatusInternalServerError, body: Error{Code: "internal", Message: "internal error"}}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.status)
		return
	}
	_ = c.JSON(ae.status, errorBody{Error: ae.body})
}

func echoCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusBadRequest:
		return "bad_request"
	}
	return "error"
}
