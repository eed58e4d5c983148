package chaos

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"hires/internal/events"
)

// receiver is the integration-event endpoint of the run. It verifies every
// delivery's signature with the Standard Webhooks library and refuses the first delivery of a share of the
// events (503), chosen from the seed and the event ID, so that retries
// happen too; it keeps every delivery it accepted, repeats included.
type receiver struct {
	srv        *httptest.Server
	seed       int64
	refuseRate float64

	mu       sync.Mutex
	verifier *standardwebhooks.Webhook // nil until the endpoint is registered
	attempts map[string]int            // by event ID
	accepted []Delivery
	refused  int
	invalid  int
}

func newReceiver(seed int64, refuseRate float64) *receiver {
	r := &receiver{seed: seed, refuseRate: refuseRate, attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	v := r.verifier
	r.mu.Unlock()
	if v == nil {
		http.Error(w, "not registered yet", http.StatusServiceUnavailable)
		return
	}
	if err := v.Verify(body, req.Header); err != nil {
		r.count(&r.invalid)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != req.Header.Get(events.HeaderID) {
		r.count(&r.invalid)
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[e.ID]++
	if r.attempts[e.ID] == 1 && r.refuses(e.ID) {
		r.refused++
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	r.accepted = append(r.accepted, Delivery{ID: e.ID, JobID: e.Data.JobID, Type: string(e.Type), Attempt: e.Data.Attempt})
	w.WriteHeader(http.StatusNoContent)
}

// setSecret gives the receiver the secret its endpoint was issued.
func (r *receiver) setSecret(secret string) error {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("event receiver: %w", err)
	}
	r.mu.Lock()
	r.verifier = v
	r.mu.Unlock()
	return nil
}

// refuses decides from the seed whether the first delivery of id fails.
func (r *receiver) refuses(id string) bool {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return float64((h.Sum64()^uint64(r.seed))%1000) < r.refuseRate*1000
}

func (r *receiver) count(n *int) {
	r.mu.Lock()
	*n++
	r.mu.Unlock()
}

// deliveries returns the accepted deliveries, and how many first
// deliveries were refused and how many requests were invalid.
func (r *receiver) deliveries() (accepted []Delivery, refused, invalid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.accepted...), r.refused, r.invalid
}

func (r *receiver) close() { r.srv.Close() }
