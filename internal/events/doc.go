// Package events delivers the service's integration events: small JSON
// documents POSTed to the HTTP endpoints an operator lists in
// EVENT_WEBHOOK_URLS, each signed with EVENT_WEBHOOK_SECRET. They replace
// the WordPress hooks smi_job_created, smi_payment_completed,
// smi_job_completed and smi_job_failed.
//
// The text below, from "Event types" on, is written for receivers.
//
// # Event types
//
//   - job.created: a customer created a job (it is awaiting payment).
//   - payment.completed: the job's payment succeeded.
//   - job.completed: the upscaled image is ready to download.
//   - job.failed: processing failed; any refund is reported in the data.
//
// # Request
//
// Each delivery is one HTTP POST with these headers:
//
//	Content-Type:     application/json
//	User-Agent:       hires-events/1
//	Hires-Event-Id:   evt_5a0c3c1e9f6b4d2a8e7f1b0c9d8e7f6a
//	Hires-Event-Type: job.completed
//	Hires-Signature:  t=1767225600,v1=<64 hex digits>
//
// and a body such as:
//
//	{
//	  "id": "evt_5a0c3c1e9f6b4d2a8e7f1b0c9d8e7f6a",
//	  "type": "job.completed",
//	  "created_at": "2026-01-01T00:00:00Z",
//	  "job_id": "0b9d2c1e-…",
//	  "data": {
//	    "status": "completed",
//	    "resolution": "4x",
//	    "download_expires_at": "2026-01-02T00:00:00Z"
//	  }
//	}
//
// Fields of data that do not apply to an event are left out. They are
// status (the job's status), resolution ("4x", "8x"), price_cents,
// amount_paid_cents and refunded_cents (amounts in the currency's minor
// unit), currency (lower-case ISO 4217 code, e.g. "usd"), payment_intent_id,
// download_expires_at (RFC 3339), failure_reason and attempt (the job's
// processing attempt, when a job is retried). Ignore fields you do not know:
// more may be added. Events never carry download links or tokens.
//
// # Delivery and retries
//
// Delivery is at least once. Answer with any 2xx status as soon as the event
// is stored; the body of the answer is ignored. Timeouts, network errors,
// 408, 429 and 5xx answers are retried with backoff, for a while. Any other
// answer (3xx, or a 4xx other than 408 and 429) is taken as a permanent
// rejection and that event is not sent to that endpoint again. Redirects are
// not followed.
//
// So the same event can arrive more than once, and events can arrive out of
// order. Every delivery of one event carries the same id (also in the
// Hires-Event-Id header): deduplicate on it, and order by created_at.
//
// # Verifying a request
//
// Hires-Signature is a comma-separated list of key=value pairs: t, the time
// of signing in Unix seconds, and one or more v1, each a lower-case hex
// HMAC-SHA256. There may be more than one v1 (one per secret, while a secret
// is being rotated); accept the request if any one of them matches. Ignore
// keys other than t and v1. To verify:
//
//  1. Read the raw request body as bytes, before parsing any JSON.
//  2. Compute HMAC-SHA256 keyed with the shared secret over the bytes of
//     the t value exactly as sent, a full stop ".", then the raw body:
//     HMAC-SHA256(secret, t + "." + body). Hex-encode it.
//  3. Compare it, in constant time, with each v1 value. Accept the request
//     if any one matches.
//  4. Reject the request if t is more than a tolerance (5 minutes is
//     recommended) away from your clock, to limit replays. Each delivery
//     attempt is signed afresh, so only clock skew makes a genuine one stale.
//  5. Deduplicate on id.
//
// A rejection with a 4xx status (other than 408 and 429) ends delivery of
// that event to you; answer 503 instead if you want it retried, for example
// while you change secrets.
//
// For example, in a shell, with the body in body.json:
//
//	printf '%s.' "$t" | cat - body.json | openssl dgst -sha256 -hmac "$EVENT_WEBHOOK_SECRET"
//
// Go receivers can call Verify, which does steps 2 to 4:
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	err := events.Verify(secret, r.Header.Get("Hires-Signature"), body, 5*time.Minute, time.Now())
package events
