package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"hires/internal/sitekey"
	"hires/internal/store"
)

// siteKeyCtx is where requireSite leaves the authenticated key.
const siteKeyCtx = "hires.site_key"

var errUnauthorized = fail(http.StatusUnauthorized, "unauthorized",
	"a valid site key is required: Authorization: Bearer hires_sk_…")

// requireSite admits requests bearing an active site key.
func (s *Server) requireSite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, err := s.siteKey(c)
		if err != nil {
			return err
		}
		c.Set(siteKeyCtx, key)
		return next(c)
	}
}

// siteKey authenticates the request's bearer as a site key. Anything but
// an active key is errUnauthorized, whatever the reason.
func (s *Server) siteKey(c echo.Context) (store.SiteKey, error) {
	cred, ok := sitekey.Bearer(c.Request().Header.Get(echo.HeaderAuthorization))
	if !ok || !sitekey.Valid(cred) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hires"`)
		return store.SiteKey{}, errUnauthorized
	}
	key, err := s.store.Authenticate(c.Request().Context(), sitekey.Hash(cred))
	if errors.Is(err, store.ErrSiteKeyNotFound) {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hires", error="invalid_token"`)
		return store.SiteKey{}, errUnauthorized
	}
	return key, err
}

func siteKeyOf(c echo.Context) store.SiteKey {
	k, _ := c.Get(siteKeyCtx).(store.SiteKey)
	return k
}

// limitCreation takes one job creation from the key's allowance, shared by
// every replica (a site would notice a limit that grew with them).
func (s *Server) limitCreation(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := siteKeyOf(c)
		n := s.cfg.RateLimitCreate
		if key.CreatePerMinute != nil {
			n = *key.CreatePerMinute
		}
		ok, wait, err := s.store.Allow(c.Request().Context(), "create:"+key.ID, n, max(n/4, 2))
		if err != nil {
			return err
		}
		if !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			return fail(http.StatusTooManyRequests, "rate_limited", "too many jobs created with this key; retry after the time in Retry-After")
		}
		return next(c)
	}
}

// SiteKeyView is a site key as admins see it; Key is set once, on creation.
type SiteKeyView struct {
	ID              string     `json:"id"`
	Site            string     `json:"site"`
	Name            string     `json:"name"`
	Prefix          string     `json:"prefix"`
	Key             string     `json:"key,omitempty"`
	CreatePerMinute *int       `json:"create_per_minute"`
	CreatedAt       time.Time  `json:"created_at"`
	LastUsedAt      *time.Time `json:"last_used_at"`
	RevokedAt       *time.Time `json:"revoked_at"`
}

func siteKeyView(k store.SiteKey) SiteKeyView {
	return SiteKeyView{ID: k.ID, Site: k.Site, Name: k.Name, Prefix: k.Shown, CreatePerMinute: k.CreatePerMinute,
		CreatedAt: k.CreatedAt.UTC(), LastUsedAt: utc(k.LastUsedAt), RevokedAt: utc(k.RevokedAt)}
}

// CreateSiteKeyRequest is the body of POST /v1/admin/site-keys.
type CreateSiteKeyRequest struct {
	Name            string `json:"name"`
	Site            string `json:"site,omitempty"`
	CreatePerMinute *int   `json:"create_per_minute,omitempty"`
}

// DefaultSite is the site of keys created without one: most services sell
// for one shop.
const DefaultSite = "default"

func (s *Server) createSiteKey(c echo.Context) error {
	req, err := decodeStrict[CreateSiteKeyRequest](c.Request().Body)
	if err != nil {
		return err
	}
	nk, err := NewSiteKeyFor(req, sitekey.New())
	if err != nil {
		return err
	}
	key, _, err := s.store.CreateSiteKey(c.Request().Context(), nk.Record)
	if err != nil {
		return err
	}
	v := siteKeyView(key)
	v.Key = nk.Key
	s.log.InfoContext(c.Request().Context(), "site key created", "key_id", key.ID, "site", key.Site, "name", key.Name)
	return c.JSON(http.StatusCreated, v)
}

// NewSiteKey is a checked request for a key, and the key.
type NewSiteKey struct {
	Key    string
	Record store.NewSiteKey
}

// NewSiteKeyFor checks req and prepares key for the store; the CLI and
// `make run` share it with the admin API.
func NewSiteKeyFor(req CreateSiteKeyRequest, key string) (NewSiteKey, error) {
	req.Name, req.Site = strings.TrimSpace(req.Name), strings.TrimSpace(req.Site)
	if req.Site == "" {
		req.Site = DefaultSite
	}
	for _, f := range []struct{ field, v string }{{"name", req.Name}, {"site", req.Site}} {
		if f.v == "" || utf8.RuneCountInString(f.v) > 100 || strings.ContainsFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return NewSiteKey{}, invalidField(f.field, "invalid_"+f.field, f.field+" must be 1-100 printable characters")
		}
	}
	if p := req.CreatePerMinute; p != nil && (*p < 1 || *p > 100_000) {
		return NewSiteKey{}, invalidField("create_per_minute", "invalid_create_per_minute", "create_per_minute must be between 1 and 100000")
	}
	if !sitekey.Valid(key) {
		return NewSiteKey{}, invalidField("key", "invalid_key", "a site key is hires_sk_ followed by 43 letters and digits")
	}
	return NewSiteKey{Key: key, Record: store.NewSiteKey{Site: req.Site, Name: req.Name, Shown: sitekey.Shown(key),
		Hash: sitekey.Hash(key), CreatePerMinute: req.CreatePerMinute}}, nil
}

func (s *Server) listSiteKeys(c echo.Context) error {
	keys, err := s.store.SiteKeys(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]SiteKeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, siteKeyView(k))
	}
	return c.JSON(http.StatusOK, map[string]any{"site_keys": out})
}

func (s *Server) revokeSiteKey(c echo.Context) error {
	key, err := s.store.RevokeSiteKey(c.Request().Context(), c.Param("id"))
	if errors.Is(err, store.ErrSiteKeyNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(c.Request().Context(), "site key revoked", "key_id", key.ID, "site", key.Site)
	return c.JSON(http.StatusOK, siteKeyView(key))
}
