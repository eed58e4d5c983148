package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SiteKey is a selling site's API key, without the key itself.
type SiteKey struct {
	ID    string `db:"id"`
	Site  string `db:"site"`
	Name  string `db:"name"`
	Shown string `db:"shown"`
	// CreatePerMinute overrides the service's job-creation limit for this key.
	CreatePerMinute *int       `db:"create_per_minute"`
	CreatedAt       time.Time  `db:"created_at"`
	LastUsedAt      *time.Time `db:"last_used_at"`
	RevokedAt       *time.Time `db:"revoked_at"`
}

// NewSiteKey is a key to record: its hash, never the key.
type NewSiteKey struct {
	Site, Name, Shown string
	Hash              []byte
	CreatePerMinute   *int
}

// ErrSiteKeyNotFound: no such key (or, for Authenticate, a revoked one).
var ErrSiteKeyNotFound = errors.New("store: site key not found")

const siteKeyColumns = `id, site, name, shown, create_per_minute, created_at, last_used_at, revoked_at`

// CreateSiteKey records a key. A key whose hash is already recorded is
// returned as it is (created=false): `make run` re-registers its local key.
func (s *Store) CreateSiteKey(ctx context.Context, k NewSiteKey) (key SiteKey, created bool, err error) {
	rows, err := s.pool.Query(ctx, `INSERT INTO site_keys (id, site, name, shown, key_hash, create_per_minute)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_hash) DO NOTHING RETURNING `+siteKeyColumns,
		"sk_"+uuid.NewString(), k.Site, k.Name, k.Shown, k.Hash, k.CreatePerMinute)
	if err == nil {
		key, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SiteKey])
	}
	if errors.Is(err, pgx.ErrNoRows) {
		key, err = s.siteKeyWhere(ctx, `key_hash = $1`, k.Hash)
		return key, false, err
	}
	if err != nil {
		return SiteKey{}, false, fmt.Errorf("store: create site key: %w", err)
	}
	return key, true, nil
}

func (s *Store) siteKeyWhere(ctx context.Context, where string, arg any) (SiteKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+siteKeyColumns+` FROM site_keys WHERE `+where, arg)
	if err != nil {
		return SiteKey{}, fmt.Errorf("store: site key: %w", err)
	}
	k, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[SiteKey])
	if errors.Is(err, pgx.ErrNoRows) {
		return SiteKey{}, ErrSiteKeyNotFound
	}
	if err != nil {
		return SiteKey{}, fmt.Errorf("store: site key: %w", err)
	}
	return k, nil
}

// Authenticate returns the active key with this hash, or ErrSiteKeyNotFound.
// It notes when the key was last used, at most once a minute, so that a
// busy site does not write on every request.
func (s *Store) Authenticate(ctx context.Context, hash []byte) (SiteKey, error) {
	k, err := s.siteKeyWhere(ctx, `key_hash = $1 AND revoked_at IS NULL`, hash)
	if err != nil {
		return SiteKey{}, err
	}
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
		if err := s.pool.QueryRow(ctx, `UPDATE site_keys SET last_used_at = now() WHERE id = $1 RETURNING last_used_at`, k.ID).Scan(&k.LastUsedAt); err != nil {
			return SiteKey{}, fmt.Errorf("store: note site key use: %w", err)
		}
	}
	return k, nil
}

// SiteKeys lists every key, newest first, revoked ones included.
func (s *Store) SiteKeys(ctx context.Context) ([]SiteKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+siteKeyColumns+` FROM site_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list site keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByName[SiteKey])
	if err != nil {
		return nil, fmt.Errorf("store: list site keys: %w", err)
	}
	return keys, nil
}

// RevokeSiteKey stops key id from authenticating; revoking twice keeps the
// first time.
func (s *Store) RevokeSiteKey(ctx context.Context, id string) (SiteKey, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE site_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id); err != nil {
		return SiteKey{}, fmt.Errorf("store: revoke site key: %w", err)
	}
	return s.siteKeyWhere(ctx, `id = $1`, id)
}
