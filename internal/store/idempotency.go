package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Idempotency is what a request learns when it reserves its key.
type Idempotency struct {
	// JobID is the job this key creates: new, or the one an earlier
	// attempt began (which this request resumes).
	JobID string
	// Replay, when set, is the first answer, to be returned as it is.
	Replay *StoredResponse
	// Conflict says why the key cannot be used now: ErrIdempotencyInFlight
	// or ErrIdempotencyMismatch; nil otherwise.
	Conflict error
}

// StoredResponse is a kept answer.
type StoredResponse struct {
	Status int
	Body   []byte
}

// Reasons a reservation is refused.
var (
	ErrIdempotencyInFlight = errors.New("store: a request with this idempotency key is in flight")
	ErrIdempotencyMismatch = errors.New("store: idempotency key used with a different request")
)

// ReserveIdempotency claims (site, key) for a request with this
// fingerprint, for lease, offering jobID for a first request. A key older
// than ttl is forgotten and claimed afresh. An earlier attempt that ended
// without an answer (its lease lapsed or it was released) is resumed: the
// same job ID comes back.
func (s *Store) ReserveIdempotency(ctx context.Context, site string, keyHash, requestHash []byte, jobID string, lease, ttl time.Duration) (Idempotency, error) {
	var res Idempotency
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			reqHash  []byte
			job      string
			locked   *time.Time
			status   *int
			body     []byte
			inserted bool
			expired  bool
			now      time.Time
		)
		err := tx.QueryRow(ctx, `INSERT INTO idempotency_keys AS k (site, key_hash, request_hash, job_id, locked_until)
			VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
			ON CONFLICT (site, key_hash) DO UPDATE SET created_at = k.created_at
			RETURNING k.request_hash, k.job_id::text, k.locked_until, k.response_status, k.response_body,
				(xmax = 0), now(), k.created_at < now() - make_interval(secs => $6)`,
			site, keyHash, requestHash, jobID, lease.Seconds(), ttl.Seconds()).
			Scan(&reqHash, &job, &locked, &status, &body, &inserted, &now, &expired)
		if err != nil {
			return err
		}
		if inserted {
			res = Idempotency{JobID: jobID}
			return nil
		}
		// The upsert locks the row until this transaction ends, so the
		// checks below cannot race with another request's.
		switch {
		case expired:
			_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET request_hash = $3, job_id = $4,
				locked_until = now() + make_interval(secs => $5), response_status = NULL, response_body = NULL, created_at = now()
				WHERE site = $1 AND key_hash = $2`, site, keyHash, requestHash, jobID, lease.Seconds())
			res = Idempotency{JobID: jobID}
			return err
		case !bytes.Equal(reqHash, requestHash):
			res = Idempotency{JobID: job, Conflict: ErrIdempotencyMismatch}
		case status != nil:
			res = Idempotency{JobID: job, Replay: &StoredResponse{Status: *status, Body: body}}
		case locked != nil && locked.After(now):
			res = Idempotency{JobID: job, Conflict: ErrIdempotencyInFlight}
		default: // an earlier attempt stopped without an answer: resume it
			_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => $3)
				WHERE site = $1 AND key_hash = $2`, site, keyHash, lease.Seconds())
			res = Idempotency{JobID: job}
			return err
		}
		return nil
	})
	if err != nil {
		return Idempotency{}, fmt.Errorf("store: reserve idempotency key: %w", err)
	}
	return res, nil
}

// CompleteIdempotency keeps the answer to replay and frees the key.
func (s *Store) CompleteIdempotency(ctx context.Context, site string, keyHash []byte, status int, body []byte) error {
	_, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET response_status = $3, response_body = $4, locked_until = NULL
		WHERE site = $1 AND key_hash = $2`, site, keyHash, status, body)
	if err != nil {
		return fmt.Errorf("store: complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotency frees the key without an answer, so that a retry
// resumes at once (the attempt failed in a way a retry can fix).
func (s *Store) ReleaseIdempotency(ctx context.Context, site string, keyHash []byte) error {
	_, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET locked_until = now()
		WHERE site = $1 AND key_hash = $2 AND response_status IS NULL`, site, keyHash)
	if err != nil {
		return fmt.Errorf("store: release idempotency key: %w", err)
	}
	return nil
}

// ForgetIdempotencyKeys deletes up to limit keys older than ttl, the oldest
// first, and says how many went: the table stays as small as a day of jobs.
func (s *Store) ForgetIdempotencyKeys(ctx context.Context, ttl time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
		SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)
		ORDER BY created_at LIMIT $2)`, ttl.Seconds(), limit)
	if err != nil {
		return 0, fmt.Errorf("store: forget idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
