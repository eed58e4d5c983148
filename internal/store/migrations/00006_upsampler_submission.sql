-- +goose Up
-- Each submission to Upsampler is numbered, and the number is noted before
-- it is sent: a retry that finds its number noted, but no Upsampler job
-- recorded, knows the first try may have reached Upsampler, and waits for
-- that submission's callback instead of sending the image again.
ALTER TABLE jobs ADD COLUMN upsampler_submission integer CHECK (upsampler_submission > 0);

-- +goose Down
ALTER TABLE jobs DROP COLUMN upsampler_submission;
