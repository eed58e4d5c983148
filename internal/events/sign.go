package events

import (
	"fmt"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names and fixed values of a delivery (Standard Webhooks).
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
	ContentType     = "application/json"
	UserAgent       = "hires-events/2"
)

// Sign returns the webhook-signature header for body sent as message id at
// t: "v1,<base64>" for each secret, separated by spaces. The spec's own
// library computes each, so that any receiver's Standard Webhooks library
// agrees with us.
func Sign(id string, t time.Time, body []byte, secrets ...string) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no signing secret", ErrInvalidEndpoint)
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			// The library's error never shows the secret.
			return "", fmt.Errorf("%w: bad signing secret: %v", ErrInvalidEndpoint, err)
		}
		sig, err := wh.Sign(id, t, body)
		if err != nil {
			return "", fmt.Errorf("events: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
