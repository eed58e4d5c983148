// Package config is the service's one typed configuration, read from
// environment variables and validated at start-up.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config holds every setting of the API and the worker. Durations use Go
// syntax (90s, 24h). Secrets are tagged so that String() never prints them.
type Config struct {
	HTTPAddr      string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	PublicBaseURL string `env:"PUBLIC_BASE_URL" envDefault:"http://127.0.0.1:8080"`
	DatabaseURL   string `env:"DATABASE_URL"`
	DataDir       string `env:"DATA_DIR" envDefault:"./data"`

	// Temporal's frontend and namespace. internal/temporalclient reads
	// Temporal's standard client variables first (go.temporal.io/sdk/contrib/envconfig:
	// these same names, mTLS certificates, CA, server name, profiles of
	// TEMPORAL_CONFIG_FILE); these fields fill what they leave empty.
	TemporalAddress   string `env:"TEMPORAL_ADDRESS" envDefault:"127.0.0.1:7233"`
	TemporalNamespace string `env:"TEMPORAL_NAMESPACE" envDefault:"default"`
	// A managed Temporal cluster: TLS, and an API key (implies TLS).
	TemporalTLS    bool   `env:"TEMPORAL_TLS"`
	TemporalAPIKey string `env:"TEMPORAL_API_KEY"`

	StripeSecretKey     string `env:"STRIPE_SECRET_KEY"`
	StripeWebhookSecret string `env:"STRIPE_WEBHOOK_SECRET"`
	StripeAPIBase       string `env:"STRIPE_API_BASE" envDefault:"https://api.stripe.com"`
	Currency            string `env:"CURRENCY" envDefault:"usd"`

	UpsamplerAPIKey  string `env:"UPSAMPLER_API_KEY"`
	UpsamplerBaseURL string `env:"UPSAMPLER_BASE_URL" envDefault:"https://upsampler.com/api/v1"`
	// UpsamplerResultHosts are the hosts the worker may download results
	// from; "*.example.com" matches subdomains.
	UpsamplerResultHosts []string `env:"UPSAMPLER_RESULT_HOSTS" envDefault:"upsampler.com,*.upsampler.com" envSeparator:","`

	// SourceHosts are the hosts customers' source images may come from.
	SourceHosts         []string `env:"SOURCE_HOSTS" envSeparator:","`
	MarkupPercent       int      `env:"MARKUP_PERCENT" envDefault:"200"`
	MaxOutputMegapixels int64    `env:"MAX_OUTPUT_MEGAPIXELS" envDefault:"400"`
	MaxResultBytes      int64    `env:"MAX_RESULT_BYTES" envDefault:"268435456"`

	PaymentTimeout        time.Duration `env:"PAYMENT_TIMEOUT" envDefault:"24h"`
	DownloadTTL           time.Duration `env:"DOWNLOAD_TTL" envDefault:"24h"`
	ProcessingTimeout     time.Duration `env:"PROCESSING_TIMEOUT" envDefault:"30m"`
	UpsamplerPollInterval time.Duration `env:"UPSAMPLER_POLL_INTERVAL" envDefault:"30s"`
	// UpsamplerLostAnswerWait: a submission whose answer was lost (Upsampler
	// may have the job) waits this long for its callback before the image
	// is sent again.
	UpsamplerLostAnswerWait time.Duration `env:"UPSAMPLER_LOST_ANSWER_WAIT" envDefault:"10m"`
	// RetryWindow keeps a failed job open for an admin retry (the original's
	// 7-day failed-job cleanup).
	RetryWindow time.Duration `env:"RETRY_WINDOW" envDefault:"168h"`
	// AdminRetryLimit and DownloadResendLimit bound what admins can make a
	// job do again (and with it its workflow history).
	AdminRetryLimit     int           `env:"ADMIN_RETRY_LIMIT" envDefault:"5"`
	DownloadResendLimit int           `env:"DOWNLOAD_RESEND_LIMIT" envDefault:"10"`
	RefundRetryInterval time.Duration `env:"REFUND_RETRY_INTERVAL" envDefault:"1h"`
	// RefundAttentionAfter is how long refused refunds are retried before
	// the job is handed to an admin (payment status refund_needs_attention).
	RefundAttentionAfter time.Duration `env:"REFUND_ATTENTION_AFTER" envDefault:"72h"`
	// AsyncPaymentTimeout is how long a Checkout completed with a delayed
	// payment method (bank debits take days) waits for Stripe's verdict.
	AsyncPaymentTimeout time.Duration `env:"ASYNC_PAYMENT_TIMEOUT" envDefault:"336h"`
	// The reconciliation sweep: how often it runs, and how long a job must
	// have been unchanged before it is looked at.
	ReconcileInterval time.Duration `env:"RECONCILE_INTERVAL" envDefault:"5m"`
	ReconcileGrace    time.Duration `env:"RECONCILE_GRACE" envDefault:"10m"`

	AdminToken string `env:"ADMIN_TOKEN"`
	// AccessTokenSecret derives each job's access token (the customer's
	// key to their page); the API and the worker share it. Keep it stable:
	// changing it invalidates every customer link already sent.
	AccessTokenSecret string `env:"ACCESS_TOKEN_SECRET"`

	// Email, sent by the worker. An empty SMTP_HOST turns email off.
	SMTPHost           string        `env:"SMTP_HOST"`
	SMTPPort           int           `env:"SMTP_PORT" envDefault:"587"`
	SMTPUsername       string        `env:"SMTP_USERNAME"`
	SMTPPassword       string        `env:"SMTP_PASSWORD"`
	SMTPTLS            string        `env:"SMTP_TLS" envDefault:"starttls"` // starttls, tls or none
	MailFrom           string        `env:"MAIL_FROM" envDefault:"Hi-res images <images@localhost>"`
	SiteName           string        `env:"SITE_NAME" envDefault:"Hi-res images"`
	AdminEmail         string        `env:"ADMIN_EMAIL"`
	ExpiryReminderLead time.Duration `env:"EXPIRY_REMINDER_LEAD" envDefault:"2h"`
	// Emails and integration events wait in the outbox until the worker
	// delivers them: it looks for due ones every NOTIFY_POLL_INTERVAL (a
	// new one wakes it at once), retries a failed one with backoff up to
	// NOTIFY_MAX_RETRY_INTERVAL, and gives it up after NOTIFY_GIVE_UP_AFTER.
	NotifyPollInterval     time.Duration `env:"NOTIFY_POLL_INTERVAL" envDefault:"1s"`
	NotifyMaxRetryInterval time.Duration `env:"NOTIFY_MAX_RETRY_INTERVAL" envDefault:"10m"`
	NotifyGiveUpAfter      time.Duration `env:"NOTIFY_GIVE_UP_AFTER" envDefault:"24h"`

	// SiteOrigins may call the API from a browser (CORS), comma-separated,
	// e.g. https://shop.example.com.
	SiteOrigins []string `env:"SITE_ORIGINS" envSeparator:","`
	// Limits, in requests per minute. Job creation is limited per site key
	// (a key may set its own), shared by every API replica through
	// PostgreSQL; downloads and the customer's page per client address, in
	// each replica's memory.
	RateLimitCreate   int `env:"RATE_LIMIT_CREATE" envDefault:"60"`
	RateLimitDownload int `env:"RATE_LIMIT_DOWNLOAD" envDefault:"120"`
	RateLimitPage     int `env:"RATE_LIMIT_PAGE" envDefault:"120"`
	// TrustedProxies are the networks (CIDR, or single addresses) of the
	// reverse proxies in front of the API: only a connection from one of
	// them has its X-Forwarded-For believed. Empty: the connection's
	// address is the client's.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
	// LegacyTrustProxyHeaders is the old, unsafe switch; setting it is an
	// error that points to TRUSTED_PROXIES.
	LegacyTrustProxyHeaders string `env:"TRUST_PROXY_HEADERS"`
	// IdempotencyKeyTTL is how long a site's Idempotency-Key is remembered
	// (Stripe keeps them 24 hours).
	IdempotencyKeyTTL time.Duration `env:"IDEMPOTENCY_KEY_TTL" envDefault:"24h"`

	// Worker capacity (0 keeps the Temporal SDK's defaults) and how long
	// running activities may finish after SIGTERM. The sticky cache keeps
	// the most recently active workflows in memory (about 100 KB each); the
	// others are replayed from history when they next wake.
	WorkerMaxActivities    int           `env:"WORKER_MAX_CONCURRENT_ACTIVITIES"`
	WorkerMaxWorkflowTasks int           `env:"WORKER_MAX_CONCURRENT_WORKFLOW_TASKS"`
	WorkerStickyCacheSize  int           `env:"WORKER_STICKY_CACHE_SIZE" envDefault:"500"`
	WorkerStopTimeout      time.Duration `env:"WORKER_STOP_TIMEOUT" envDefault:"30s"`

	// The worker's own HTTP server: /metrics, /healthz, /readyz.
	WorkerHTTPAddr string `env:"WORKER_HTTP_ADDR" envDefault:"127.0.0.1:9090"`

	// Result files go to S3-compatible object storage when S3_BUCKET is set,
	// to DATA_DIR otherwise.
	S3Endpoint        string `env:"S3_ENDPOINT"`
	S3Bucket          string `env:"S3_BUCKET"`
	S3Region          string `env:"S3_REGION" envDefault:"us-east-1"`
	S3AccessKeyID     string `env:"S3_ACCESS_KEY_ID"`
	S3SecretAccessKey string `env:"S3_SECRET_ACCESS_KEY"`

	// WebhookSecretOverlap is how long an integration-event endpoint's
	// previous secret keeps signing deliveries after a rotation, so that
	// receivers can switch secrets without losing events. The endpoints
	// themselves live in the database (admin API /v1/admin/webhooks).
	WebhookSecretOverlap time.Duration `env:"WEBHOOK_SECRET_OVERLAP" envDefault:"24h"`

	// LogLevel is the lowest level logged: debug, info, warn or error
	// (empty: info). cmd/hires reads it (with LOG_FORMAT) to make the
	// logger before anything else, for every command; a bad value stops
	// the process there, and fails Validate too.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`

	// Tracing (OpenTelemetry), exported by OTLP/HTTP; off while both
	// endpoints are empty. OTLPEndpoint is the collector's base URL
	// (http://collector:4318), to which /v1/traces is appended;
	// OTLPTracesEndpoint, if set, is the full URL and wins. ServiceName
	// defaults per process: hires-api, hires-worker.
	OTLPEndpoint       string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	ServiceName        string `env:"OTEL_SERVICE_NAME"`

	// DevPayments is for local development only (`make run` and the tests
	// turn it on; never in production): the customer's page shows a
	// "Pay (simulated)" button, and POST /dev/jobs/{id}/pay sends the API
	// a signed checkout.session.completed as Stripe would. Default false.
	DevPayments bool `env:"DEV_PAYMENTS"`
}

// Role selects which settings a process requires.
type Role int

// The processes.
const (
	RoleAPI Role = iota
	RoleWorker
)

// DefaultServiceName is the OpenTelemetry service.name of role's process
// when OTEL_SERVICE_NAME is not set.
func DefaultServiceName(role Role) string {
	if role == RoleWorker {
		return "hires-worker"
	}
	return "hires-api"
}

// TracingEnabled tells whether spans are exported (an OTLP endpoint is set).
func (c Config) TracingEnabled() bool {
	return c.OTLPEndpoint != "" || c.OTLPTracesEndpoint != ""
}

// Load reads the environment and validates it for role. The error names
// the first offending variable and never contains a secret's value.
func Load(role Role) (Config, error) {
	return LoadEnv(role, env.ToMap(os.Environ()))
}

// LoadEnv is Load from the given variables instead of the process's.
func LoadEnv(role Role, environ map[string]string) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return Config{}, fmt.Errorf("config: %w", redact(err))
	}
	c.Currency = strings.ToLower(strings.TrimSpace(c.Currency))
	c.SourceHosts = trimAll(c.SourceHosts)
	c.UpsamplerResultHosts = trimAll(c.UpsamplerResultHosts)
	c.SiteOrigins = trimAll(c.SiteOrigins)
	c.TrustedProxies = trimAll(c.TrustedProxies)
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	c.UpsamplerBaseURL = strings.TrimRight(c.UpsamplerBaseURL, "/")
	c.OTLPEndpoint = strings.TrimSpace(c.OTLPEndpoint)
	c.OTLPTracesEndpoint = strings.TrimSpace(c.OTLPTracesEndpoint)
	if c.ServiceName = strings.TrimSpace(c.ServiceName); c.ServiceName == "" {
		c.ServiceName = DefaultServiceName(role)
	}
	if err := c.Validate(role); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the settings role needs.
func (c Config) Validate(role Role) error {
	var errs []error
	need := func(name, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need("DATABASE_URL", c.DatabaseURL)
	need("STRIPE_SECRET_KEY", c.StripeSecretKey)
	need("TEMPORAL_ADDRESS", c.TemporalAddress)
	need("TEMPORAL_NAMESPACE", c.TemporalNamespace)
	if err := absoluteURL(c.StripeAPIBase); err != nil {
		errs = append(errs, fmt.Errorf("STRIPE_API_BASE: %w", err))
	}
	if err := absoluteURL(c.PublicBaseURL); err != nil {
		errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: %w", err))
	}
	for _, e := range []struct{ name, v string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.OTLPEndpoint},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.OTLPTracesEndpoint},
	} {
		if e.v != "" {
			if err := absoluteURL(e.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.name, err))
			}
		}
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	need("ACCESS_TOKEN_SECRET", c.AccessTokenSecret)
	if c.AccessTokenSecret != "" && len(c.AccessTokenSecret) < 32 {
		errs = append(errs, errors.New("ACCESS_TOKEN_SECRET must be at least 32 characters"))
	}
	if len(c.Currency) != 3 {
		errs = append(errs, fmt.Errorf("CURRENCY must be a 3-letter ISO code, got %q", c.Currency))
	}
	// Both the API (job workflows) and the worker (the sweep's refunds) start refund loops.
	if c.RefundRetryInterval < time.Second {
		errs = append(errs, fmt.Errorf("REFUND_RETRY_INTERVAL must be at least 1s, got %s", c.RefundRetryInterval))
	} else if c.RefundAttentionAfter < c.RefundRetryInterval || c.RefundAttentionAfter > maxRefundAttempts*c.RefundRetryInterval {
		// Each attempt adds to the workflow's history: keep it bounded.
		errs = append(errs, fmt.Errorf("REFUND_ATTENTION_AFTER must be between REFUND_RETRY_INTERVAL and %d times it (%s), got %s",
			maxRefundAttempts, maxRefundAttempts*c.RefundRetryInterval, c.RefundAttentionAfter))
	}
	switch role {
	case RoleAPI:
		need("STRIPE_WEBHOOK_SECRET", c.StripeWebhookSecret)
		need("ADMIN_TOKEN", c.AdminToken)
		if c.AdminToken != "" && len(c.AdminToken) < 16 {
			errs = append(errs, errors.New("ADMIN_TOKEN must be at least 16 characters"))
		}
		if len(c.SourceHosts) == 0 {
			errs = append(errs, errors.New("SOURCE_HOSTS is required (comma-separated image hosts)"))
		}
		if c.MarkupPercent < 0 || c.MarkupPercent > 10000 {
			errs = append(errs, fmt.Errorf("MARKUP_PERCENT must be between 0 and 10000, got %d", c.MarkupPercent))
		}
		if c.PaymentTimeout > 24*time.Hour {
			// A Checkout Session cannot stay open longer than 24 hours.
			errs = append(errs, fmt.Errorf("PAYMENT_TIMEOUT must be at most 24h (Stripe's Checkout limit), got %s", c.PaymentTimeout))
		}
		if c.AdminRetryLimit < 1 || c.AdminRetryLimit > 50 || c.DownloadResendLimit < 1 || c.DownloadResendLimit > 100 {
			errs = append(errs, fmt.Errorf("ADMIN_RETRY_LIMIT must be 1-50 and DOWNLOAD_RESEND_LIMIT 1-100, got %d and %d",
				c.AdminRetryLimit, c.DownloadResendLimit))
		}
		if c.RateLimitCreate <= 0 || c.RateLimitDownload <= 0 || c.RateLimitPage <= 0 {
			errs = append(errs, errors.New("RATE_LIMIT_CREATE, RATE_LIMIT_DOWNLOAD and RATE_LIMIT_PAGE must be positive"))
		}
		if c.LegacyTrustProxyHeaders != "" {
			errs = append(errs, errors.New("TRUST_PROXY_HEADERS is no longer read: list the networks of your reverse proxies in TRUSTED_PROXIES"))
		}
		if _, err := c.TrustedNetworks(); err != nil {
			errs = append(errs, err)
		}
		if c.IdempotencyKeyTTL < time.Minute {
			errs = append(errs, fmt.Errorf("IDEMPOTENCY_KEY_TTL must be at least 1m, got %s", c.IdempotencyKeyTTL))
		}
		if c.DevPayments && livemode(c.StripeSecretKey) {
			errs = append(errs, errors.New("DEV_PAYMENTS must not be on with a live Stripe key: it lets anyone mark a job paid"))
		}
		for _, o := range c.SiteOrigins {
			if err := absoluteURL(o); err != nil || strings.Count(o, "/") != 2 {
				errs = append(errs, fmt.Errorf("SITE_ORIGINS: want origins like https://shop.example.com, got %q", o))
				break
			}
		}
		if c.WebhookSecretOverlap < 0 || c.WebhookSecretOverlap > 30*24*time.Hour {
			errs = append(errs, fmt.Errorf("WEBHOOK_SECRET_OVERLAP must be between 0 and 720h, got %s", c.WebhookSecretOverlap))
		}
		if c.MaxOutputMegapixels <= 0 {
			errs = append(errs, errors.New("MAX_OUTPUT_MEGAPIXELS must be positive"))
		}
		for _, d := range []struct {
			name     string
			v, floor time.Duration
		}{
			{"PAYMENT_TIMEOUT", c.PaymentTimeout, time.Second},
			{"DOWNLOAD_TTL", c.DownloadTTL, time.Second},
			{"PROCESSING_TIMEOUT", c.ProcessingTimeout, time.Second},
			{"UPSAMPLER_POLL_INTERVAL", c.UpsamplerPollInterval, 100 * time.Millisecond},
			{"RETRY_WINDOW", c.RetryWindow, time.Second},
			{"ASYNC_PAYMENT_TIMEOUT", c.AsyncPaymentTimeout, time.Second},
			{"UPSAMPLER_LOST_ANSWER_WAIT", c.UpsamplerLostAnswerWait, time.Second},
		} {
			if d.v < d.floor {
				errs = append(errs, fmt.Errorf("%s must be at least %s, got %s", d.name, d.floor, d.v))
			}
		}
	case RoleWorker:
		need("UPSAMPLER_API_KEY", c.UpsamplerAPIKey)
		if err := absoluteURL(c.UpsamplerBaseURL); err != nil {
			errs = append(errs, fmt.Errorf("UPSAMPLER_BASE_URL: %w", err))
		}
		if len(c.UpsamplerResultHosts) == 0 {
			errs = append(errs, errors.New("UPSAMPLER_RESULT_HOSTS is required"))
		}
		need("DATA_DIR", c.DataDir)
		if c.MaxResultBytes <= 0 {
			errs = append(errs, errors.New("MAX_RESULT_BYTES must be positive"))
		}
		if c.WorkerMaxActivities < 0 || c.WorkerMaxWorkflowTasks < 0 || c.WorkerStickyCacheSize < 0 || c.WorkerStopTimeout < 0 {
			errs = append(errs, errors.New("WORKER_* capacities and WORKER_STOP_TIMEOUT must not be negative"))
		}
		if c.WorkerMaxWorkflowTasks == 1 {
			errs = append(errs, errors.New("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS must be at least 2 (or 0 for the default)"))
		}
		if c.ReconcileInterval < time.Second {
			errs = append(errs, fmt.Errorf("RECONCILE_INTERVAL must be at least 1s, got %s", c.ReconcileInterval))
		}
		if c.ReconcileGrace < time.Second {
			errs = append(errs, fmt.Errorf("RECONCILE_GRACE must be at least 1s, got %s", c.ReconcileGrace))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errs[0])
	}
	return nil
}

// ParseLogLevel reads LOG_LEVEL: debug, info, warn or error, in any case
// (empty: info). The error names the variable.
func ParseLogLevel(v string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", v)
}

// maxRefundAttempts bounds REFUND_ATTENTION_AFTER / REFUND_RETRY_INTERVAL:
// a refund loop adds about ten history events per attempt.
const maxRefundAttempts = 200

// TrustedNetworks parses TRUSTED_PROXIES.
func (c Config) TrustedNetworks() ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, v := range c.TrustedProxies {
		if !strings.Contains(v, "/") {
			if ip := net.ParseIP(v); ip != nil {
				bits := 8 * len(ip.To16())
				if ip.To4() != nil {
					ip, bits = ip.To4(), 32
				}
				v = fmt.Sprintf("%s/%d", ip, bits)
			}
		}
		_, n, err := net.ParseCIDR(v)
		if err != nil {
			return nil, fmt.Errorf("TRUSTED_PROXIES: want networks like 10.0.0.0/8 or addresses, got %q", v)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// livemode tells a live Stripe key (secret or restricted) from a test one.
func livemode(key string) bool {
	return strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_")
}

func absoluteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an absolute http(s) URL, got %q", raw)
	}
	return nil
}

func trimAll(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// redact drops the offending value from a parse error, which may be a secret.
func redact(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		var pe env.ParseError
		if errors.As(agg.Errors[0], &pe) {
			return fmt.Errorf("%s has an invalid value (want %s)", envName(pe.Name), pe.Type)
		}
		return agg.Errors[0]
	}
	return err
}

// envName maps a struct field back to its variable for the message.
func envName(field string) string {
	if f, ok := reflect.TypeFor[Config]().FieldByName(field); ok {
		return f.Tag.Get("env")
	}
	return field
}
