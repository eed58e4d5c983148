//go:build integration

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"hires/internal/events"
)

const eventSecret = "e2e-event-secret"

// receiver is an integration-event endpoint: it verifies each delivery's
// signature and refuses the first delivery of every event (503), so that
// every event is retried once before it is accepted.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	attempts map[string]int // by event ID
	accepted []events.Event
	invalid  int
}

func newReceiver() *receiver {
	r := &receiver{attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := events.Verify([]byte(eventSecret), req.Header.Get(events.HeaderSignature), body, events.DefaultTolerance, time.Now()); err != nil {
		r.invalid++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != req.Header.Get(events.HeaderEventID) {
		r.invalid++
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	r.attempts[e.ID]++
	if r.attempts[e.ID] == 1 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	r.accepted = append(r.accepted, e)
	w.WriteHeader(http.StatusNoContent)
}

// of returns the accepted events of a job, in arrival order.
func (r *receiver) of(jobID string) []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []events.Event
	for _, e := range r.accepted {
		if e.JobID == jobID {
			out = append(out, e)
		}
	}
	return out
}

// attemptsOf counts the deliveries of one event.
func (r *receiver) attemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}
