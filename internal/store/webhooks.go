package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"hires/internal/events"
)

// Errors of the webhook tables.
var (
	ErrEndpointNotFound = errors.New("store: webhook endpoint not found")
	ErrEventNotFound    = errors.New("store: event not found")
)

// MaxDeliveriesPerEvent bounds the delivery log: the newest this many
// attempts are kept per endpoint and event.
const MaxDeliveriesPerEvent = 100

// NewEndpoint is a webhook endpoint to create; the caller validates it.
type NewEndpoint struct {
	URL         string
	Description string
	Types       []events.Type
	Secret      string
}

const endpointColumns = `id::text, url, description, event_types, secret, COALESCE(previous_secret, ''),
	previous_secret_expires_at, created_at, updated_at, disabled_at`

func scanEndpoint(row pgx.Row) (events.Endpoint, error) {
	var e events.Endpoint
	var types []string
	err := row.Scan(&e.ID, &e.URL, &e.Description, &types, &e.Secret, &e.PreviousSecret,
		&e.PreviousExpiresAt, &e.CreatedAt, &e.UpdatedAt, &e.DisabledAt)
	for _, t := range types {
		e.Types = append(e.Types, events.Type(t))
	}
	return e, err
}

func typeStrings(ts []events.Type) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// CreateEndpoint stores a new, enabled endpoint.
func (s *Store) CreateEndpoint(ctx context.Context, n NewEndpoint) (events.Endpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, url, description, event_types, secret)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+endpointColumns,
		uuid.NewString(), n.URL, n.Description, typeStrings(n.Types), n.Secret))
	if err != nil {
		return events.Endpoint{}, fmt.Errorf("store: create endpoint: %w", err)
	}
	return e, nil
}

// Endpoint returns one endpoint.
func (s *Store) Endpoint(ctx context.Context, id string) (events.Endpoint, error) {
	if uuid.Validate(id) != nil {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	if err != nil {
		return events.Endpoint{}, fmt.Errorf("store: endpoint: %w", err)
	}
	return e, nil
}

// Endpoints lists every endpoint, oldest first; subscribedTo, if not empty,
// keeps the enabled ones subscribed to that type.
func (s *Store) Endpoints(ctx context.Context, subscribedTo events.Type) ([]events.Endpoint, error) {
	q := `SELECT ` + endpointColumns + ` FROM webhook_endpoints`
	var args []any
	if subscribedTo != "" {
		q += ` WHERE disabled_at IS NULL AND $1 = ANY (event_types)`
		args = append(args, string(subscribedTo))
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: endpoints: %w", err)
	}
	defer rows.Close()
	var out []events.Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("store: endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: endpoints: %w", err)
	}
	return out, nil
}

// EndpointUpdate changes the fields that are not nil.
type EndpointUpdate struct {
	URL         *string
	Description *string
	Types       []events.Type // nil keeps them
	Disabled    *bool
}

// UpdateEndpoint applies u and returns the endpoint as it now is. Disabling
// an endpoint already disabled keeps its first disabled_at.
func (s *Store) UpdateEndpoint(ctx context.Context, id string, u EndpointUpdate) (events.Endpoint, error) {
	if uuid.Validate(id) != nil {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	var types []string
	if u.Types != nil {
		types = typeStrings(u.Types)
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET
			url = COALESCE($2, url),
			description = COALESCE($3, description),
			event_types = COALESCE($4, event_types),
			disabled_at = CASE WHEN $5::boolean IS NULL THEN disabled_at
			                   WHEN $5 THEN COALESCE(disabled_at, now()) END,
			updated_at = now()
		WHERE id = $1 RETURNING `+endpointColumns, id, u.URL, u.Description, types, u.Disabled))
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	if err != nil {
		return events.Endpoint{}, fmt.Errorf("store: update endpoint: %w", err)
	}
	return e, nil
}

// RotateSecret makes secret the endpoint's signing secret; the one it
// replaces keeps signing for overlap (0 ends it at once). A rotation during
// an overlap drops the older previous secret: only two are ever valid.
func (s *Store) RotateSecret(ctx context.Context, id, secret string, overlap time.Duration) (events.Endpoint, error) {
	if uuid.Validate(id) != nil {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET
			previous_secret = secret, secret = $2,
			previous_secret_expires_at = now() + make_interval(secs => $3),
			updated_at = now()
		WHERE id = $1 RETURNING `+endpointColumns, id, secret, overlap.Seconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Endpoint{}, ErrEndpointNotFound
	}
	if err != nil {
		return events.Endpoint{}, fmt.Errorf("store: rotate secret: %w", err)
	}
	return e, nil
}

// StoredEvent is an event as built for its first delivery.
type StoredEvent struct {
	ID        string      `json:"id"`
	Type      events.Type `json:"type"`
	JobID     string      `json:"job_id"`
	Payload   []byte      `json:"-"`
	CreatedAt time.Time   `json:"created_at"`
}

// SaveEvent stores e unless an event with its ID exists, and returns the
// stored one: every delivery, retries and replays included, sends the bytes
// of the first.
func (s *Store) SaveEvent(ctx context.Context, e StoredEvent) (StoredEvent, error) {
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_events (id, type, job_id, payload) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, e.ID, string(e.Type), e.JobID, e.Payload)
	if err != nil {
		return StoredEvent{}, fmt.Errorf("store: save event: %w", err)
	}
	return s.Event(ctx, e.ID)
}

// Event returns a stored event.
func (s *Store) Event(ctx context.Context, id string) (StoredEvent, error) {
	var e StoredEvent
	err := s.pool.QueryRow(ctx, `SELECT id, type, job_id::text, payload, created_at FROM webhook_events WHERE id = $1`, id).
		Scan(&e.ID, &e.Type, &e.JobID, &e.Payload, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredEvent{}, ErrEventNotFound
	}
	if err != nil {
		return StoredEvent{}, fmt.Errorf("store: event: %w", err)
	}
	return e, nil
}

// Delivery is one attempt to deliver an event to an endpoint.
type Delivery struct {
	ID          int64          `json:"id"`
	EndpointID  string         `json:"endpoint_id"`
	EventID     string         `json:"event_id"`
	EventType   events.Type    `json:"event_type"`
	Attempt     int            `json:"attempt"`
	Outcome     events.Outcome `json:"outcome"`
	StatusCode  int            `json:"status_code,omitempty"`
	Error       string         `json:"error,omitempty"`
	DurationMS  int64          `json:"duration_ms"`
	Manual      bool           `json:"manual"`
	AttemptedAt time.Time      `json:"attempted_at"`
}

// LogDelivery appends an attempt to the log, numbered after the endpoint's
// earlier attempts of the event, and drops the oldest beyond
// MaxDeliveriesPerEvent. It returns the row as stored.
func (s *Store) LogDelivery(ctx context.Context, d Delivery) (Delivery, error) {
	var status, errText any
	if d.StatusCode != 0 {
		status = d.StatusCode
	}
	if d.Error != "" {
		errText = d.Error
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO webhook_deliveries
				(endpoint_id, event_id, attempt, outcome, status_code, error, duration_ms, manual)
			SELECT $1, $2, COALESCE(max(attempt), 0) + 1, $3, $4, $5, $6, $7
			  FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2
			RETURNING id, attempt, attempted_at`,
			d.EndpointID, d.EventID, string(d.Outcome), status, errText, d.DurationMS, d.Manual).
			Scan(&d.ID, &d.Attempt, &d.AttemptedAt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2 AND id IN (
				SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2
				 ORDER BY id DESC OFFSET $3)`, d.EndpointID, d.EventID, MaxDeliveriesPerEvent)
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("store: log delivery: %w", err)
	}
	return d, nil
}

// Settled reports whether the event needs no more automatic deliveries to
// the endpoint: one was acknowledged (a 2xx, manual ones included) or
// rejected for good by an automatic attempt.
func (s *Store) Settled(ctx context.Context, endpointID, eventID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_deliveries
		WHERE endpoint_id = $1 AND event_id = $2 AND (outcome = 'delivered' OR (outcome = 'rejected' AND NOT manual)))`,
		endpointID, eventID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: delivery settled: %w", err)
	}
	return ok, nil
}

// Deliveries lists an endpoint's attempts, newest first, at most limit of
// them, starting after the attempt with ID before (0: from the newest).
func (s *Store) Deliveries(ctx context.Context, endpointID string, before int64, limit int) ([]Delivery, error) {
	if uuid.Validate(endpointID) != nil {
		return nil, ErrEndpointNotFound
	}
	rows, err := s.pool.Query(ctx, `SELECT d.id, d.endpoint_id::text, d.event_id, e.type, d.attempt, d.outcome,
			COALESCE(d.status_code, 0), COALESCE(d.error, ''), d.duration_ms, d.manual, d.attempted_at
		  FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
		 WHERE d.endpoint_id = $1 AND ($2 = 0 OR d.id < $2)
		 ORDER BY d.id DESC LIMIT $3`, endpointID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Attempt, &d.Outcome,
			&d.StatusCode, &d.Error, &d.DurationMS, &d.Manual, &d.AttemptedAt); err != nil {
			return nil, fmt.Errorf("store: deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	return out, nil
}
