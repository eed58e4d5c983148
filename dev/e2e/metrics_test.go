//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/payments"
	"hires/internal/paysim"
)

// After a whole job, both processes' /metrics show it, by route pattern and
// never by raw path; /readyz and /healthz answer on both.
func TestMetricsAndHealth(t *testing.T) {
	workerURL := stack.WorkerHTTPURL
	require.NotEmpty(t, workerURL)
	// An earlier test may have restarted the worker: wait until it is ready.
	eventually(t, 30*time.Second, "worker ready", func() (bool, string) {
		code, body := get(t, workerURL+"/readyz")
		return code == http.StatusOK, body
	})
	before := scrape(t, workerURL)
	completedBefore := value(before.fams, "hires_jobs_finished_total", "status", "completed")
	revenueBefore := value(before.fams, "hires_revenue_cents_total")
	creditsBefore := value(before.fams, "hires_upsampler_credits_total")

	created := paidJob(t) // POST /v1/jobs, then a signed checkout.session.completed
	done := waitFor(t, created.ID, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })

	// Paths that carry secrets: the download token, the callback secret.
	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	require.NotNil(t, view.Download)
	resp, err := apiClient.Get(view.Download.URL)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	downloadToken := view.Download.URL[strings.LastIndex(view.Download.URL, "/")+1:]
	require.NotEmpty(t, downloadToken)
	var callbackSecret string
	for _, r := range stack.Upsampler.Requests() {
		if r.Submit != nil && done.UpsamplerJobID != nil && r.JobID == *done.UpsamplerJobID {
			u, err := url.Parse(r.Submit.Webhook)
			require.NoError(t, err)
			callbackSecret = u.Path[strings.LastIndex(u.Path, "/")+1:]
		}
	}
	require.NotEmpty(t, callbackSecret)

	// Webhooks that do not verify are counted by source.
	forger := paysimOptions()
	forger.WebhookSecret = "whsec_not_the_secret"
	forged, err := paysim.Send(context.Background(), forger, "evt_forged_metrics", jobs.EventCheckoutCompleted, payments.Session{ID: "cs_forged"})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, forged.Status)
	require.Equal(t, http.StatusNotFound, call(t, "POST", "/v1/webhooks/upsampler/"+created.ID+"/wrong-"+callbackSecret,
		"", `{"id":"x","status":"SUCCESS"}`, nil, nil))

	// The API.
	var apiPage page
	eventually(t, 15*time.Second, "API metrics", func() (bool, string) {
		apiPage = scrape(t, stack.APIURL)
		ok := value(apiPage.fams, "hires_http_requests_total", "method", "POST", "route", "/v1/jobs", "status", "201") >= 1 &&
			value(apiPage.fams, "temporal_request_total") >= 1 // the SDK's own, reported every second
		return ok, ""
	})
	fams := apiPage.fams
	require.GreaterOrEqual(t, value(fams, "hires_http_requests_total", "method", "GET", "route", "/v1/downloads/:token", "status", "200"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_http_requests_total", "method", "POST", "route", "/v1/webhooks/stripe", "status", "200"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_http_requests_total", "method", "GET", "route", "/v1/jobs/:id", "status", "200"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_http_requests_total", "method", "POST", "route", "/v1/webhooks/upsampler/:id/:secret", "status", "404"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_http_request_duration_seconds", "method", "POST", "route", "/v1/jobs"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_webhook_verification_failures_total", "source", "stripe"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_webhook_verification_failures_total", "source", "upsampler"), 1.0)
	require.Contains(t, fams, "go_goroutines")
	require.NotContains(t, fams, "hires_jobs_finished_total", "the API records no worker metrics")
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					require.NotContains(t, l.GetValue(), created.ID, "a raw path in a route label")
				}
			}
		}
	}

	// The worker.
	var workerPage page
	eventually(t, 15*time.Second, "worker metrics", func() (bool, string) {
		workerPage = scrape(t, workerURL)
		return value(workerPage.fams, "hires_jobs_finished_total", "status", "completed") >= completedBefore+1, ""
	})
	fams = workerPage.fams
	require.GreaterOrEqual(t, value(fams, "hires_revenue_cents_total")-revenueBefore, float64(*done.AmountPaidCents))
	require.GreaterOrEqual(t, value(fams, "hires_upsampler_credits_total")-creditsBefore, *done.UpsamplerCredits)
	require.GreaterOrEqual(t, value(fams, "hires_upsampler_request_seconds", "op", "submit"), 1.0)
	require.GreaterOrEqual(t, value(fams, "hires_upsampler_request_seconds", "op", "status"), 1.0)
	require.GreaterOrEqual(t, value(fams, "temporal_activity_execution_latency_seconds", "activity_type", "StoreResult"), 1.0)
	require.GreaterOrEqual(t, value(fams, "temporal_workflow_task_execution_latency_seconds", "workflow_type", jobs.WorkflowName), 1.0)
	require.Contains(t, fams, "process_resident_memory_bytes")
	require.NotContains(t, fams, "hires_http_requests_total", "the worker serves no API")

	for name, p := range map[string]page{"API": apiPage, "worker": workerPage} {
		for what, secret := range map[string]string{
			"download token": downloadToken, "access token": created.AccessToken,
			"callback secret": callbackSecret, "job ID": created.ID,
		} {
			require.NotContains(t, p.raw, secret, "the %s's /metrics shows a %s", name, what)
		}
	}

	// Health and readiness on both.
	for name, base := range map[string]string{"API": stack.APIURL, "worker": workerURL} {
		code, body := get(t, base+"/readyz")
		require.Equal(t, http.StatusOK, code, "%s /readyz: %s", name, body)
		var ready metrics.ReadyBody
		require.NoError(t, json.Unmarshal([]byte(body), &ready))
		require.Equal(t, "ready", ready.Status)
		for _, c := range []string{"database", "temporal", "migrations"} {
			require.Equal(t, "ok", ready.Checks[c], "%s /readyz check %s", name, c)
		}
		code, body = get(t, base+"/healthz")
		require.Equal(t, http.StatusOK, code, "%s /healthz: %s", name, body)
	}
}

type page struct {
	raw  string
	fams map[string]*dto.MetricFamily
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := apiClient.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads and parses base's /metrics.
func scrape(t *testing.T, base string) page {
	t.Helper()
	code, raw := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code, raw)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(raw))
	require.NoError(t, err)
	return page{raw: raw, fams: fams}
}

// value sums the samples of family name whose labels include the given
// name, value pairs: a counter's or gauge's value, a histogram's count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf, ok := fams[name]
	if !ok {
		return 0
	}
	var sum float64
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// eventually polls cond until it holds, failing after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached within %s: %s", what, timeout, detail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
