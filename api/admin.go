package api

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"hires/internal/jobs"
	"hires/internal/store"
)

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t, ok := bearer(c)
		if !ok || subtle.ConstantTimeCompare([]byte(t), []byte(s.cfg.AdminToken)) != 1 {
			return fail(http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
		}
		return next(c)
	}
}

// JobList answers GET /v1/admin/jobs.
type JobList struct {
	Jobs []AdminJobView `json:"jobs"`
	// NextCursor continues the listing (pass it as ?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// listJobs is the seed's get_jobs: ?status=a,b&payment_status=c&email=x&limit=20&order_by=created_at&cursor=...
// (payment_status=refund_needs_attention lists the refunds waiting for a
// person; email finds a customer's jobs, which Temporal no longer can).
func (s *Server) listJobs(c echo.Context) error {
	f := store.ListFilter{Limit: 20, OrderBy: "created_at"}
	var err error
	if f.Statuses, err = listParam(c, "status", jobs.Status.Valid); err != nil {
		return err
	}
	if f.PaymentStatuses, err = listParam(c, "payment_status", jobs.PaymentStatus.Valid); err != nil {
		return err
	}
	if f.Email, err = emailParam(c); err != nil {
		return err
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return invalidField("limit", "invalid_limit", "limit must be between 1 and 100")
		}
		f.Limit = n
	}
	if v := c.QueryParam("order_by"); v != "" {
		if !slices.Contains(store.ListOrderColumns, v) {
			return invalidField("order_by", "invalid_order_by", "order_by must be one of "+strings.Join(store.ListOrderColumns, ", "))
		}
		f.OrderBy = v
	}
	if v := c.QueryParam("cursor"); v != "" {
		cur, err := decodeCursor(v)
		if err != nil {
			return invalidField("cursor", "invalid_cursor", "cursor must be a next_cursor value from a previous page")
		}
		f.After = &cur
	}
	list, err := s.store.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := JobList{Jobs: make([]AdminJobView, 0, len(list))}
	for _, j := range list {
		out.Jobs = append(out.Jobs, s.adminView(j))
	}
	if len(list) == f.Limit {
		out.NextCursor = encodeCursor(store.CursorOf(list[len(list)-1], f.OrderBy))
	}
	return c.JSON(http.StatusOK, out)
}

// emailParam reads ?email=: one address, matched exactly (as stored).
func emailParam(c echo.Context) (string, error) {
	v, ok := c.QueryParams()["email"]
	if !ok {
		return "", nil
	}
	if len(v) != 1 {
		return "", invalidField("email", "invalid_email", "email must be given once")
	}
	if a, err := mail.ParseAddress(v[0]); err != nil || a.Address != v[0] || len(v[0]) > 254 {
		return "", invalidField("email", "invalid_email", "email must be one valid address, such as you@example.com")
	}
	return v[0], nil
}

// listParam reads a comma-separated query parameter of known values.
func listParam[T ~string](c echo.Context, name string, valid func(T) bool) ([]T, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	var out []T
	for _, part := range strings.Split(v, ",") {
		x := T(strings.TrimSpace(part))
		if !valid(x) {
			return nil, invalidField(name, "invalid_"+name, "unknown "+strings.ReplaceAll(name, "_", " ")+" "+strconv.Quote(string(x)))
		}
		out = append(out, x)
	}
	return out, nil
}

// AdminJob answers GET /v1/admin/jobs/{id}: the record and its audit trail.
type AdminJob struct {
	AdminJobView
	Events []store.Event `json:"events"`
}

func (s *Server) adminGetJob(c echo.Context) error {
	j, err := s.adminJob(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) jobEvents(c echo.Context) error {
	j, err := s.adminJob(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"events": j.Events})
}

// adminJob loads the job named in the path, with its audit trail.
func (s *Server) adminJob(c echo.Context) (AdminJob, error) {
	job, err := s.jobIf(c, func(store.Job) bool { return true })
	if err != nil {
		return AdminJob{}, err
	}
	events, err := s.store.Events(c.Request().Context(), job.ID)
	if err != nil {
		return AdminJob{}, err
	}
	return AdminJob{AdminJobView: s.adminView(job), Events: events}, nil
}

// Cursors are opaque to clients: base64url of "<RFC 3339 time>|<job ID>".
func encodeCursor(c store.Cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.At.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

func decodeCursor(s string) (store.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.Cursor{}, err
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return store.Cursor{}, errors.New("malformed cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return store.Cursor{}, err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return store.Cursor{}, err
	}
	return store.Cursor{At: t, ID: u.String()}, nil
}
