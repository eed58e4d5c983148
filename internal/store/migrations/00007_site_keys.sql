-- +goose Up
-- Selling sites authenticate with keys; the database keeps only a hash.
-- A site may hold several active keys at once, to rotate without downtime.
CREATE TABLE site_keys (
    id                text PRIMARY KEY,
    site              text NOT NULL CHECK (site <> ''),
    name              text NOT NULL CHECK (name <> ''),
    shown             text NOT NULL,            -- the first characters, for lists
    key_hash          bytea NOT NULL UNIQUE,
    create_per_minute integer CHECK (create_per_minute > 0), -- NULL: the service's default
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_used_at      timestamptz,
    revoked_at        timestamptz
);

-- The site that created a job (NULL for jobs from before site keys).
ALTER TABLE jobs ADD COLUMN site text;

-- Idempotency keys are scoped to a site, as Stripe scopes them to an
-- account: the first answer is kept and replayed; a request in flight holds
-- the key until locked_until, so a concurrent duplicate is refused.
CREATE TABLE idempotency_keys (
    site            text NOT NULL,
    key_hash        bytea NOT NULL,
    request_hash    bytea NOT NULL,
    job_id          uuid NOT NULL,
    locked_until    timestamptz,
    response_status integer,
    response_body   jsonb,   -- never the access token: it is derived again on replay
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, key_hash)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Request rate limits shared by every API replica: one row per bucket, its
-- theoretical arrival time (GCRA).
CREATE TABLE rate_limits (
    bucket text PRIMARY KEY,
    tat    timestamptz NOT NULL
);

-- +goose Down
DROP TABLE rate_limits;
DROP TABLE idempotency_keys;
ALTER TABLE jobs DROP COLUMN site;
DROP TABLE site_keys;
