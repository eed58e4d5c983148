-- +goose Up
-- Download links are looked up by the SHA-256 of their token, so the
-- timing of the index lookup tells nothing about the token itself; the
-- token is then compared in constant time (store.GetByDownloadToken).
ALTER TABLE jobs ADD COLUMN download_token_hash bytea;
UPDATE jobs SET download_token_hash = sha256(convert_to(download_token, 'UTF8'))
    WHERE download_token IS NOT NULL;
CREATE UNIQUE INDEX jobs_download_token_hash ON jobs (download_token_hash);
ALTER TABLE jobs ADD CONSTRAINT jobs_download_token_hashed
    CHECK ((download_token IS NULL) = (download_token_hash IS NULL));

-- +goose Down
ALTER TABLE jobs DROP CONSTRAINT jobs_download_token_hashed;
DROP INDEX jobs_download_token_hash;
ALTER TABLE jobs DROP COLUMN download_token_hash;
