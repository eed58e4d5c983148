-- +goose Up
-- The outbox: every email and integration event a change causes, written
-- in the same transaction as the change, then delivered by the worker's
-- dispatcher (internal/notify), at least once, retried with backoff until
-- delivered or given up. key names the message: email:<kind>:<seq> or
-- event:<type>:<attempt>. It replaces the notifications log: a delivered
-- message is one whose row is done.
CREATE TABLE outbox (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key         text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- not before then (an expiry reminder), then the next try's time
    due_at      timestamptz NOT NULL DEFAULT now(),
    attempts    int NOT NULL DEFAULT 0,
    -- delivered, or not needed any more (a reminder after the download)
    done_at     timestamptz,
    given_up_at timestamptz,
    last_error  text,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE done_at IS NULL AND given_up_at IS NULL;

DROP TABLE notifications;

-- +goose Down
CREATE TABLE notifications (
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key     text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, key)
);
DROP TABLE outbox;
