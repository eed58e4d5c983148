package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hires/internal/config"
)

func TestUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"Temporal unavailable", serviceerror.NewUnavailable("history down"), true},
		{"Temporal unavailable, wrapped", fmt.Errorf("start job workflow: %w", serviceerror.NewUnavailable("x")), true},
		{"Temporal overloaded", serviceerror.NewResourceExhausted(0, "busy"), true},
		{"Temporal deadline", serviceerror.NewDeadlineExceeded("slow"), true},
		{"gRPC unavailable status", fmt.Errorf("dial: %w", status.Error(codes.Unavailable, "connection refused")), true},
		{"connection refused", fmt.Errorf("store: %w", refused), true},
		{"PostgreSQL shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"PostgreSQL starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"PostgreSQL connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"a constraint violated", &pgconn.PgError{Code: "23505"}, false},
		{"Temporal invalid argument", serviceerror.NewInvalidArgument("bad"), false},
		{"gRPC invalid argument", status.Error(codes.InvalidArgument, "bad"), false},
		{"a bug", errors.New("nil map"), false},
		{"nil", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := unavailable(tt.err); got != tt.want {
				t.Fatalf("unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// While Temporal is away, POST /v1/jobs answers a retryable 503 (not 500)
// and holds nothing back: the same request with the same Idempotency-Key,
// once Temporal is back, resumes the same job and starts its workflow.
func TestCreateJobWhileTemporalIsAway(t *testing.T) {
	app := newTestApp(t, config.Config{MarkupPercent: 200, MaxOutputMegapixels: 400,
		PublicBaseURL: "https://hires.example.com", Currency: "usd", PaymentTimeout: time.Hour})
	app.temporal.down = []error{serviceerror.NewUnavailable("history service unavailable")}
	body := `{"image_url":"https://images.example.com/a.png","resolution":"4x","image_width":400,"image_height":300}`
	send := func() (int, string, CreateJobResponse) {
		req, _ := http.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "order-77")
		req.Header.Set("Authorization", "Bearer "+testSiteKey)
		rec := app.do(req, "192.0.2.1:1234")
		var out CreateJobResponse
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, rec.Header().Get("Retry-After"), out
	}
	code, retry, _ := send()
	if code != http.StatusServiceUnavailable || retry == "" {
		t.Fatalf("during the outage: %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	calls, _, _ := app.store.record()
	if !strings.Contains(strings.Join(calls, ","), "ReleaseIdempotency") {
		t.Fatalf("the key was not released for the retry: %v", calls)
	}
	code, _, out := send()
	if code != http.StatusCreated {
		t.Fatalf("after the outage: %d, want 201", code)
	}
	if len(app.store.jobs) != 1 || len(app.temporal.startedInputs()) != 1 || len(app.stripe.calls) != 1 {
		t.Fatalf("jobs %d, starts %d, Stripe calls %d: want one of each", len(app.store.jobs), len(app.temporal.startedInputs()), len(app.stripe.calls))
	}
	if _, ok := app.store.jobs[out.ID]; !ok {
		t.Fatalf("answered job %s is not the stored one", out.ID)
	}
}
