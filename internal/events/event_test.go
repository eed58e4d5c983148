package events

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	format := regexp.MustCompile(`^evt_[0-9a-f]{32}$`)
	base := NewID("job-1", JobCompleted, 1)
	if !format.MatchString(base) {
		t.Fatalf("NewID = %q, want evt_ and 32 hex digits", base)
	}
	if again := NewID("job-1", JobCompleted, 1); again != base {
		t.Fatalf("NewID not stable: %q then %q", base, again)
	}
	// A known value, so that a change to the derivation (which would make
	// receivers see redelivered events as new) fails loudly.
	if got, want := NewID("job-1", JobCompleted, 1), "evt_2cc354571585d00cb0546e500c556ea1"; got != want {
		t.Fatalf("NewID = %q, want %q", got, want)
	}

	tests := []struct {
		name    string
		job     string
		typ     Type
		attempt int
	}{
		{"other job", "job-2", JobCompleted, 1},
		{"other type", "job-1", JobFailed, 1},
		{"other attempt", "job-1", JobCompleted, 2},
		{"attempt zero", "job-1", JobCompleted, 0},
		{"negative attempt", "job-1", JobCompleted, -1},
		{"field boundary moved", "job-1j", Type("ob.completed"), 1},
		{"empty job", "", JobCompleted, 1},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := NewID(tt.job, tt.typ, tt.attempt)
			if !format.MatchString(id) {
				t.Fatalf("NewID = %q, bad format", id)
			}
			if prev, dup := seen[id]; dup {
				t.Fatalf("NewID(%q, %q, %d) = %q, same as %s", tt.job, tt.typ, tt.attempt, id, prev)
			}
			seen[id] = tt.name
		})
	}
	// All types and many attempts of many jobs: no collisions.
	all := map[string]bool{}
	for j := range 50 {
		for _, typ := range Types {
			for a := range 5 {
				all[NewID("job-"+strings.Repeat("x", j), typ, a)] = true
			}
		}
	}
	if len(all) != 50*len(Types)*5 {
		t.Fatalf("got %d distinct IDs, want %d", len(all), 50*len(Types)*5)
	}
}

func TestTypeValid(t *testing.T) {
	for _, typ := range Types {
		if !typ.Valid() {
			t.Errorf("%q not valid", typ)
		}
	}
	for _, typ := range []Type{"", "job.deleted", "JOB.CREATED", "smi_job_created"} {
		if typ.Valid() {
			t.Errorf("%q valid", typ)
		}
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	exp := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	e := New(JobCompleted, "job-1", 1, at, Data{Status: "completed", Resolution: "4x", DownloadExpiresAt: &exp})
	if e.ID != NewID("job-1", JobCompleted, 1) || e.Data.Attempt != 1 || e.Data.JobID != "job-1" {
		t.Fatalf("New = %+v", e)
	}
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + e.ID + `","type":"job.completed","timestamp":"2026-01-01T00:00:00Z",` +
		`"data":{"job_id":"job-1","status":"completed","resolution":"4x","download_expires_at":"2026-01-02T00:00:00Z","attempt":1}}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Marshal()
	if string(b2) != string(b) {
		t.Fatalf("round trip changed the body:\n%s\n%s", b, b2)
	}
}

func TestMarshalRefusesIncompleteEvents(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Event)
	}{
		{"no id", func(e *Event) { e.ID = "" }},
		{"unknown type", func(e *Event) { e.Type = "job.exploded" }},
		{"no job", func(e *Event) { e.Data.JobID = "" }},
		{"no timestamp", func(e *Event) { e.Timestamp = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New(JobCreated, "job-1", 0, time.Now(), Data{})
			tt.change(&e)
			if _, err := e.Marshal(); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Marshal = %v, want ErrInvalidEvent", err)
			}
		})
	}
}
