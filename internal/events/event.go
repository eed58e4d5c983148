package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Type names an event.
type Type string

// Event types, successors of the WordPress plugin's hooks.
const (
	JobCreated       Type = "job.created"       // smi_job_created
	PaymentCompleted Type = "payment.completed" // smi_payment_completed
	JobCompleted     Type = "job.completed"     // smi_job_completed
	JobFailed        Type = "job.failed"        // smi_job_failed
)

// Types lists every event type: the catalogue, documented in docs/events.md
// with a JSON Schema each in docs/events/<type>.schema.json.
var Types = []Type{JobCreated, PaymentCompleted, JobCompleted, JobFailed}

// Valid reports whether t is one of Types.
func (t Type) Valid() bool { return slices.Contains(Types, t) }

// ParseTypes checks names against the catalogue and returns them without
// repeats, in catalogue order. An empty list is an error: an endpoint that
// subscribes to nothing is a mistake.
func ParseTypes(names []string) ([]Type, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no event types", ErrInvalidEndpoint)
	}
	seen := map[Type]bool{}
	for _, n := range names {
		t := Type(strings.TrimSpace(n))
		if !t.Valid() {
			return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalidEndpoint, n)
		}
		seen[t] = true
	}
	var out []Type
	for _, t := range Types {
		if seen[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// Event is the JSON document POSTed to receivers, in the shape the Standard
// Webhooks specification suggests: {type, timestamp, data}, plus the id that
// is also the webhook-id header. It holds only plain values, so a workflow
// can build it deterministically (Timestamp from workflow.Now).
type Event struct {
	ID        string    `json:"id"`
	Type      Type      `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data carries an event's details; fields that do not apply stay zero and
// are left out of the JSON. Amounts are in the currency's minor unit. It
// never carries emails, download links or tokens.
type Data struct {
	JobID             string     `json:"job_id"`
	Status            string     `json:"status,omitempty"`
	Resolution        string     `json:"resolution,omitempty"`
	PriceCents        int64      `json:"price_cents,omitempty"`
	Currency          string     `json:"currency,omitempty"`
	AmountPaidCents   int64      `json:"amount_paid_cents,omitempty"`
	PaymentIntentID   string     `json:"payment_intent_id,omitempty"`
	DownloadExpiresAt *time.Time `json:"download_expires_at,omitempty"`
	FailureReason     string     `json:"failure_reason,omitempty"`
	RefundedCents     int64      `json:"refunded_cents,omitempty"`
	Attempt           int        `json:"attempt,omitempty"`
}

// New builds an event with its stable ID (see NewID). at should come from
// workflow.Now inside a workflow; it is stored in UTC. jobID and attempt are
// also recorded in d.
func New(t Type, jobID string, attempt int, at time.Time, d Data) Event {
	d.JobID, d.Attempt = jobID, attempt
	return Event{ID: NewID(jobID, t, attempt), Type: t, Timestamp: at.UTC(), Data: d}
}

// Marshal checks the event and returns the bytes every delivery of it sends.
func (e Event) Marshal() ([]byte, error) {
	switch {
	case e.ID == "":
		return nil, fmt.Errorf("%w: no id", ErrInvalidEvent)
	case !e.Type.Valid():
		return nil, fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, e.Type)
	case e.Data.JobID == "":
		return nil, fmt.Errorf("%w: no job id", ErrInvalidEvent)
	case e.Timestamp.IsZero():
		return nil, fmt.Errorf("%w: no timestamp", ErrInvalidEvent)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return b, nil
}

// NewID derives an event's ID from its job, type and attempt: "evt_" and the
// hex of the first 16 bytes of a SHA-256 over them. The same inputs always
// give the same ID, so a retried delivery or a replayed workflow sends the
// same ID (the webhook-id header) and receivers can deduplicate on it.
//
// attempt tells apart repeated occurrences of one type for one job: it is
// the job's processing attempt, so that the job.failed of a job that was
// retried and failed again is a new event. It must never count delivery
// attempts, and must be numbered the same way on every call.
func NewID(jobID string, t Type, attempt int) string {
	h := sha256.New()
	h.Write([]byte("hires-event-id/1"))
	// Length-prefix each field so that no two inputs hash the same bytes.
	var n [8]byte
	for _, s := range []string{jobID, string(t)} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(int64(attempt)))
	h.Write(n[:])
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}
