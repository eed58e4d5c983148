-- +goose Up
-- Refunds (Stripe's status, its confirmation by charge.refunded, and the
-- last refusal when Stripe refused one), admin retries, and which attempt
-- an Upsampler job belongs to.
ALTER TABLE jobs
    ADD COLUMN refund_status       text,
    ADD COLUMN refund_confirmed_at timestamptz,
    ADD COLUMN refund_error        text,
    ADD COLUMN attempt             integer NOT NULL DEFAULT 0,
    ADD COLUMN upsampler_attempt   integer;

CREATE INDEX jobs_owed_idx ON jobs (updated_at)
    WHERE status IN ('awaiting_payment', 'pending', 'processing')
       OR status IN ('failed', 'abandoned') AND payment_status IN ('paid', 'refund_failed');

-- +goose Down
DROP INDEX jobs_owed_idx;
ALTER TABLE jobs
    DROP COLUMN refund_status,
    DROP COLUMN refund_confirmed_at,
    DROP COLUMN refund_error,
    DROP COLUMN attempt,
    DROP COLUMN upsampler_attempt;
