-- +goose Up
-- Admins find a customer's jobs by email (GET /v1/admin/jobs?email=), an
-- exact match on the address the site gave (email) or the one Stripe
-- reported (customer_email); the email no longer reaches Temporal's
-- visibility store. Partial: most rows of unpaid jobs have no
-- customer_email.
CREATE INDEX jobs_email_idx ON jobs (email) WHERE email IS NOT NULL;
CREATE INDEX jobs_customer_email_idx ON jobs (customer_email) WHERE customer_email IS NOT NULL;

-- +goose Down
DROP INDEX jobs_customer_email_idx;
DROP INDEX jobs_email_idx;
