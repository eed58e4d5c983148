package tracing

import (
	"fmt"

	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"hires/internal/config"
)

// TemporalInterceptors are the interceptors for a Temporal client (see
// temporalclient.WithInterceptors): with tracing on, the SDK's
// OpenTelemetry interceptor. On the API's client it starts a span for each
// call (StartWorkflow:..., UpdateWithStartWorkflow:..., SignalWorkflow:...)
// as a child of the context's span and writes it into the request's
// header; on the worker's client, which the worker inherits it from, it
// continues that trace in RunWorkflow:..., HandleSignal:..., StartActivity:...
// and RunActivity:... spans. Call it after Setup: the spans go to the
// global tracer provider. With tracing off there are none.
func TemporalInterceptors(cfg config.Config) ([]interceptor.ClientInterceptor, error) {
	if !cfg.TracingEnabled() {
		return nil, nil
	}
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return nil, fmt.Errorf("tracing: temporal interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{i}, nil
}
