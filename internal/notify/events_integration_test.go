//go:build integration

package notify

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/devstack"
	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/store"
)

// hookReceiver answers with the statuses it is given, in turn (the last
// one repeats), and keeps what it was sent.
type hookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []*http.Request
	bodies   [][]byte
}

func newHookReceiver(t *testing.T, statuses ...int) *hookReceiver {
	r := &hookReceiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got, r.bodies = append(r.got, req), append(r.bodies, b)
		code := r.statuses[min(len(r.got), len(r.statuses))-1]
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) requests() ([]*http.Request, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.got...), append([][]byte(nil), r.bodies...)
}

func TestEventGoesToSubscribedEndpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pg.Stop()) })
	st, err := store.OpenMigrated(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(st.Close)

	id := newJob(t, st)

	busyOnce := newHookReceiver(t, http.StatusServiceUnavailable, http.StatusNoContent)
	createdOnly := newHookReceiver(t, http.StatusNoContent)
	disabled := newHookReceiver(t, http.StatusNoContent)
	gone := newHookReceiver(t, http.StatusGone)
	register := func(url string, types ...events.Type) events.Endpoint {
		e, err := st.CreateEndpoint(ctx, store.NewEndpoint{URL: url, Types: types, Secret: events.NewSecret()})
		require.NoError(t, err)
		return e
	}
	a := register(busyOnce.URL+"/secret-path", events.JobCreated, events.JobCompleted)
	register(createdOnly.URL, events.JobCreated)
	off := register(disabled.URL, events.JobCompleted)
	yes := true
	_, err = st.UpdateEndpoint(ctx, off.ID, store.EndpointUpdate{Disabled: &yes})
	require.NoError(t, err)
	d := register(gone.URL, events.JobCompleted, events.JobFailed)

	disp := &Dispatcher{Store: st, Events: events.NewSender(nil)}
	at := time.Now()
	refused := func(err error) bool { var r errRefused; return errors.As(err, &r) }

	// 1st try: busy answers 503 (retried), gone answers 410 (given up).
	err = disp.event(ctx, id, events.JobCompleted, 0, at)
	require.Error(t, err)
	require.False(t, refused(err), "a 503 is retried")
	require.NotContains(t, err.Error(), "secret-path", "URLs are redacted")
	require.NotContains(t, err.Error(), a.Secret)
	// 2nd try: busy takes it; gone is not asked again. A retry made at
	// another time must not change the stored event.
	require.NoError(t, disp.event(ctx, id, events.JobCompleted, 0, at.Add(time.Minute)))
	// 3rd: everyone has settled it, nothing is sent.
	require.NoError(t, disp.event(ctx, id, events.JobCompleted, 0, at))

	reqs, bodies := busyOnce.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, bodies[0], bodies[1], "the same bytes on every attempt")
	evID := events.NewID(id, events.JobCompleted, 0)
	wh, err := standardwebhooks.NewWebhook(a.Secret)
	require.NoError(t, err)
	for i, r := range reqs {
		require.Equal(t, evID, r.Header.Get("webhook-id"))
		require.NoError(t, wh.Verify(bodies[i], r.Header), "attempt %d", i+1)
	}
	require.NotContains(t, string(bodies[0]), "buyer@example.com", "no email in events")
	goneReqs, _ := gone.requests()
	require.Len(t, goneReqs, 1, "a permanent rejection is not retried")
	for _, r := range []*hookReceiver{createdOnly, disabled} {
		got, _ := r.requests()
		require.Empty(t, got, "not subscribed, or disabled")
	}

	logA, err := st.Deliveries(ctx, a.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, logA, 2)
	require.Equal(t, events.Delivered, logA[0].Outcome)
	require.Equal(t, 2, logA[0].Attempt)
	require.Equal(t, events.Failed, logA[1].Outcome)
	require.Equal(t, http.StatusServiceUnavailable, logA[1].StatusCode)
	require.True(t, strings.Contains(logA[1].Error, "503"), logA[1].Error)
	logD, err := st.Deliveries(ctx, d.ID, 0, 10)
	require.NoError(t, err)
	require.Len(t, logD, 1)
	require.Equal(t, events.Rejected, logD[0].Outcome)

	// Only a permanent rejection: the message is given up.
	err = disp.event(ctx, id, events.JobFailed, 0, time.Now())
	require.True(t, refused(err), "%v", err)
	// Unknown types are refused before anything is sent.
	err = disp.event(ctx, id, "job.exploded", 0, time.Now())
	require.True(t, refused(err), "%v", err)
}

// newJob records a job awaiting payment and returns its ID.
func newJob(t *testing.T, st *store.Store) string {
	t.Helper()
	id := uuid.NewString()
	h := func(s string) []byte { b := sha256.Sum256([]byte(s + id)); return b[:] }
	_, _, err := st.CreateJob(t.Context(), store.NewJob{
		ID: id, ImageURL: "https://images.example.com/a.png", Resolution: jobs.Resolution4x, Email: "buyer@example.com",
		ImageWidth: 640, ImageHeight: 480, OutputWidth: 2560, OutputHeight: 1920,
		AccessTokenHash: h("a"), RequestHash: h("r"), CallbackSecret: "cb-" + id,
		Currency: "usd", PriceCents: 384, MarkupPercent: 200, EstimatedCredits: 16, EstimatedCostCents: 64,
		CheckoutExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	return id
}
