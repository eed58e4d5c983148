// Package metrics is the service's Prometheus instrumentation: one registry
// per process (never the global default, so tests can run several), the Go
// and process collectors, the build's identity (hires_build_info), the HTTP
// middleware, the business counters the worker's activities record, the
// Temporal SDK's own metrics (through tally), and the /readyz checks.
package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Namespace prefixes the service's own metrics.
const Namespace = "hires"

// temporalReportInterval is how often the SDK's tally metrics are copied
// into the Prometheus registry.
const temporalReportInterval = time.Second

// Registry is one process's metrics. Its parts are registered on first use,
// so the API shows no worker counters and the other way round. A nil
// *Registry hands out nil parts, whose methods do nothing.
type Registry struct {
	reg *prometheus.Registry
	log *slog.Logger

	httpOnce     sync.Once
	http         *HTTP
	webhooksOnce sync.Once
	webhooks     *Webhooks
	businessOnce sync.Once
	business     *Business

	temporalOnce   sync.Once
	temporal       client.MetricsHandler
	temporalCloser io.Closer
	reportErrs     sync.Map // tally registration errors already logged
}

// New makes a registry with the Go runtime and process collectors and
// hires_build_info.
func New(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfo(ReadBuildInfo()),
	)
	return &Registry{reg: reg, log: logger}
}

// Prometheus is the underlying registry (for tests and extra collectors).
func (r *Registry) Prometheus() *prometheus.Registry {
	if r == nil {
		return nil
	}
	return r.reg
}

// Handler serves the registry in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		Registry:      r.reg, // counts its own errors
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Temporal is the Temporal SDK's metrics handler, for client.Options: a
// tally scope with Prometheus naming, reported into this registry, so the
// SDK's temporal_* series appear on the same /metrics.
func (r *Registry) Temporal() client.MetricsHandler {
	if r == nil {
		return nil
	}
	r.temporalOnce.Do(func() {
		reporter := tallyprom.NewReporter(tallyprom.Options{
			Registerer:       r.reg,
			DefaultTimerType: tallyprom.HistogramTimerType,
			OnRegisterError:  r.tallyError,
		})
		scope, closer := tally.NewRootScope(tally.ScopeOptions{
			CachedReporter:  reporter,
			Separator:       tallyprom.DefaultSeparator,
			SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		}, temporalReportInterval)
		r.temporal = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
		r.temporalCloser = closer
	})
	return r.temporal
}

// tallyError logs a metric the reporter could not register (the SDK may
// use one name with two sets of tags) once, instead of panicking.
func (r *Registry) tallyError(err error) {
	if _, seen := r.reportErrs.LoadOrStore(err.Error(), true); !seen {
		r.log.Warn("temporal metric not exported", "error", err)
	}
}

// Close stops reporting the Temporal SDK's metrics (after a last report).
func (r *Registry) Close() error {
	if r == nil {
		return nil
	}
	r.temporalOnce.Do(func() {}) // orders this read after Temporal's write
	if r.temporalCloser == nil {
		return nil
	}
	return r.temporalCloser.Close()
}
