-- +goose Up
-- Integration event endpoints (Standard Webhooks), managed through the admin
-- API. The secrets sign deliveries, so they are kept as issued; previous_secret
-- signs too until previous_secret_expires_at (rotation overlap).
CREATE TABLE webhook_endpoints (
    id                         uuid PRIMARY KEY,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    event_types                text[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    disabled_at                timestamptz
);

-- Every event built, with the exact bytes sent, so that a retry or a manual
-- redelivery repeats it byte for byte under the same webhook-id.
CREATE TABLE webhook_events (
    id         text PRIMARY KEY,
    type       text NOT NULL,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_job_id ON webhook_events (job_id);

-- One row per delivery attempt. At most 100 rows are kept per endpoint and
-- event (the oldest go first), which bounds the log with the events.
CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'rejected')),
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    manual       boolean NOT NULL DEFAULT false,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, endpoint_id, id DESC);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
