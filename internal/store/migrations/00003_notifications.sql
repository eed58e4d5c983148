-- +goose Up
-- Emails and integration events already delivered, so that a retried or
-- replayed activity does not deliver them again. key names the message and
-- its target, e.g. "email:image_ready:1" or "event:job.completed:0:https://...".
CREATE TABLE notifications (
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key     text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, key)
);

-- When the customer first downloaded the result: no expiry reminder after that.
ALTER TABLE jobs ADD COLUMN downloaded_at timestamptz;

-- +goose Down
ALTER TABLE jobs DROP COLUMN downloaded_at;
DROP TABLE notifications;
