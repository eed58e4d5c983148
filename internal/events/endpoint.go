package events

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ErrInvalidEndpoint wraps every reason an endpoint's settings are refused.
var ErrInvalidEndpoint = errors.New("events: invalid endpoint")

// Endpoint is a receiver of events, as stored in the database: where it is,
// what it subscribed to and the secrets its deliveries are signed with.
type Endpoint struct {
	ID          string
	URL         string
	Description string
	Types       []Type
	// Secret signs every delivery. PreviousSecret, after a rotation, signs
	// them too until PreviousExpiresAt, so that receivers can switch over.
	Secret            string
	PreviousSecret    string
	PreviousExpiresAt *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	DisabledAt        *time.Time
}

// Enabled reports whether the endpoint receives events.
func (e Endpoint) Enabled() bool { return e.DisabledAt == nil }

// Subscribed reports whether the endpoint gets events of type t.
func (e Endpoint) Subscribed(t Type) bool { return slices.Contains(e.Types, t) }

// SigningSecrets are the secrets valid at now, the current one first: one
// signature per secret goes into each delivery.
func (e Endpoint) SigningSecrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && e.PreviousExpiresAt != nil && now.Before(*e.PreviousExpiresAt) {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// Receivers filters eps down to the enabled ones subscribed to t.
func Receivers(eps []Endpoint, t Type) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if e.Enabled() && e.Subscribed(t) {
			out = append(out, e)
		}
	}
	return out
}

// SecretPrefix starts every secret, as the Standard Webhooks libraries expect.
const SecretPrefix = "whsec_"

// secretBytes: the specification asks for 24 to 64 random bytes.
const secretBytes = 32

// NewSecret returns a fresh signing secret: "whsec_" and the standard
// base64 of 32 random bytes.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// CheckSecret reports whether s is a secret of the form NewSecret makes.
func CheckSecret(s string) error {
	raw, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return fmt.Errorf("%w: secret must start with %s", ErrInvalidEndpoint, SecretPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) < 24 || len(b) > 64 {
		return fmt.Errorf("%w: secret must be %s and the base64 of 24 to 64 bytes", ErrInvalidEndpoint, SecretPrefix)
	}
	return nil
}

// maxURL bounds an endpoint's URL.
const maxURL = 2048

// CheckURL accepts absolute http and https URLs with a host and without
// user info (credentials belong in the signature, not the URL). Its errors
// never repeat the user info, path or query, which may hold credentials.
func CheckURL(raw string) error {
	if raw == "" || len(raw) > maxURL || strings.TrimSpace(raw) != raw {
		return fmt.Errorf("%w: URL must be 1 to %d characters without surrounding space", ErrInvalidEndpoint, maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a valid URL", ErrInvalidEndpoint)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return fmt.Errorf("%w: URL scheme must be http or https", ErrInvalidEndpoint)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return fmt.Errorf("%w: must be an absolute URL with a host", ErrInvalidEndpoint)
	}
	if u.User != nil {
		return fmt.Errorf("%w: %s: URL must not carry user info", ErrInvalidEndpoint, redact(u))
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: URL must not have a fragment", ErrInvalidEndpoint)
	}
	return nil
}

// redact shows a URL without user info, path or query, which may hold
// credentials (some services put their token in the path).
func redact(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" {
		s += "/…"
	}
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// Redact shows raw as redact does, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return redact(u)
}
