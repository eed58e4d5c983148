-- +goose Up
CREATE TABLE jobs (
    id                   uuid PRIMARY KEY,
    status               text NOT NULL CHECK (status IN
                           ('awaiting_payment','pending','processing','completed','failed','abandoned')),
    -- what the site asked for
    image_url            text NOT NULL,
    resolution           text NOT NULL CHECK (resolution IN ('4x','8x')),
    email                text,
    post_id              bigint NOT NULL DEFAULT 0 CHECK (post_id >= 0),
    attachment_id        bigint CHECK (attachment_id >= 0),
    image_width          integer NOT NULL CHECK (image_width > 0),
    image_height         integer NOT NULL CHECK (image_height > 0),
    output_width         integer NOT NULL,
    output_height        integer NOT NULL,
    -- access: only hashes of the creator's token and of the idempotency key
    access_token_hash    bytea NOT NULL,
    idempotency_key_hash bytea UNIQUE,
    request_hash         bytea NOT NULL,
    callback_secret      text NOT NULL,
    -- price quote frozen at creation (integer cents)
    currency             text NOT NULL,
    price_cents          bigint NOT NULL CHECK (price_cents > 0),
    markup_percent       integer NOT NULL,
    estimated_credits    bigint NOT NULL,
    estimated_cost_cents bigint NOT NULL,
    -- Stripe
    checkout_session_id  text,
    checkout_url         text,
    checkout_expires_at  timestamptz,
    payment_status       text NOT NULL DEFAULT 'pending',
    payment_intent_id    text,
    amount_paid_cents    bigint,
    paid_currency        text,
    customer_email       text,
    paid_at              timestamptz,
    refund_id            text,
    refund_amount_cents  bigint,
    refunded_at          timestamptz,
    -- Upsampler
    upsampler_job_id     text,
    upsampler_credits    numeric(12,2),
    upsampler_cost_cents bigint,
    processing_started_at   timestamptz,
    processing_completed_at timestamptz,
    failed_at            timestamptz,
    failure_reason       text,
    failure_detail       text,
    -- result and download
    result_key           text,
    result_content_type  text,
    result_bytes         bigint,
    result_sha256        text,
    result_width         integer,
    result_height        integer,
    download_token       text UNIQUE,
    download_expires_at  timestamptz,
    download_expired_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC);
CREATE INDEX jobs_payment_intent_idx ON jobs (payment_intent_id);
CREATE INDEX jobs_upsampler_job_idx ON jobs (upsampler_job_id);
CREATE INDEX jobs_checkout_session_idx ON jobs (checkout_session_id);

-- The audit trail: one row per status change (and per notable event on a
-- job, such as the download expiring), with what caused it.
CREATE TABLE job_events (
    id          bigserial PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    cause       text NOT NULL,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- Stripe delivers events at least once: the first delivery of an event ID
-- that reached its workflow is recorded here, later ones are acknowledged
-- without signalling again.
CREATE TABLE stripe_events (
    event_id    text PRIMARY KEY,
    type        text NOT NULL,
    job_id      uuid,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE stripe_events;
DROP TABLE job_events;
DROP TABLE jobs;
