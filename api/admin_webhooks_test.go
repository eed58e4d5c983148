package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"hires/internal/events"
	"hires/internal/store"
)

// fakeWebhooks keeps endpoints, events and the log in memory, as the
// SQL in internal/store does (its integration tests check that).
type fakeWebhooks struct {
	mu         sync.Mutex
	endpoints  map[string]events.Endpoint
	events     map[string]store.StoredEvent
	deliveries []store.Delivery
	n          int
}

func newFakeWebhooks() *fakeWebhooks {
	return &fakeWebhooks{endpoints: map[string]events.Endpoint{}, events: map[string]store.StoredEvent{}}
}

func (f *fakeWebhooks) CreateEndpoint(_ context.Context, n store.NewEndpoint) (events.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	now := time.Now()
	e := events.Endpoint{ID: "ep-" + string(rune('a'+f.n)), URL: n.URL, Description: n.Description, Types: n.Types,
		Secret: n.Secret, CreatedAt: now, UpdatedAt: now}
	f.endpoints[e.ID] = e
	return e, nil
}

func (f *fakeWebhooks) Endpoint(_ context.Context, id string) (events.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.endpoints[id]
	if !ok {
		return e, store.ErrEndpointNotFound
	}
	return e, nil
}

func (f *fakeWebhooks) Endpoints(context.Context, events.Type) ([]events.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []events.Endpoint
	for _, e := range f.endpoints {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b events.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeWebhooks) UpdateEndpoint(_ context.Context, id string, u store.EndpointUpdate) (events.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.endpoints[id]
	if !ok {
		return e, store.ErrEndpointNotFound
	}
	if u.URL != nil {
		e.URL = *u.URL
	}
	if u.Description != nil {
		e.Description = *u.Description
	}
	if u.Types != nil {
		e.Types = u.Types
	}
	if u.Disabled != nil {
		e.DisabledAt = nil
		if *u.Disabled {
			now := time.Now()
			e.DisabledAt = &now
		}
	}
	f.endpoints[id] = e
	return e, nil
}

func (f *fakeWebhooks) RotateSecret(_ context.Context, id, secret string, overlap time.Duration) (events.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.endpoints[id]
	if !ok {
		return e, store.ErrEndpointNotFound
	}
	exp := time.Now().Add(overlap)
	e.PreviousSecret, e.Secret, e.PreviousExpiresAt = e.Secret, secret, &exp
	f.endpoints[id] = e
	return e, nil
}

func (f *fakeWebhooks) Event(_ context.Context, id string) (store.StoredEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.events[id]
	if !ok {
		return e, store.ErrEventNotFound
	}
	return e, nil
}

func (f *fakeWebhooks) LogDelivery(_ context.Context, d store.Delivery) (store.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.ID = int64(len(f.deliveries) + 1)
	d.Attempt = 1
	for _, o := range f.deliveries {
		if o.EndpointID == d.EndpointID && o.EventID == d.EventID {
			d.Attempt++
		}
	}
	d.AttemptedAt = time.Now()
	f.deliveries = append(f.deliveries, d)
	return d, nil
}

func (f *fakeWebhooks) Deliveries(_ context.Context, endpointID string, before int64, limit int) ([]store.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []store.Delivery{}
	for i := len(f.deliveries) - 1; i >= 0 && len(out) < limit; i-- {
		d := f.deliveries[i]
		if d.EndpointID == endpointID && (before == 0 || d.ID < before) {
			out = append(out, d)
		}
	}
	return out, nil
}

func webhookServer(t *testing.T, f *fakeWebhooks) *httptest.Server {
	t.Helper()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	e := echo.New()
	e.HTTPErrorHandler = s.errorHandler
	h := &webhookAdmin{store: f, sender: events.NewSender(nil), overlap: time.Hour, now: time.Now}
	h.routes(e.Group("/v1/admin"))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, srv *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), "%s", raw)
	}
	return resp.StatusCode
}

func TestWebhookAdminValidation(t *testing.T) {
	srv := webhookServer(t, newFakeWebhooks())
	var made WebhookEndpoint
	require.Equal(t, http.StatusCreated, send(t, srv, "POST", "/v1/admin/webhooks",
		`{"url":"https://hooks.example.com/in","event_types":["job.completed"]}`, &made))

	tests := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"not JSON", "POST", "/v1/admin/webhooks", `{`, 400, "invalid_json", ""},
		{"unknown field", "POST", "/v1/admin/webhooks", `{"url":"https://a.example","event_types":["job.created"],"secret":"x"}`, 400, "invalid_json", ""},
		{"no URL", "POST", "/v1/admin/webhooks", `{"event_types":["job.created"]}`, 422, "invalid_url", "url"},
		{"relative URL", "POST", "/v1/admin/webhooks", `{"url":"/hooks","event_types":["job.created"]}`, 422, "invalid_url", "url"},
		{"ftp URL", "POST", "/v1/admin/webhooks", `{"url":"ftp://a.example/h","event_types":["job.created"]}`, 422, "invalid_url", "url"},
		{"user info", "POST", "/v1/admin/webhooks", `{"url":"https://u:p@a.example/h","event_types":["job.created"]}`, 422, "invalid_url", "url"},
		{"no types", "POST", "/v1/admin/webhooks", `{"url":"https://a.example/h","event_types":[]}`, 422, "invalid_event_types", "event_types"},
		{"unknown type", "POST", "/v1/admin/webhooks", `{"url":"https://a.example/h","event_types":["job.deleted"]}`, 422, "invalid_event_types", "event_types"},
		{"long description", "POST", "/v1/admin/webhooks", `{"url":"https://a.example/h","event_types":["job.created"],"description":"` + strings.Repeat("d", 501) + `"}`, 422, "invalid_description", "description"},
		{"update bad URL", "PATCH", "/v1/admin/webhooks/" + made.ID, `{"url":"javascript:alert(1)"}`, 422, "invalid_url", "url"},
		{"update no types", "PATCH", "/v1/admin/webhooks/" + made.ID, `{"event_types":[]}`, 422, "invalid_event_types", "event_types"},
		{"update unknown endpoint", "PATCH", "/v1/admin/webhooks/nope", `{"disabled":true}`, 404, "not_found", ""},
		{"get unknown endpoint", "GET", "/v1/admin/webhooks/nope", ``, 404, "not_found", ""},
		{"rotate unknown endpoint", "POST", "/v1/admin/webhooks/nope/rotate-secret", ``, 404, "not_found", ""},
		{"log of unknown endpoint", "GET", "/v1/admin/webhooks/nope/deliveries", ``, 404, "not_found", ""},
		{"limit 0", "GET", "/v1/admin/webhooks/" + made.ID + "/deliveries?limit=0", ``, 422, "invalid_limit", "limit"},
		{"limit 101", "GET", "/v1/admin/webhooks/" + made.ID + "/deliveries?limit=101", ``, 422, "invalid_limit", "limit"},
		{"bad cursor", "GET", "/v1/admin/webhooks/" + made.ID + "/deliveries?before=x", ``, 422, "invalid_cursor", "before"},
		{"redeliver unknown event", "POST", "/v1/admin/webhooks/" + made.ID + "/redeliver", `{"event_id":"evt_0"}`, 422, "unknown_event", "event_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out errorBody
			require.Equal(t, tt.status, send(t, srv, tt.method, tt.path, tt.body, &out))
			require.Equal(t, tt.code, out.Error.Code)
			require.Equal(t, tt.field, out.Error.Field)
			require.NotEmpty(t, out.Error.Message)
		})
	}
}

func TestWebhookAdminLifecycle(t *testing.T) {
	f := newFakeWebhooks()
	srv := webhookServer(t, f)

	var (
		mu   sync.Mutex
		got  []*http.Request
		body [][]byte
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, body = append(got, r), append(body, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()

	var made WebhookEndpoint
	require.Equal(t, http.StatusCreated, send(t, srv, "POST", "/v1/admin/webhooks",
		`{"url":"`+rc.URL+`/in","description":" shop ","event_types":["job.failed","job.completed","job.failed"]}`, &made))
	require.NoError(t, events.CheckSecret(made.Secret), "the secret is shown once, on creation")
	require.Equal(t, []events.Type{events.JobCompleted, events.JobFailed}, made.EventTypes)
	require.Equal(t, "shop", made.Description)

	var list struct{ Endpoints []WebhookEndpoint }
	require.Equal(t, http.StatusOK, send(t, srv, "GET", "/v1/admin/webhooks", "", &list))
	require.Len(t, list.Endpoints, 1)
	require.Empty(t, list.Endpoints[0].Secret, "never shown again")
	require.Nil(t, list.Endpoints[0].PreviousSecretExpiresAt)

	var rotated WebhookEndpoint
	require.Equal(t, http.StatusOK, send(t, srv, "POST", "/v1/admin/webhooks/"+made.ID+"/rotate-secret", "", &rotated))
	require.NoError(t, events.CheckSecret(rotated.Secret))
	require.NotEqual(t, made.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt)
	require.WithinDuration(t, time.Now().Add(time.Hour), *rotated.PreviousSecretExpiresAt, time.Minute)

	// A stored event is redelivered byte for byte, signed with both secrets.
	ev := events.New(events.JobCompleted, "job-1", 0, time.Now(), events.Data{Status: "completed"})
	payload, err := ev.Marshal()
	require.NoError(t, err)
	f.events[ev.ID] = store.StoredEvent{ID: ev.ID, Type: ev.Type, JobID: "job-1", Payload: payload}
	var d store.Delivery
	require.Equal(t, http.StatusOK, send(t, srv, "POST", "/v1/admin/webhooks/"+made.ID+"/redeliver", `{"event_id":"`+ev.ID+`"}`, &d))
	require.Equal(t, events.Delivered, d.Outcome)
	require.True(t, d.Manual)
	require.Equal(t, http.StatusNoContent, d.StatusCode)
	require.Len(t, got, 1)
	require.Equal(t, payload, body[0])
	require.Equal(t, ev.ID, got[0].Header.Get("webhook-id"))
	for _, secret := range []string{made.Secret, rotated.Secret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body[0], got[0].Header))
	}

	var page WebhookDeliveries
	require.Equal(t, http.StatusOK, send(t, srv, "GET", "/v1/admin/webhooks/"+made.ID+"/deliveries?limit=1", "", &page))
	require.Len(t, page.Deliveries, 1)
	require.Equal(t, d.ID, page.NextBefore)

	// Unsubscribed, then disabled: redelivery refused.
	var upd WebhookEndpoint
	require.Equal(t, http.StatusOK, send(t, srv, "PATCH", "/v1/admin/webhooks/"+made.ID, `{"event_types":["job.created"]}`, &upd))
	require.Equal(t, []events.Type{events.JobCreated}, upd.EventTypes)
	var out errorBody
	require.Equal(t, http.StatusConflict, send(t, srv, "POST", "/v1/admin/webhooks/"+made.ID+"/redeliver", `{"event_id":"`+ev.ID+`"}`, &out))
	require.Equal(t, "not_subscribed", out.Error.Code)
	require.Equal(t, http.StatusOK, send(t, srv, "PATCH", "/v1/admin/webhooks/"+made.ID, `{"disabled":true,"event_types":["job.completed"]}`, &upd))
	require.True(t, upd.Disabled)
	require.Equal(t, http.StatusConflict, send(t, srv, "POST", "/v1/admin/webhooks/"+made.ID+"/redeliver", `{"event_id":"`+ev.ID+`"}`, &out))
	require.Equal(t, "endpoint_disabled", out.Error.Code)
	require.Len(t, got, 1, "nothing more sent")
}
