package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
	"hires/internal/metrics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const secretToken = "tok3nTHATmustNEVERshowUP0123456789"

// scrape returns the registry's /metrics page.
func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func newEcho(r *metrics.Registry) *echo.Echo {
	e := echo.New()
	e.Use(r.HTTP().Middleware(), middleware.Recover())
	e.GET("/v1/downloads/:token", func(c echo.Context) error { return c.String(http.StatusOK, "file") })
	e.GET("/v1/jobs/:id", func(c echo.Context) error { return echo.NewHTTPError(http.StatusNotFound) })
	e.POST("/v1/jobs", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	e.GET("/boom", func(c echo.Context) error { panic("boom") })
	return e
}

func do(e *echo.Echo, method, path string) int {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code
}

func TestMiddlewareLabelsByRoutePattern(t *testing.T) {
	r := metrics.New(quiet)
	e := newEcho(r)
	require.Equal(t, http.StatusOK, do(e, http.MethodGet, "/v1/downloads/"+secretToken))
	require.Equal(t, http.StatusOK, do(e, http.MethodGet, "/v1/downloads/another"+secretToken))
	require.Equal(t, http.StatusNotFound, do(e, http.MethodGet, "/v1/jobs/"+secretToken))
	require.Equal(t, http.StatusCreated, do(e, http.MethodPost, "/v1/jobs"))
	require.Equal(t, http.StatusInternalServerError, do(e, http.MethodGet, "/boom"))
	require.Equal(t, http.StatusNotFound, do(e, http.MethodGet, "/no/such/"+secretToken))
	require.Equal(t, http.StatusMethodNotAllowed, do(e, http.MethodDelete, "/v1/downloads/"+secretToken))
	require.Equal(t, http.StatusMethodNotAllowed, do(e, "BREW", "/v1/jobs"))

	reqs, err := metricValues(r, "hires_http_requests_total")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		`method="GET",route="/v1/downloads/:token",status="200"`:    2,
		`method="GET",route="/v1/jobs/:id",status="404"`:            1,
		`method="POST",route="/v1/jobs",status="201"`:               1,
		`method="GET",route="/boom",status="500"`:                   1,
		`method="GET",route="unmatched",status="404"`:               1,
		`method="DELETE",route="/v1/downloads/:token",status="405"`: 1,
		`method="other",route="/v1/jobs",status="405"`:              1,
	}, reqs)

	durations, err := metricValues(r, "hires_http_request_duration_seconds_count")
	require.NoError(t, err)
	require.Equal(t, 2.0, durations[`method="GET",route="/v1/downloads/:token"`])

	page := scrape(t, r)
	require.NotContains(t, page, secretToken, "a raw path reached /metrics")
	require.Contains(t, page, "go_goroutines")
	require.Contains(t, page, "process_")
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := metrics.New(quiet), metrics.New(quiet)
	require.Equal(t, http.StatusCreated, do(newEcho(a), http.MethodPost, "/v1/jobs"))
	newEcho(a) // a second server on the same registry registers nothing twice
	ra, err := metricValues(a, "hires_http_requests_total")
	require.NoError(t, err)
	rb, err := metricValues(b, "hires_http_requests_total")
	require.NoError(t, err)
	require.Len(t, ra, 1)
	require.Empty(t, rb)
}

func TestBusinessCounters(t *testing.T) {
	r := metrics.New(quiet)
	b := r.Business()
	require.Same(t, b, r.Business())
	b.JobFinished(metrics.JobCompleted)
	b.JobFinished(metrics.JobCompleted)
	b.JobFinished(metrics.JobFailed)
	b.Paid(1500)
	b.Paid(500)
	b.Refunded(1500)
	b.Refunded(-1) // ignored amount, still a refund
	b.UpsamplerRequest(metrics.UpsamplerSubmit, 300*time.Millisecond)
	b.UpsamplerRequest(metrics.UpsamplerStatus, 20*time.Millisecond)
	b.UpsamplerRequest(metrics.UpsamplerStatus, 30*time.Millisecond)
	b.UpsamplerCredits(2.5)
	r.Webhooks().VerificationFailed(metrics.SourceStripe)

	got := func(name string) map[string]float64 {
		v, err := metricValues(r, name)
		require.NoError(t, err)
		return v
	}
	require.Equal(t, map[string]float64{`status="completed"`: 2, `status="failed"`: 1, `status="abandoned"`: 0},
		got("hires_jobs_finished_total"))
	require.Equal(t, map[string]float64{"": 2000}, got("hires_revenue_cents_total"))
	require.Equal(t, map[string]float64{"": 2}, got("hires_refunds_total"))
	require.Equal(t, map[string]float64{"": 1500}, got("hires_refunded_cents_total"))
	require.Equal(t, map[string]float64{"": 2.5}, got("hires_upsampler_credits_total"))
	require.Equal(t, map[string]float64{`op="submit"`: 1, `op="status"`: 2}, got("hires_upsampler_request_seconds_count"))
	require.InDelta(t, 0.3, got("hires_upsampler_request_seconds_sum")[`op="submit"`], 1e-9)
	require.Equal(t, map[string]float64{`source="stripe"`: 1, `source="upsampler"`: 0},
		got("hires_webhook_verification_failures_total"))
	// The API's families are not on a worker-only registry.
	require.NotContains(t, scrape(t, r), "hires_http_requests_total")
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var r *metrics.Registry
	var b *metrics.Business
	b.JobFinished(metrics.JobCompleted)
	b.Paid(1)
	b.Refunded(1)
	b.UpsamplerRequest(metrics.UpsamplerSubmit, time.Second)
	b.UpsamplerCredits(1)
	r.Business().Paid(1)
	r.Webhooks().VerificationFailed(metrics.SourceStripe)
	require.Nil(t, r.Temporal())
	require.NoError(t, r.Close())
	e := echo.New()
	e.Use(r.HTTP().Middleware())
	e.GET("/x", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	require.Equal(t, http.StatusNoContent, do(e, http.MethodGet, "/x"))
}

func TestTemporalMetricsShareTheRegistry(t *testing.T) {
	r := metrics.New(quiet)
	h := r.Temporal()
	require.NotNil(t, h)
	h.WithTags(map[string]string{"namespace": "default"}).Counter("temporal_request").Inc(3)
	h.Timer("temporal_request_latency").Record(20 * time.Millisecond)
	require.NoError(t, r.Close()) // reports what is pending
	page := scrape(t, r)
	require.Contains(t, page, `temporal_request_total{namespace="default"} 3`)
	require.Contains(t, page, "temporal_request_latency_seconds_bucket")
	require.Contains(t, page, "go_goroutines")
}

func TestTemporalMetricNameClashIsNotFatal(t *testing.T) {
	r := metrics.New(quiet)
	h := r.Temporal()
	h.WithTags(map[string]string{"a": "1"}).Counter("temporal_clash").Inc(1)
	h.WithTags(map[string]string{"b": "1"}).Counter("temporal_clash").Inc(1) // same name, other tags
	require.NoError(t, r.Close())
	require.Contains(t, scrape(t, r), `temporal_clash_total{a="1"} 1`)
}

func TestReadiness(t *testing.T) {
	ready := metrics.NewReadiness(quiet)
	migrated := ready.Flag("migrations")
	dbErr := errors.New("connection refused to db.internal:5432")
	failing := true
	ready.Check("database", func(context.Context) error {
		if failing {
			return dbErr
		}
		return nil
	})
	ready.Check("temporal", func(ctx context.Context) error { return nil })

	get := func() (int, metrics.ReadyBody, string) {
		rec := httptest.NewRecorder()
		ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body metrics.ReadyBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		return rec.Code, body, rec.Body.String()
	}
	code, body, raw := get()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not_ready", body.Status)
	require.Equal(t, []string{"database", "migrations"}, body.NotReady)
	require.Equal(t, map[string]string{"database": "failing", "migrations": "failing", "temporal": "ok"}, body.Checks)
	require.NotContains(t, raw, "db.internal", "check errors are logged, not answered")

	migrated.Set(true)
	failing = false
	code, body, _ = get()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready", body.Status)
	require.Empty(t, body.NotReady)
}

func TestReadinessCheckTimesOut(t *testing.T) {
	ready := metrics.NewReadiness(quiet)
	ready.Check("temporal", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	body := ready.Evaluate(ctx)
	require.Equal(t, []string{"temporal"}, body.NotReady)
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	metrics.Healthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

// metricValues gathers the samples of one family (name may end in _count
// or _sum for histograms) keyed by their label pairs.
func metricValues(r *metrics.Registry, name string) (map[string]float64, error) {
	out := map[string]float64{}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	page := rec.Body.String()
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			labels, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another family with this prefix
		}
		var v float64
		if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err != nil {
			return nil, err
		}
		out[labels] = v
	}
	return out, nil
}

// Both processes' registries (metrics.New) carry hires_build_info: 1, with
// the binary's version, revision and Go version.
func TestBuildInfoMetric(t *testing.T) {
	info := metrics.ReadBuildInfo()
	require.NotEmpty(t, info.Version)
	require.NotEmpty(t, info.Revision)
	require.Equal(t, runtime.Version(), info.GoVersion) // the test binary's toolchain

	got, err := metricValues(metrics.New(quiet), "hires_build_info")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		fmt.Sprintf(`go_version=%q,revision=%q,version=%q`, info.GoVersion, info.Revision, info.Version): 1,
	}, got)
	require.Contains(t, scrape(t, metrics.New(quiet)), "# TYPE hires_build_info gauge")
}

// Failed jobs are counted by reason (bounded: an unknown reason is
// "other"), and refused refunds recorded as refund_failed are counted.
func TestFailureAndRefundFailureCounters(t *testing.T) {
	r := metrics.New(quiet)
	b := r.Business()
	b.JobFailedBecause(jobs.ReasonUpsamplerTimeout)
	b.JobFailedBecause(jobs.ReasonUpsamplerTimeout)
	b.JobFailedBecause(jobs.ReasonTerminated)
	b.JobFailedBecause("something new")
	b.RefundFailed()
	b.RefundNeedsAttention()
	failed, err := metricValues(r, "hires_jobs_failed_total")
	require.NoError(t, err)
	require.Equal(t, 2.0, failed[`reason="upsampler_timeout"`])
	require.Equal(t, 1.0, failed[`reason="terminated"`])
	require.Equal(t, 1.0, failed[`reason="other"`])
	require.Equal(t, 0.0, failed[`reason="cancelled"`]) // zeros from the start
	require.NotContains(t, failed, `reason="something new"`)
	got, err := metricValues(r, "hires_refund_failures_total")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"": 1}, got)
	got, err = metricValues(r, "hires_refunds_needing_attention_total")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"": 1}, got)

	var nilBusiness *metrics.Business
	nilBusiness.JobFailedBecause(jobs.ReasonTerminated)
	nilBusiness.RefundFailed()
}
