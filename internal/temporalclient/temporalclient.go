// Package temporalclient dials Temporal with the service's settings and
// routes the SDK's logs into the process's slog handler.
package temporalclient

import (
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
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
