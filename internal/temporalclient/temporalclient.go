// Package temporalclient dials Temporal with the service's settings and
// routes the SDK's logs into the process's slog handler.
package temporalclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"

	"hires/internal/config"
	"hires/internal/tracing"
)

// Option changes the client's options.
type Option func(*client.Options)

// WithMetrics sends the SDK's metrics to h (see metrics.Registry.Temporal);
// a nil h keeps them off.
func WithMetrics(h client.MetricsHandler) Option {
	return func(o *client.Options) {
		if h != nil {
			o.MetricsHandler = h
		}
	}
}

// WithCloud connects with TLS, and with an API key when one is given, as a
// managed Temporal cluster (e.g. Temporal Cloud) requires.
func WithCloud(useTLS bool, apiKey string) Option {
	return func(o *client.Options) {
		if apiKey != "" {
			o.Credentials = client.NewAPIKeyStaticCredentials(apiKey)
			useTLS = true // an API key never travels in clear text
		}
		if useTLS {
			o.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
}

// WithInterceptors adds client interceptors (see tracing.TemporalInterceptors);
// those that are also worker interceptors, as the SDK's tracing interceptor
// is, apply to the workers built on the client too. None keeps the client
// as it is.
func WithInterceptors(is ...interceptor.ClientInterceptor) Option {
	return func(o *client.Options) {
		o.Interceptors = append(o.Interceptors, is...)
	}
}

// Dial connects to the Temporal frontend at address.
func Dial(address, namespace string, logger *slog.Logger, opts ...Option) (client.Client, error) {
	o := client.Options{
		HostPort:  address,
		Namespace: namespace,
		Logger:    log.NewStructuredLogger(logger),
	}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := client.Dial(o)
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s: %w", address, err)
	}
	return c, nil
}

// Connect sets up tracing and dials Temporal as the configuration says,
// with the SDK's metrics going to metricsHandler (nil: none). close closes
// the client, then flushes the last spans.
func Connect(ctx context.Context, cfg config.Config, logger *slog.Logger, metricsHandler client.MetricsHandler) (c client.Client, close func(), err error) {
	stopTracing, err := tracing.Setup(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	interceptors, err := tracing.TemporalInterceptors(cfg)
	if err == nil {
		c, err = Dial(cfg.TemporalAddress, cfg.TemporalNamespace, logger,
			WithMetrics(metricsHandler), WithInterceptors(interceptors...),
			WithCloud(cfg.TemporalTLS, cfg.TemporalAPIKey))
	}
	if err != nil {
		tracing.Close(stopTracing, logger)
		return nil, nil, err
	}
	return c, func() {
		c.Close()
		tracing.Close(stopTracing, logger)
	}, nil
}
