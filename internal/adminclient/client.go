// Package adminclient calls the admin API: the hires command manages site
// keys and event endpoints with it, and the e2e tests and the chaos run
// register their site and their event receivers.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"hires/api"
)

// Client reaches one API with the admin token.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // ADMIN_TOKEN
	HTTP    *http.Client
}

// Endpoint is the part of the API's answer callers use. Secret is only in
// the answers of Create and Rotate.
type Endpoint struct {
	ID                      string     `json:"id"`
	URL                     string     `json:"url"`
	EventTypes              []string   `json:"event_types"`
	Secret                  string     `json:"secret"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// Create registers url for the event types and returns it with its secret.
func (c Client) Create(ctx context.Context, url, description string, types []string) (Endpoint, error) {
	var e Endpoint
	err := c.do(ctx, http.MethodPost, "/v1/admin/webhooks",
		map[string]any{"url": url, "description": description, "event_types": types}, &e)
	return e, err
}

// Rotate issues a new secret for the endpoint.
func (c Client) Rotate(ctx context.Context, id string) (Endpoint, error) {
	var e Endpoint
	err := c.do(ctx, http.MethodPost, "/v1/admin/webhooks/"+id+"/rotate-secret", nil, &e)
	return e, err
}

// CreateSiteKey makes a key; the answer holds the key, shown this once.
func (c Client) CreateSiteKey(ctx context.Context, r api.CreateSiteKeyRequest) (api.SiteKeyView, error) {
	var k api.SiteKeyView
	err := c.do(ctx, http.MethodPost, "/v1/admin/site-keys", r, &k)
	return k, err
}

// SiteKeys lists the keys, revoked ones included.
func (c Client) SiteKeys(ctx context.Context) ([]api.SiteKeyView, error) {
	var out struct {
		SiteKeys []api.SiteKeyView `json:"site_keys"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/admin/site-keys", nil, &out)
	return out.SiteKeys, err
}

// RevokeSiteKey stops key id from working.
func (c Client) RevokeSiteKey(ctx context.Context, id string) (api.SiteKeyView, error) {
	var k api.SiteKeyView
	err := c.do(ctx, http.MethodPost, "/v1/admin/site-keys/"+url.PathEscape(id)+"/revoke", nil, &k)
	return k, err
}

func (c Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("adminclient: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("adminclient: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("adminclient: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("adminclient: %s %s: answer: %w", method, path, err)
	}
	return nil
}
