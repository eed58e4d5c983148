//go:build integration

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"hires/internal/events"
	"hires/internal/events/eventschema"
)

// receiver is an integration-event endpoint, registered through the admin
// API: it verifies each delivery with the Standard Webhooks library (with
// any of the secrets it was given: each must match on its own), checks the
// body against its JSON Schema, and refuses the first delivery of every
// event (503) when asked to, so that every event is retried once.
type receiver struct {
	srv         *httptest.Server
	schemas     *eventschema.Validator
	refuseFirst bool

	mu        sync.Mutex
	verifiers []*standardwebhooks.Webhook
	attempts  map[string]int // by event ID
	accepted  []events.Event
	requests  []delivery // every verified request, accepted or not
	invalid   []string   // why requests were refused as invalid
}

// delivery is one verified request as it arrived.
type delivery struct {
	id        string
	signature string
	body      []byte
}

func newReceiver(schemas *eventschema.Validator, refuseFirst bool) *receiver {
	r := &receiver{schemas: schemas, refuseFirst: refuseFirst, attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// trust makes the receiver check deliveries against these secrets, each
// alone: a delivery must verify with every one of them.
func (r *receiver) trust(secrets ...string) error {
	var vs []*standardwebhooks.Webhook
	for _, s := range secrets {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	r.mu.Lock()
	r.verifiers = vs
	r.mu.Unlock()
	return nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.verifiers) == 0 {
		http.Error(w, "not registered yet", http.StatusServiceUnavailable)
		return
	}
	for _, v := range r.verifiers {
		if err := v.Verify(body, req.Header); err != nil {
			r.invalid = append(r.invalid, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	if err := r.schemas.Validate(body); err != nil {
		r.invalid = append(r.invalid, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != req.Header.Get(events.HeaderID) {
		r.invalid = append(r.invalid, "body id does not match webhook-id")
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	r.requests = append(r.requests, delivery{id: e.ID, signature: req.Header.Get(events.HeaderSignature), body: body})
	r.attempts[e.ID]++
	if r.refuseFirst && r.attempts[e.ID] == 1 {
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
		if e.Data.JobID == jobID {
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

// deliveriesOf returns the verified requests that carried event id.
func (r *receiver) deliveriesOf(id string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.requests {
		if d.id == id {
			out = append(out, d)
		}
	}
	return out
}

// invalidRequests returns why requests were refused as invalid.
func (r *receiver) invalidRequests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.invalid...)
}
