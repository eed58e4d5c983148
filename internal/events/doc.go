// Package events delivers the service's integration events per the
// Standard Webhooks specification (https://www.standardwebhooks.com):
// small JSON documents POSTed to the endpoints an admin registers through
// the admin API (/v1/admin/webhooks), each subscribed to some event types
// and signed with its own secret. They replace the WordPress hooks
// smi_job_created, smi_payment_completed, smi_job_completed and
// smi_job_failed.
//
// The package holds the catalogue (Types), the event document (Event,
// NewID), the endpoint rules (CheckURL, subscriptions, SigningSecrets
// during a rotation) and one delivery attempt (Sender.Deliver, signed with
// the specification's Go library). Storing endpoints, events and the
// delivery log is internal/store's; retries are the DeliverEvent
// activity's. Package eventschema checks bodies against the JSON Schemas.
//
// docs/events.md is the receivers' documentation: event types, body,
// headers, verification, retries and secret rotation. In short:
//
//	POST <endpoint URL>
//	Content-Type:      application/json
//	webhook-id:        evt_5a0c3c1e9f6b4d2a8e7f1b0c9d8e7f6a
//	webhook-timestamp: 1767225600
//	webhook-signature: v1,<base64 HMAC-SHA256> [v1,<...> while a secret is rotated]
//
//	{"id":"evt_5a0c…","type":"job.completed","timestamp":"2026-01-01T00:00:00Z",
//	 "data":{"job_id":"0b9d2c1e-…","status":"completed","resolution":"4x",
//	         "download_expires_at":"2026-01-02T00:00:00Z"}}
//
// The signature is HMAC-SHA256, keyed with the base64-decoded part of the
// endpoint's "whsec_" secret, over "<webhook-id>.<webhook-timestamp>.<body>";
// any Standard Webhooks library verifies it. The id is stable per job, type
// and processing attempt, and every delivery of an event, retries and
// manual redeliveries included, sends the same bytes under the same id.
// Events never carry emails, download links or tokens.
package events
