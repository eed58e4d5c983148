// Package temporalclient dials Temporal with the service's settings and
// routes the SDK's logs into the process's slog handler.
package temporalclient

import (
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
)

// Dial connects to the Temporal frontend at address.
func Dial(address, namespace string, logger *slog.Logger) (client.Client, error) {
	c, err := client.Dial(client.Options{
		HostPort:  address,
		Namespace: namespace,
		Logger:    log.NewStructuredLogger(logger),
	})
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s: %w", address, err)
	}
	return c, nil
}
