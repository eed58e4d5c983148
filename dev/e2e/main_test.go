//go:build integration

// Package e2e drives whole jobs through the real API, Temporal dev server,
// PostgreSQL, stripe-mock (behind a recording proxy) and the Upsampler
// stand-in, exactly as `make run` assembles them.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"hires/api"
	"hires/dev/localstack"
	"hires/dev/stripetest"
	"hires/internal/adminclient"
	"hires/internal/apispec"
	"hires/internal/events"
	"hires/internal/events/eventschema"
	"hires/internal/jobs"
	"hires/internal/paysim"
	"hires/internal/temporalclient"
)

// Test durations: short enough to watch a whole life, long enough for a
// slow machine to pay in time.
const (
	paymentTimeout    = 8 * time.Second
	downloadTTL       = 8 * time.Second
	processingTimeout = 15 * time.Second
	retryWindow       = 10 * time.Second
	reminderLead      = 4 * time.Second
	refundRetry       = 2 * time.Second
	refundAttention   = 8 * time.Second
	// asyncPaymentTimeout bounds the wait for a delayed (bank debit) payment.
	asyncPaymentTimeout = 20 * time.Second
	// suitePriceCents is the price of every job the tests create.
	suitePriceCents = 50
)

var (
	hooks    *receiver
	hiresBin string
	worker   *workerProcess
	stack    *localstack.Stack
	stripe   *stripetest.Recorder
	temporal client.Client
	logPath  string
	// appLogPath holds the API's and the worker's own logs (JSON), apart
	// from the other components' output, so that tests can read them.
	appLogPath string
)

// apiClient is the tests' one HTTP client for the API: it checks every
// exchange with the API (requests to other hosts pass unchecked) against
// api/openapi.yaml. A violation fails the request at its call site and the
// run at its end.
var apiClient = &http.Client{Transport: specCheck}

var specCheck = &apispec.Transport{
	Spec:        apispec.MustLoad(api.OpenAPI()),
	OnViolation: specReport.violation,
}

// specReport collects what the checks found, for the end of the run.
var specReport = &specFindings{}

type specFindings struct {
	mu         sync.Mutex
	violations []string
}

func (f *specFindings) violation(v *apispec.Violation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations = append(f.violations, v.Error())
}

// summary prints the findings; false if an exchange broke the document.
func (f *specFindings) summary() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		fmt.Fprintln(os.Stderr, "e2e:", v)
	}
	return len(f.violations) == 0
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hires-e2e-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	logPath = filepath.Join(dir, "stack.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	defer logFile.Close()
	appLogPath = filepath.Join(dir, "app.log")
	appLog, err := os.OpenFile(appLogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	defer appLog.Close()

	schemas, err := eventschema.Load(eventschema.Dir())
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	hooks = newReceiver(schemas, true)
	defer hooks.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	stack, err = localstack.Start(ctx, localstack.Options{
		Environ: map[string]string{
			"PAYMENT_TIMEOUT":         paymentTimeout.String(),
			"DOWNLOAD_TTL":            downloadTTL.String(),
			"PROCESSING_TIMEOUT":      processingTimeout.String(),
			"UPSAMPLER_POLL_INTERVAL": "1s",
			"RETRY_WINDOW":            retryWindow.String(),
			"REFUND_RETRY_INTERVAL":   refundRetry.String(),
			// Refused refunds are handed to an admin after a few attempts.
			"REFUND_ATTENTION_AFTER": refundAttention.String(),
			// Longer than the payment window, so that a delayed payment is
			// seen outliving it.
			"ASYNC_PAYMENT_TIMEOUT":      asyncPaymentTimeout.String(),
			"UPSAMPLER_LOST_ANSWER_WAIT": "5s",
			"RECONCILE_INTERVAL":         "2s",
			"RECONCILE_GRACE":            "1s",
			"EXPIRY_REMINDER_LEAD":       reminderLead.String(),
			"RATE_LIMIT_CREATE":          "100000", // the tests create jobs fast, from one address
			"RATE_LIMIT_DOWNLOAD":        "100000",
			"RATE_LIMIT_PAGE":            "100000",
		},
		DataDir:        filepath.Join(dir, "data"),
		Cluster:        onCluster(),
		NoWorker:       true, // the worker runs as its own process, so tests can kill it
		Output:         logFile,
		Logger:         newLogger(appLog),
		UpsamplerDelay: 300 * time.Millisecond,
		WrapStripe: func(upstream string) string {
			stripe = stripetest.NewRecorder(upstream)
			// Every job of the suite costs 50 cents (the minimum price):
			// payments the double was not told about are of that amount.
			stripe.SetDefaultAmount(suitePriceCents)
			stripe.Start()
			return stripe.URL()
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start stack:", err)
		dumpLog()
		return 1
	}
	defer stack.Stop()
	defer stripe.Close()
	specCheck.APIURL = stack.APIURL
	if hiresBin, err = buildHires(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	w, err := startWorker(appLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { worker.stop() }()
	worker = w
	// Tests start at once, some by taking Temporal away: the worker must be
	// polling first (it exits if Temporal is unreachable at start-up).
	if err := waitWorkerReady(ctx, "http://"+stack.Env["WORKER_HTTP_ADDR"]+"/readyz"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := registerReceiver(ctx, hooks, "e2e receiver", events.Types); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	what := "the Temporal dev server"
	if onCluster() {
		what = "a Temporal cluster (frontend, history, matching, worker) on PostgreSQL, results in S3"
	}
	fmt.Fprintf(os.Stderr, "e2e: stack up in %s, on %s\n", time.Since(start).Round(time.Millisecond), what)
	temporal, err = temporalclient.Dial(stack.TemporalAddress, "default", newLogger(logFile))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer temporal.Close()
	code := m.Run()
	if !specReport.summary() && code == 0 {
		fmt.Fprintln(os.Stderr, "e2e: exchanges with the API broke api/openapi.yaml")
		code = 1
	}
	if err := scanHistories(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	if code != 0 {
		dumpLog()
	}
	return code
}

// logFile opens the stack log for another writer (the browser).
func logFile() io.Writer {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

// appLogFile opens the app log for another writer (a restarted worker).
func appLogFile() io.Writer {
	f, err := os.OpenFile(appLogPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

func dumpLog() {
	for _, p := range []string{logPath, appLogPath} {
		b, _ := os.ReadFile(p)
		var kept, problems []string
		for _, line := range strings.Split(string(b), "\n") {
			if stripeMockChatter(line) {
				continue
			}
			kept = append(kept, line)
			if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) ||
				strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				problems = append(problems, line)
			}
		}
		fmt.Fprintf(os.Stderr, "---- %s: warnings and errors (last 60) ----\n%s\n", filepath.Base(p), lastLines(problems, 60, 30000))
		fmt.Fprintf(os.Stderr, "---- %s (tail, without stripe-mock's request log) ----\n%s\n", filepath.Base(p), lastLines(kept, 200, 20000))
	}
}

// stripeMockChatter: stripe-mock prints every request it serves.
func stripeMockChatter(line string) bool {
	for _, prefix := range []string{"Request: ", "Request data", "Response: "} {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// lastLines joins the last n lines, at most maxBytes of them.
func lastLines(lines []string, n, maxBytes int) string {
	s := strings.Join(lines[len(lines)-min(n, len(lines)):], "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}

// call sends a JSON request and decodes the JSON answer into out (if not nil).
func call(t *testing.T, method, path, bearer string, body any, header map[string]string, out any) int {
	t.Helper()
	a := send(t, method, path, bearer, body, header)
	if out != nil && len(a.body) > 0 {
		if err := json.Unmarshal(a.body, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON (%v): %s", method, path, err, a.body)
		}
	}
	return a.status
}

// answer is a whole HTTP answer: status, headers and body.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request to the API through apiClient (held to
// api/openapi.yaml) and returns the whole answer. A string or []byte body
// is sent as it is, anything else as JSON.
func send(t *testing.T, method, path, bearer string, body any, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, stack.APIURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, raw}
}

// waitWorkerReady polls the worker's /readyz until it answers 200.
func waitWorkerReady(ctx context.Context, url string) error {
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the worker was not ready at %s: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// onCluster reports whether the suite runs on Temporal's production shape
// (make test-cluster) rather than the dev server.
func onCluster() bool { return os.Getenv("HIRES_E2E_TEMPORAL") == "cluster" }

func admin() string { return stack.Env["ADMIN_TOKEN"] }

// registerReceiver makes r an endpoint for types through the admin API and
// hands it the secret it was issued.
func registerReceiver(ctx context.Context, r *receiver, description string, types []events.Type) error {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	c := adminclient.Client{BaseURL: stack.APIURL, Token: admin()}
	ep, err := c.Create(ctx, r.srv.URL+"/hooks", description, names)
	if err != nil {
		return fmt.Errorf("register %s: %w", description, err)
	}
	return r.trust(ep.Secret)
}

func paysimOptions() paysim.Options {
	return paysim.Options{APIURL: stack.APIURL, AdminToken: admin(), WebhookSecret: stack.Env["STRIPE_WEBHOOK_SECRET"]}
}

type createReq = api.CreateJobRequest

func newJob(t *testing.T, w, h int, res string, idemKey string) (api.CreateJobResponse, int) {
	t.Helper()
	var out api.CreateJobResponse
	hdr := map[string]string{}
	if idemKey != "" {
		hdr["Idempotency-Key"] = idemKey
	}
	status := call(t, "POST", "/v1/jobs", stack.SiteKey, createReq{
		ImageURL: stack.SampleImageURL(w, h), Resolution: res, Email: "buyer@example.com",
		PostID: 42, ImageWidth: w, ImageHeight: h,
	}, hdr, &out)
	if out.AccessToken != "" {
		accessTokens.Store(out.AccessToken, true)
	}
	return out, status
}

func adminJob(t *testing.T, id string) api.AdminJob {
	t.Helper()
	var j api.AdminJob
	if st := call(t, "GET", "/v1/admin/jobs/"+id, admin(), nil, nil, &j); st != http.StatusOK {
		t.Fatalf("admin get job %s: HTTP %d", id, st)
	}
	return j
}

// waitFor polls the job until cond holds, failing after timeout.
func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func waitFor(t *testing.T, id string, timeout time.Duration, what string, cond func(api.AdminJob) bool) api.AdminJob {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := adminJob(t, id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			logHistory(t, jobs.WorkflowID(id))
			t.Fatalf("job %s: %s not reached within %s (status %s, failure %s: %s)", id, what, timeout, j.Status,
				deref(j.FailureReason), deref(j.FailureDetail))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
