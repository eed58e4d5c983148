package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"hires/internal/events"
	"hires/internal/store"
)

// webhookStore is what the webhook admin routes need of the database.
type webhookStore interface {
	CreateEndpoint(ctx context.Context, n store.NewEndpoint) (events.Endpoint, error)
	Endpoint(ctx context.Context, id string) (events.Endpoint, error)
	Endpoints(ctx context.Context, subscribedTo events.Type) ([]events.Endpoint, error)
	UpdateEndpoint(ctx context.Context, id string, u store.EndpointUpdate) (events.Endpoint, error)
	RotateSecret(ctx context.Context, id, secret string, overlap time.Duration) (events.Endpoint, error)
	Event(ctx context.Context, id string) (store.StoredEvent, error)
	LogDelivery(ctx context.Context, d store.Delivery) (store.Delivery, error)
	Deliveries(ctx context.Context, endpointID string, before int64, limit int) ([]store.Delivery, error)
}

var _ webhookStore = (*store.Store)(nil)

// webhookAdmin serves /v1/admin/webhooks: the integration-event endpoints,
// their secrets, their delivery log and manual redelivery.
type webhookAdmin struct {
	store   webhookStore
	sender  *events.Sender
	overlap time.Duration // WEBHOOK_SECRET_OVERLAP
	now     func() time.Time
}

// webhookAdminRoutes adds the webhook routes to the admin group.
func (s *Server) webhookAdminRoutes(g *echo.Group) {
	h := &webhookAdmin{store: s.store, sender: events.NewSender(nil), overlap: s.cfg.WebhookSecretOverlap, now: s.now}
	h.routes(g)
}

func (h *webhookAdmin) routes(g *echo.Group) {
	body := middleware.BodyLimit("16K")
	g.POST("/webhooks", h.create, body)
	g.GET("/webhooks", h.list)
	g.GET("/webhooks/:endpoint", h.get)
	g.PATCH("/webhooks/:endpoint", h.update, body)
	g.POST("/webhooks/:endpoint/rotate-secret", h.rotate)
	g.GET("/webhooks/:endpoint/deliveries", h.deliveries)
	g.POST("/webhooks/:endpoint/redeliver", h.redeliver, body)
}

// WebhookEndpointRequest is the body of POST /v1/admin/webhooks.
type WebhookEndpointRequest struct {
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	EventTypes  []string `json:"event_types"`
}

// WebhookEndpointUpdate is the body of PATCH /v1/admin/webhooks/{id}:
// fields left out stay as they are.
type WebhookEndpointUpdate struct {
	URL         *string   `json:"url,omitempty"`
	Description *string   `json:"description,omitempty"`
	EventTypes  *[]string `json:"event_types,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
}

// WebhookEndpoint is an endpoint as the admin API shows it. Secret is only
// set in the answers of create and rotate-secret: it is shown once.
type WebhookEndpoint struct {
	ID          string        `json:"id"`
	URL         string        `json:"url"`
	Description string        `json:"description"`
	EventTypes  []events.Type `json:"event_types"`
	Disabled    bool          `json:"disabled"`
	DisabledAt  *time.Time    `json:"disabled_at,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	// PreviousSecretExpiresAt: while set, deliveries carry a second
	// signature, made with the secret replaced by the last rotation.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	Secret                  string     `json:"secret,omitempty"`
}

// WebhookDeliveries is a page of an endpoint's delivery log, newest first.
// NextBefore, when set, is the before= of the next page.
type WebhookDeliveries struct {
	Deliveries []store.Delivery `json:"deliveries"`
	NextBefore int64            `json:"next_before,omitempty"`
}

// RedeliverRequest is the body of POST /v1/admin/webhooks/{id}/redeliver.
type RedeliverRequest struct {
	EventID string `json:"event_id"`
}

const maxDescription = 500

func (h *webhookAdmin) view(e events.Endpoint) WebhookEndpoint {
	v := WebhookEndpoint{
		ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: e.Types,
		Disabled: !e.Enabled(), DisabledAt: e.DisabledAt, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if len(e.SigningSecrets(h.now())) > 1 {
		v.PreviousSecretExpiresAt = e.PreviousExpiresAt
	}
	if v.EventTypes == nil {
		v.EventTypes = []events.Type{}
	}
	return v
}

func checkURLField(u string) error {
	if err := events.CheckURL(u); err != nil {
		return invalidField("url", "invalid_url", "url must be an absolute http or https URL without user info or fragment")
	}
	return nil
}

func checkDescription(d string) error {
	if len(d) > maxDescription || !utf8.ValidString(d) {
		return invalidField("description", "invalid_description", "description must be valid UTF-8 of at most 500 bytes")
	}
	return nil
}

func parseTypesField(names []string) ([]events.Type, error) {
	ts, err := events.ParseTypes(names)
	if err != nil {
		known := make([]string, len(events.Types))
		for i, t := range events.Types {
			known[i] = string(t)
		}
		return nil, invalidField("event_types", "invalid_event_types",
			"event_types must list one or more of "+strings.Join(known, ", "))
	}
	return ts, nil
}

func (h *webhookAdmin) create(c echo.Context) error {
	req, err := decodeStrict[WebhookEndpointRequest](c.Request().Body)
	if err != nil {
		return err
	}
	req.Description = strings.TrimSpace(req.Description)
	if err := checkURLField(req.URL); err != nil {
		return err
	}
	if err := checkDescription(req.Description); err != nil {
		return err
	}
	types, err := parseTypesField(req.EventTypes)
	if err != nil {
		return err
	}
	secret := events.NewSecret()
	e, err := h.store.CreateEndpoint(c.Request().Context(), store.NewEndpoint{
		URL: req.URL, Description: req.Description, Types: types, Secret: secret,
	})
	if err != nil {
		return err
	}
	v := h.view(e)
	v.Secret = secret
	return c.JSON(http.StatusCreated, v)
}

func (h *webhookAdmin) list(c echo.Context) error {
	eps, err := h.store.Endpoints(c.Request().Context(), "")
	if err != nil {
		return err
	}
	out := make([]WebhookEndpoint, 0, len(eps))
	for _, e := range eps {
		out = append(out, h.view(e))
	}
	return c.JSON(http.StatusOK, map[string]any{"endpoints": out})
}

// endpoint answers 404 for an unknown endpoint.
func (h *webhookAdmin) endpoint(c echo.Context) (events.Endpoint, error) {
	e, err := h.store.Endpoint(c.Request().Context(), c.Param("endpoint"))
	if errors.Is(err, store.ErrEndpointNotFound) {
		return e, fail(http.StatusNotFound, "not_found", "no such webhook endpoint")
	}
	return e, err
}

func (h *webhookAdmin) get(c echo.Context) error {
	e, err := h.endpoint(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.view(e))
}

func (h *webhookAdmin) update(c echo.Context) error {
	req, err := decodeStrict[WebhookEndpointUpdate](c.Request().Body)
	if err != nil {
		return err
	}
	u := store.EndpointUpdate{URL: req.URL, Disabled: req.Disabled}
	if req.URL != nil {
		if err := checkURLField(*req.URL); err != nil {
			return err
		}
	}
	if req.Description != nil {
		d := strings.TrimSpace(*req.Description)
		if err := checkDescription(d); err != nil {
			return err
		}
		u.Description = &d
	}
	if req.EventTypes != nil {
		if u.Types, err = parseTypesField(*req.EventTypes); err != nil {
			return err
		}
	}
	e, err := h.store.UpdateEndpoint(c.Request().Context(), c.Param("endpoint"), u)
	if errors.Is(err, store.ErrEndpointNotFound) {
		return fail(http.StatusNotFound, "not_found", "no such webhook endpoint")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.view(e))
}

// rotate issues a new secret; the replaced one keeps signing for the
// overlap, so receivers that verify with either keep accepting deliveries.
func (h *webhookAdmin) rotate(c echo.Context) error {
	secret := events.NewSecret()
	e, err := h.store.RotateSecret(c.Request().Context(), c.Param("endpoint"), secret, h.overlap)
	if errors.Is(err, store.ErrEndpointNotFound) {
		return fail(http.StatusNotFound, "not_found", "no such webhook endpoint")
	}
	if err != nil {
		return err
	}
	v := h.view(e)
	v.Secret = secret
	return c.JSON(http.StatusOK, v)
}

// deliveries pages the log: ?limit=1-100 (default 50)&before=<delivery id>.
func (h *webhookAdmin) deliveries(c echo.Context) error {
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return invalidField("limit", "invalid_limit", "limit must be between 1 and 100")
		}
		limit = n
	}
	var before int64
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return invalidField("before", "invalid_cursor", "before must be a delivery id from a previous page")
		}
		before = n
	}
	if _, err := h.endpoint(c); err != nil {
		return err
	}
	ds, err := h.store.Deliveries(c.Request().Context(), c.Param("endpoint"), before, limit)
	if err != nil {
		return err
	}
	page := WebhookDeliveries{Deliveries: ds}
	if len(ds) == limit {
		page.NextBefore = ds[len(ds)-1].ID
	}
	return c.JSON(http.StatusOK, page)
}

// redeliver sends a stored event to the endpoint now, byte for byte and
// under the same webhook-id, signed afresh, and logs it as manual. The
// answer is the log row, whatever the receiver said.
func (h *webhookAdmin) redeliver(c echo.Context) error {
	req, err := decodeStrict[RedeliverRequest](c.Request().Body)
	if err != nil {
		return err
	}
	ep, err := h.endpoint(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ev, err := h.store.Event(ctx, strings.TrimSpace(req.EventID))
	switch {
	case errors.Is(err, store.ErrEventNotFound):
		return invalidField("event_id", "unknown_event", "no event with this id")
	case err != nil:
		return err
	case !ep.Enabled():
		return fail(http.StatusConflict, "endpoint_disabled", "the endpoint is disabled: enable it first")
	case !ep.Subscribed(ev.Type):
		return fail(http.StatusConflict, "not_subscribed", "the endpoint is not subscribed to "+string(ev.Type))
	}
	sendCtx, cancel := context.WithTimeout(ctx, events.DefaultTimeout)
	defer cancel()
	res, sendErr := h.sender.Deliver(sendCtx, ep, ev.ID, ev.Payload)
	d, err := h.store.LogDelivery(ctx, store.Delivery{
		EndpointID: ep.ID, EventID: ev.ID, Outcome: events.OutcomeOf(sendErr), StatusCode: res.StatusCode,
		Error: events.LogError(sendErr), DurationMS: res.Duration.Milliseconds(), Manual: true,
	})
	if err != nil {
		return err
	}
	d.EventType = ev.Type
	return c.JSON(http.StatusOK, d)
}
