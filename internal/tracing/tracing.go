// Package tracing is the service's OpenTelemetry tracing: spans from the
// API's requests continue through Temporal (the SDK's OpenTelemetry
// interceptor carries them in workflow and activity headers) into the
// worker's workflows and activities, and both processes export them by
// OTLP/HTTP. Tracing is off unless an OTLP endpoint is configured; off, it
// starts nothing and adds nothing to requests or workflows.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace/noop"

	"hires/internal/config"
)

// scope names the service's own tracer (the HTTP server spans).
const scope = "hires"

// tracesPath is OTLP/HTTP's path for traces, appended to a base endpoint.
const tracesPath = "/v1/traces"

// One provider per process: the API and the worker run in one process under
// `hires dev`, and share the provider the first Setup installed.
var (
	mu      sync.Mutex
	current *shared
)

type shared struct {
	tp    *sdktrace.TracerProvider
	users int
}

// Setup installs, when cfg has an OTLP endpoint, a tracer provider that
// batches spans to it over OTLP/HTTP, with a resource naming
// cfg.ServiceName, and the W3C tracecontext and baggage propagators, as
// OpenTelemetry's globals. The exporter also reads OpenTelemetry's standard
// variables for headers, timeout, compression and TLS
// (OTEL_EXPORTER_OTLP_HEADERS, ...), the provider the sampler
// (OTEL_TRACES_SAMPLER; default: always, or as the caller's trace says),
// the resource OTEL_RESOURCE_ATTRIBUTES. Nothing connects until spans are
// sent: a collector that is down costs dropped spans, logged, not a failed
// start.
//
// Without an endpoint Setup does nothing: no exporter, no goroutine, the
// globals untouched.
//
// shutdown flushes the spans still queued and, for the process's last
// user, stops the provider and resets the globals to no-ops.
func Setup(ctx context.Context, cfg config.Config) (shutdown func(context.Context) error, err error) {
	if !cfg.TracingEnabled() {
		return func(context.Context) error { return nil }, nil
	}
	endpoint, err := tracesURL(cfg)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if current == nil {
		tp, err := newProvider(ctx, endpoint, serviceName(cfg))
		if err != nil {
			return nil, err
		}
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			slog.Warn("tracing: OpenTelemetry error (spans may be lost)", "error", err)
		}))
		current = &shared{tp: tp}
	}
	s := current
	s.users++
	var once sync.Once
	return func(ctx context.Context) error {
		err := errors.New("tracing: already shut down")
		once.Do(func() { err = s.release(ctx) })
		return err
	}, nil
}

// release ends one user's share of the provider.
func (s *shared) release(ctx context.Context) error {
	mu.Lock()
	defer mu.Unlock()
	s.users--
	if s.users > 0 {
		return s.tp.ForceFlush(ctx)
	}
	if current == s {
		current = nil
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	}
	return s.tp.Shutdown(ctx)
}

func newProvider(ctx context.Context, endpoint, service string) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(service)),
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource (OTEL_RESOURCE_ATTRIBUTES?): %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// tracesURL is where spans are POSTed: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// as is, else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended, as
// OpenTelemetry's exporter specification says.
func tracesURL(cfg config.Config) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", strings.TrimSpace(cfg.OTLPTracesEndpoint)
	if raw == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSpace(cfg.OTLPEndpoint)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("tracing: %s: want an http(s) URL like http://collector:4318", name)
	}
	if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
		u.Path = strings.TrimRight(u.Path, "/") + tracesPath
		u.RawPath = ""
	}
	return u.String(), nil
}

func serviceName(cfg config.Config) string {
	if n := strings.TrimSpace(cfg.ServiceName); n != "" {
		return n
	}
	return "hires"
}

// Close runs shutdown, bounded to 10 seconds, and logs its failure to
// logger (nil: slog's default): for a deferred call at the end of a process.
func Close(shutdown func(context.Context) error, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		if logger == nil {
			logger = slog.Default()
		}
		logger.Warn("tracing: flushing spans at shutdown failed", "error", err)
	}
}
