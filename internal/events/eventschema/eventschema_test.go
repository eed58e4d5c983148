package eventschema

import (
	"strings"
	"testing"
	"time"

	"hires/internal/events"
)

func TestSampleEventsMatchTheirSchemas(t *testing.T) {
	v, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	exp := at.Add(24 * time.Hour)
	job := "5849a7a2-7d0e-4c5e-9a65-6a3c1b2f1d10"
	base := events.Data{Status: "awaiting_payment", Resolution: "4x", PriceCents: 384, Currency: "usd"}
	paid := base
	paid.Status, paid.AmountPaidCents, paid.PaymentIntentID = "pending", 384, "pi_3Abc"
	done := paid
	done.Status, done.DownloadExpiresAt = "completed", &exp
	failed := paid
	failed.Status, failed.FailureReason, failed.RefundedCents = "failed", "upsampler_failed", 384

	valid := []events.Event{
		events.New(events.JobCreated, job, 0, at, base),
		events.New(events.PaymentCompleted, job, 0, at, paid),
		events.New(events.JobCompleted, job, 0, at, done),
		events.New(events.JobCompleted, job, 2, at, done), // an admin's retry
		events.New(events.JobFailed, job, 0, at, failed),
	}
	for _, e := range valid {
		t.Run("valid "+string(e.Type), func(t *testing.T) {
			b, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(b); err != nil {
				t.Fatalf("%s\n%v", b, err)
			}
		})
	}

	completed, _ := events.New(events.JobCompleted, job, 0, at, done).Marshal()
	invalid := []struct {
		name string
		body string
	}{
		{"no expiry on job.completed", strings.Replace(string(completed), `,"download_expires_at":"2026-01-02T12:00:00Z"`, "", 1)},
		{"a download link", strings.Replace(string(completed), `"status"`, `"download_url":"https://x/v1/downloads/t","status"`, 1)},
		{"an email", strings.Replace(string(completed), `"status"`, `"email":"a@example.com","status"`, 1)},
		{"unknown type", strings.Replace(string(completed), `"job.completed"`, `"job.deleted"`, 1)},
		{"bad timestamp", strings.Replace(string(completed), `"2026-01-01T12:00:00Z"`, `"yesterday"`, 1)},
		{"bad id", strings.Replace(string(completed), `"evt_`, `"ev_`, 1)},
		{"not JSON", `{`},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.name, func(t *testing.T) {
			if tt.body == string(completed) {
				t.Fatal("the test's replacement changed nothing")
			}
			if err := v.Validate([]byte(tt.body)); err == nil {
				t.Fatalf("%s validated", tt.body)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Fatal("Load of a directory without schemas succeeded")
	}
}
