package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"hires/internal/config"
)

func TestSetupWithoutEndpointDoesNothing(t *testing.T) {
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	before := runtime.NumGoroutine()

	cfg := config.Config{ServiceName: "hires-api"} // no OTEL_EXPORTER_OTLP_ENDPOINT
	require.False(t, cfg.TracingEnabled())
	shutdown, err := Setup(context.Background(), cfg)
	require.NoError(t, err)
	require.NotNil(t, shutdown)

	assert.Equal(t, tp, otel.GetTracerProvider(), "global tracer provider untouched")
	assert.Equal(t, prop, otel.GetTextMapPropagator(), "global propagator untouched")
	assert.Nil(t, current, "no provider installed")
	assert.LessOrEqual(t, runtime.NumGoroutine(), before, "no goroutine started")

	interceptors, err := TemporalInterceptors(cfg)
	require.NoError(t, err)
	assert.Empty(t, interceptors, "no Temporal interceptor")

	// The middleware passes requests through: no span in the handler's
	// context, even for a caller that sends a traceparent.
	e := echo.New()
	var got trace.SpanContext
	e.Use(EchoMiddleware(cfg))
	e.GET("/v1/jobs/:id", func(c echo.Context) error {
		got = trace.SpanContextFromContext(c.Request().Context())
		return c.NoContent(http.StatusNoContent)
	})
	req := httptest.NewRequest(http.MethodGet, "/v1/jobs/42", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.False(t, got.IsValid(), "no span context with tracing off")

	require.NoError(t, shutdown(context.Background()))
	require.NoError(t, shutdown(context.Background()), "the no-op shutdown may be called again")
}

func TestTracesURL(t *testing.T) {
	for _, tc := range []struct {
		base, traces, want, wantErr string
	}{
		{base: "http://collector:4318", want: "http://collector:4318/v1/traces"},
		{base: "http://collector:4318/", want: "http://collector:4318/v1/traces"},
		{base: "https://otlp.example.com/prefix/", want: "https://otlp.example.com/prefix/v1/traces"},
		{base: "http://collector:4318", traces: "http://other:4318/custom/traces", want: "http://other:4318/custom/traces"},
		{traces: "https://otlp.example.com/v1/traces", want: "https://otlp.example.com/v1/traces"},
		{base: "collector:4318", wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{base: "http://collector:4318", traces: "grpc://x", wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	} {
		got, err := tracesURL(config.Config{OTLPEndpoint: tc.base, OTLPTracesEndpoint: tc.traces})
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc)
			continue
		}
		require.NoError(t, err, tc)
		assert.Equal(t, tc.want, got, tc)
	}
}

// Setup with an endpoint installs the provider and the W3C propagators,
// shares them between the processes of one binary, and takes them down
// with its last user. Nothing is exported: no span is started.
func TestSetupSharesOneProviderPerProcess(t *testing.T) {
	ctx := context.Background()
	cfg := config.Config{OTLPEndpoint: "http://127.0.0.1:1", ServiceName: "hires-api"}
	stopAPI, err := Setup(ctx, cfg)
	require.NoError(t, err)
	sdk, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	require.True(t, ok, "an SDK provider is global")
	assert.ElementsMatch(t, []string{"traceparent", "tracestate", "baggage"}, otel.GetTextMapPropagator().Fields())

	cfg.ServiceName = "hires-worker"
	stopWorker, err := Setup(ctx, cfg)
	require.NoError(t, err)
	assert.Same(t, sdk, otel.GetTracerProvider(), "the second process in the binary shares the provider")

	require.NoError(t, stopAPI(ctx))
	assert.Same(t, sdk, otel.GetTracerProvider(), "still in use by the worker")
	require.Error(t, stopAPI(ctx), "a second shutdown is refused")
	require.NoError(t, stopWorker(ctx))
	_, ok = otel.GetTracerProvider().(*sdktrace.TracerProvider)
	assert.False(t, ok, "the last shutdown resets the global provider")
	assert.Empty(t, otel.GetTextMapPropagator().Fields(), "and the propagator")
	assert.Nil(t, current)
}

// The server span is named by route, never by the raw path; a caller's
// traceparent is continued; 5xx answers mark the span as failed.
func TestEchoMiddlewareNamesSpansByRoute(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})

	const secret = "dl_s3cr3t_token_value"
	e := echo.New()
	e.Use(middleware.RequestID(), EchoMiddleware(config.Config{OTLPEndpoint: "http://collector:4318"}))
	var inHandler trace.SpanContext
	e.GET("/v1/downloads/:token", func(c echo.Context) error {
		inHandler = trace.SpanContextFromContext(c.Request().Context())
		return c.String(http.StatusOK, "file")
	})
	e.POST("/v1/jobs", func(c echo.Context) error { return errors.New("boom") })
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })

	do := func(method, target string, header ...string) int {
		req := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w.Code
	}
	const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/v1/downloads/"+secret+"?x="+secret,
		"traceparent", "00-"+parentTrace+"-"+parentSpan+"-01"))
	require.Equal(t, http.StatusInternalServerError, do(http.MethodPost, "/v1/jobs"))
	require.Equal(t, http.StatusNotFound, do(http.MethodGet, "/nowhere/"+secret))
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/healthz")) // probes: no span

	spans := rec.Ended()
	require.Len(t, spans, 3)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
		assert.Equal(t, trace.SpanKindServer, s.SpanKind())
		assert.NotContains(t, s.Name(), secret)
		for _, a := range s.Attributes() {
			assert.NotContains(t, a.Value.Emit(), secret, "attribute %s", a.Key)
		}
	}
	require.Contains(t, byName, "GET /v1/downloads/:token")
	require.Contains(t, byName, "POST /v1/jobs")
	require.Contains(t, byName, "GET", "an unmatched request is named by its method only")

	dl := byName["GET /v1/downloads/:token"]
	assert.Equal(t, parentTrace, dl.SpanContext().TraceID().String(), "the caller's trace is continued")
	assert.Equal(t, parentSpan, dl.Parent().SpanID().String())
	assert.Equal(t, dl.SpanContext(), inHandler, "the handler's context carries the span")
	attrs := map[string]string{}
	for _, a := range dl.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	assert.Equal(t, "/v1/downloads/:token", attrs["http.route"])
	assert.Equal(t, "GET", attrs["http.request.method"])
	assert.Equal(t, "200", attrs["http.response.status_code"])
	assert.NotEmpty(t, attrs["hires.request_id"])
	assert.Equal(t, codes.Unset, dl.Status().Code)

	failed := byName["POST /v1/jobs"]
	assert.Equal(t, codes.Error, failed.Status().Code)
	assert.False(t, failed.Parent().IsValid(), "no caller trace: a root span")
}

func TestCloseBoundsShutdown(t *testing.T) {
	var deadline time.Time
	Close(func(ctx context.Context) error {
		deadline, _ = ctx.Deadline()
		return nil
	}, nil)
	assert.WithinDuration(t, time.Now().Add(10*time.Second), deadline, 2*time.Second)
	Close(func(context.Context) error { return errors.New("collector away") }, nil) // logs to the default logger
}

// The settings come from OpenTelemetry's standard variables; tracing is off
// by default and the service name defaults per process.
func TestConfig(t *testing.T) {
	env := func(extra ...string) map[string]string {
		m := map[string]string{
			"DATABASE_URL": "postgres://localhost/hires", "STRIPE_SECRET_KEY": "sk_test_123",
			"STRIPE_WEBHOOK_SECRET": "whsec_test", "ADMIN_TOKEN": "admin-token-0123456789", "ACCESS_TOKEN_SECRET": "access-token-secret-0123456789-abcdef",
			"SOURCE_HOSTS": "images.example.com", "UPSAMPLER_API_KEY": "up_key",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	api, err := config.LoadEnv(config.RoleAPI, env())
	require.NoError(t, err)
	assert.False(t, api.TracingEnabled(), "off by default")
	assert.Equal(t, "hires-api", api.ServiceName)
	worker, err := config.LoadEnv(config.RoleWorker, env())
	require.NoError(t, err)
	assert.Equal(t, "hires-worker", worker.ServiceName)

	on, err := config.LoadEnv(config.RoleWorker, env("OTEL_EXPORTER_OTLP_ENDPOINT", " http://collector:4318 ", "OTEL_SERVICE_NAME", "jobs-worker"))
	require.NoError(t, err)
	assert.True(t, on.TracingEnabled())
	assert.Equal(t, "http://collector:4318", on.OTLPEndpoint)
	assert.Equal(t, "jobs-worker", on.ServiceName)
	on, err = config.LoadEnv(config.RoleAPI, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://otlp.example.com/v1/traces"))
	require.NoError(t, err)
	assert.True(t, on.TracingEnabled())

	_, err = config.LoadEnv(config.RoleAPI, env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"))
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_ENDPOINT")
}
