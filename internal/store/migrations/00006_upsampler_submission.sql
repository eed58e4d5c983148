-- +goose Up
-- Each submission to Upsampler is numbered, and the number is noted before
-- it is sent: a retry that finds its number noted, but no Upsampler job
-- recorded, knows the first try may have reached Upsampler, and waits for
-- that submission's callback instead of sending the image again.
ALTER TABLE jobs ADD COLUMN upsampler_submission integer CHECK (upsampler_submission > 0);
-- A refund Stripe refused goes on under a new idempotency key: the next
-- key's number, and when the refusals began, outlive the workflow that
-- made them, so that a refund taken over by the sweep neither reuses a key
-- whose refusal Stripe replays for 24 hours nor restarts its deadline.
ALTER TABLE jobs ADD COLUMN refund_attempt integer NOT NULL DEFAULT 0 CHECK (refund_attempt >= 0),
    ADD COLUMN refund_refused_at timestamptz;

-- +goose Down
ALTER TABLE jobs DROP COLUMN refund_refused_at, DROP COLUMN refund_attempt;
ALTER TABLE jobs DROP COLUMN upsampler_submission;
