package tracing

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"hires/internal/config"
)

// requestIDKey is the span attribute carrying the request's X-Request-ID,
// the one the request log shows.
const requestIDKey = attribute.Key("hires.request_id")

// untraced are the probe and scrape routes, polled every few seconds: no
// spans for them.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// EchoMiddleware starts a server span for each request, named by method and
// route pattern ("POST /v1/jobs", "GET /v1/downloads/:token"; just the
// method when no route matched), never by the raw path: paths carry
// download tokens and callback secrets, and neither the path nor the query
// is recorded. A caller's W3C traceparent is continued. The span is in the
// request's context, so Temporal calls made with it join the trace. The
// health and metrics routes are left out. Place it after RequestID. With
// tracing off it passes requests through.
func EchoMiddleware(cfg config.Config) echo.MiddlewareFunc {
	if !cfg.TracingEnabled() {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if untraced[c.Path()] {
				return next(c)
			}
			req := c.Request()
			ctx := otel.GetTextMapPropagator().Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			method, known := httpMethod(req.Method)
			route := c.Path() // the pattern; Echo routes before e.Use middleware runs
			name := method
			if !known {
				name = "HTTP"
			}
			attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method)}
			if route != "" {
				name += " " + route
				attrs = append(attrs, semconv.HTTPRoute(route))
			}
			ctx, span := otel.Tracer(scope).Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))

			if err := next(c); err != nil {
				c.Error(err) // writes the answer, so its status is known
			}
			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if id := c.Response().Header().Get(echo.HeaderXRequestID); id != "" {
				span.SetAttributes(requestIDKey.String(id))
			}
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

// httpMethod bounds the method attribute to HTTP's standard set, as the
// HTTP semantic conventions ask ("_OTHER" for the rest).
func httpMethod(m string) (string, bool) {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m, true
	}
	return "_OTHER", false
}
