package api

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"hires/internal/apispec"
	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/storage"
	"hires/internal/store"
)

// fakeStore keeps jobs in a map and records every call. Methods the tests
// do not expect are left to the embedded nil interface: a handler calling
// one panics, which the Recover middleware turns into a 500 the tests see.
type fakeStore struct {
	jobStore

	mu           sync.Mutex
	jobs         map[string]store.Job
	stripeEvents map[string]string // event ID -> outcome
	calls        []string          // method names, in call order
	tokenLookups []string          // arguments of GetByDownloadToken
	downloaded   []string          // arguments of MarkDownloaded
	idem         map[string]*idemEntry
}

func newFakeStore(jobs ...store.Job) *fakeStore {
	f := &fakeStore{jobs: map[string]store.Job{}, stripeEvents: map[string]string{}}
	for _, j := range jobs {
		f.jobs[j.ID] = j
	}
	return f
}

func (f *fakeStore) called(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

// reset forgets the recorded calls (the jobs stay).
func (f *fakeStore) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.tokenLookups, f.downloaded = nil, nil, nil
}

func (f *fakeStore) record() (calls, lookups, downloaded []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]string(nil), f.tokenLookups...), append([]string(nil), f.downloaded...)
}

func (f *fakeStore) Get(_ context.Context, id string) (store.Job, error) {
	f.called("Get")
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		return j, nil
	}
	return store.Job{}, store.ErrNotFound
}

// GetByDownloadToken is `WHERE download_token = $1`: exact bytes.
func (f *fakeStore) GetByDownloadToken(_ context.Context, tok string) (store.Job, error) {
	f.called("GetByDownloadToken")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenLookups = append(f.tokenLookups, tok)
	for _, j := range f.jobs {
		if j.DownloadToken != nil && *j.DownloadToken == tok {
			return j, nil
		}
	}
	return store.Job{}, store.ErrNotFound
}

func (f *fakeStore) MarkDownloaded(_ context.Context, id string) error {
	f.called("MarkDownloaded")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downloaded = append(f.downloaded, id)
	return nil
}

func (f *fakeStore) StripeEventSeen(_ context.Context, id string) (bool, error) {
	f.called("StripeEventSeen")
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.stripeEvents[id]
	return ok, nil
}

func (f *fakeStore) RecordStripeEvent(_ context.Context, id, _, _, outcome string) (bool, error) {
	f.called("RecordStripeEvent")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.stripeEvents[id]; ok {
		return false, nil
	}
	f.stripeEvents[id] = outcome
	return true, nil
}

// ConfirmRefund knows no payment: the event is then acknowledged and ignored.
func (f *fakeStore) ConfirmRefund(context.Context, store.RefundConfirmation) (string, error) {
	f.called("ConfirmRefund")
	return "", store.ErrNotFound
}

// signal is one SignalWorkflow call.
type signal struct {
	workflowID, name string
	arg              any
}

// fakeTemporal records signals and workflow starts; anything else panics
// (nil embedded interface).
type fakeTemporal struct {
	client.Client

	mu      sync.Mutex
	signals []signal
	started []string
	inputs  []jobs.WorkflowInput
	// running are the workflow IDs that can be signalled, as on a server:
	// the fixture jobs' and the ones started here.
	running map[string]bool
	// down are the errors the next workflow starts fail with.
	down []error
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, workflowID, _, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running[workflowID] {
		return serviceerror.NewNotFound("workflow not found for ID: " + workflowID)
	}
	f.signals = append(f.signals, signal{workflowID, name, arg})
	return nil
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.down) > 0 { // an outage: the next starts fail with these
		err := f.down[0]
		f.down = f.down[1:]
		return nil, err
	}
	f.started = append(f.started, o.ID)
	f.running[o.ID] = true
	if len(args) == 1 {
		if in, ok := args[0].(jobs.WorkflowInput); ok {
			f.inputs = append(f.inputs, in)
		}
	}
	return nil, nil
}

func (f *fakeTemporal) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals, f.started = nil, nil
}

func (f *fakeTemporal) record() (signals []signal, started []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signal(nil), f.signals...), append([]string(nil), f.started...)
}

// clock is a settable time source.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }
func (c *clock) now() time.Time   { return *c.t.Load() }

const testWebhookSecret = "whsec_api_test_0123456789"

// testApp is the real Echo application (routes, middleware, error handler)
// on a map-backed store, a recording Temporal client and files in a
// temporary directory.
type testApp struct {
	// t fails on exchanges that break api/openapi.yaml (nil for fuzz
	// targets' apps, whose *testing.F cannot fail from the fuzz function).
	t        *testing.T
	e        *echo.Echo
	store    *fakeStore
	temporal *fakeTemporal
	files    *storage.Local
	clock    *clock
	stripe   *fakeCheckouts
}

func newTestApp(t testing.TB, cfg config.Config, fixtures ...store.Job) *testApp {
	t.Helper()
	if len(cfg.SourceHosts) == 0 {
		cfg.SourceHosts = []string{"images.example.com"}
	}
	if cfg.RateLimitCreate == 0 {
		cfg.RateLimitCreate = 1_000_000
	}
	if cfg.RateLimitDownload == 0 {
		cfg.RateLimitDownload = 1_000_000
	}
	if cfg.StripeWebhookSecret == "" {
		cfg.StripeWebhookSecret = testWebhookSecret
	}
	files, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, j := range fixtures {
		running[jobs.WorkflowID(j.ID)] = true
	}
	a := &testApp{store: newFakeStore(fixtures...), temporal: &fakeTemporal{running: running}, files: files,
		clock: newClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), stripe: &fakeCheckouts{}}
	a.t, _ = t.(*testing.T)
	a.e, err = newEcho(Deps{Config: cfg, Temporal: a.temporal, Payments: a.stripe, Files: files, Now: a.clock.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, a.store)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// spec is api/openapi.yaml, which every exchange of do must keep to.
var spec = apispec.MustLoad(openapiYAML)

// do serves one request from addr and returns the recorded answer, after
// checking the exchange against the OpenAPI document.
func (a *testApp) do(req *http.Request, addr string) *httptest.ResponseRecorder {
	req.RemoteAddr = addr
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	sent := req.Clone(req.Context()) // the handlers may change req's headers
	rec := httptest.NewRecorder()
	a.e.ServeHTTP(rec, req)
	if a.t != nil {
		a.t.Helper()
		if err := spec.Check(sent, body, rec.Result(), rec.Body.Bytes()); err != nil {
			a.t.Error(err)
		}
	}
	return rec
}

func (a *testApp) reset() {
	a.store.reset()
	a.temporal.reset()
}

// noEffect fails unless the request left the store and Temporal untouched
// apart from the listed read-only store calls.
func (a *testApp) noEffect(t testing.TB, allowedReads ...string) {
	t.Helper()
	calls, _, _ := a.store.record()
	for _, c := range calls {
		allowed := false
		for _, r := range allowedReads {
			allowed = allowed || c == r
		}
		if !allowed {
			t.Errorf("store.%s was called (allowed: %s)", c, strings.Join(allowedReads, ", "))
		}
	}
	signals, started := a.temporal.record()
	if len(signals) > 0 || len(started) > 0 {
		t.Errorf("Temporal was reached: signals %+v, started %v", signals, started)
	}
}

func (f *fakeStore) SetCustomerEmail(_ context.Context, id, email string) error {
	f.called("SetCustomerEmail")
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	j.CustomerEmail = &email
	f.jobs[id] = j
	return nil
}
