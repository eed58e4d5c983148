package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
)

// checkTimeout bounds each readiness check.
const checkTimeout = 3 * time.Second

// Readiness answers /readyz: 200 when every check passes, else 503 with a
// JSON body naming what is not ready. Check errors are logged, never
// answered, since they may name hosts.
type Readiness struct {
	log    *slog.Logger
	mu     sync.Mutex
	checks []check
}

type check struct {
	name string
	fn   func(context.Context) error
}

// NewReadiness makes a readiness handler without checks (always ready).
func NewReadiness(logger *slog.Logger) *Readiness {
	if logger == nil {
		logger = slog.Default()
	}
	return &Readiness{log: logger}
}

// Check adds a named check; it fails when fn returns an error.
func (r *Readiness) Check(name string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, check{name: name, fn: fn})
}

// Flag adds a named check that fails until the flag is set, such as
// "migrations" once store.Migrate ran.
func (r *Readiness) Flag(name string) *Flag {
	f := &Flag{}
	r.Check(name, func(context.Context) error {
		if !f.ok.Load() {
			return errNotYet
		}
		return nil
	})
	return f
}

var errNotYet = errors.New("not yet")

// Flag is a readiness condition set by the process.
type Flag struct{ ok atomic.Bool }

// Set marks the condition met (true) or not (false).
func (f *Flag) Set(ok bool) { f.ok.Store(ok) }

// ReadyBody is /readyz's answer.
type ReadyBody struct {
	Status   string            `json:"status"`              // "ready" or "not_ready"
	Checks   map[string]string `json:"checks"`              // name: "ok" or "failing"
	NotReady []string          `json:"not_ready,omitempty"` // failing checks, sorted
}

// Evaluate runs every check at once, each within checkTimeout.
func (r *Readiness) Evaluate(ctx context.Context) ReadyBody {
	r.mu.Lock()
	checks := append([]check(nil), r.checks...)
	r.mu.Unlock()
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			errs[i] = c.fn(cctx)
		})
	}
	wg.Wait()
	body := ReadyBody{Status: "ready", Checks: make(map[string]string, len(checks))}
	for i, c := range checks {
		if errs[i] == nil {
			body.Checks[c.name] = "ok"
			continue
		}
		body.Checks[c.name] = "failing"
		body.NotReady = append(body.NotReady, c.name)
		r.log.WarnContext(ctx, "not ready", "check", c.name, "error", errs[i])
	}
	if len(body.NotReady) > 0 {
		body.Status = "not_ready"
		sort.Strings(body.NotReady)
	}
	return body
}

// ServeHTTP answers /readyz.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body := r.Evaluate(req.Context())
	status := http.StatusOK
	if body.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

// Healthz answers /healthz: the process is alive.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// TemporalCheck is a readiness check calling the Temporal frontend's health
// check through c.
func TemporalCheck(c client.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
}
