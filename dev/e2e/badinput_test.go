//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	stripego "github.com/stripe/stripe-go/v76"
	enumspb "go.temporal.io/api/enums/v1"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/payments"
)

type errorAnswer struct {
	Error api.Error `json:"error"`
}

// snapshot counts what bad requests must not change: jobs, Stripe effects,
// Upsampler submissions.
type snapshot struct{ jobs, stripe, upsampler int }

func take(t *testing.T) snapshot {
	t.Helper()
	total := 0
	cursor := ""
	for { // page through everything
		var list api.JobList // a fresh one: the last page has no next_cursor to overwrite
		path := "/v1/admin/jobs?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		require.Equal(t, http.StatusOK, call(t, "GET", path, admin(), nil, nil, &list))
		total += len(list.Jobs)
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	// Stripe effects a request could cause: sessions created and refunds.
	// (Expiries of other tests' sessions may happen meanwhile.)
	effects := 0
	for _, c := range stripe.Effects("POST", "/v1/") {
		if c.Path == "/v1/checkout/sessions" || c.Path == "/v1/refunds" {
			effects++
		}
	}
	return snapshot{jobs: total, stripe: effects, upsampler: len(stack.Upsampler.Requests())}
}

func TestBadInputJobRequestsChangeNothing(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"image_url": stack.SampleImageURL(400, 300), "resolution": "4x",
			"email": "a@example.com", "post_id": 1, "attachment_id": 2, "image_width": 400, "image_height": 300}
	}
	with := func(k string, v any) map[string]any { m := good(); m[k] = v; return m }
	without := func(k string) map[string]any { m := good(); delete(m, k); return m }
	tests := []struct {
		name   string
		body   any
		header map[string]string
		status int
		code   string
		field  string
	}{
		{"not JSON", "{", nil, 400, "invalid_json", ""},
		{"wrong type", with("image_width", "400"), nil, 400, "invalid_json", ""},
		{"unknown field", with("price", 1), nil, 400, "invalid_json", ""},
		{"two objects", `{"resolution":"4x"} {}`, nil, 400, "invalid_json", ""},
		{"missing image_url", without("image_url"), nil, 422, "required", "image_url"},
		{"unknown resolution", with("resolution", "2x"), nil, 422, "invalid_resolution", "resolution"},
		{"missing resolution", without("resolution"), nil, 422, "invalid_resolution", "resolution"},
		{"host not allowed", with("image_url", "https://evil.example.org/a.png"), nil, 422, "image_url_not_allowed", "image_url"},
		{"loopback not allowed", with("image_url", "http://127.0.0.1:1/a.png"), nil, 422, "image_url_not_allowed", "image_url"},
		{"metadata address", with("image_url", "http://169.254.169.254/latest"), nil, 422, "image_url_not_allowed", "image_url"},
		{"not a URL", with("image_url", "not a url"), nil, 422, "image_url_not_allowed", "image_url"},
		{"file URL", with("image_url", "file:///etc/passwd"), nil, 422, "image_url_not_allowed", "image_url"},
		{"credentials in URL", with("image_url", "http://u:p@"+stack.Env["SOURCE_HOSTS"]+"/a.png"), nil, 422, "image_url_not_allowed", "image_url"},
		{"bad email", with("email", "not-an-email"), nil, 422, "invalid_email", "email"},
		{"email with name", with("email", "Ann <a@example.com>"), nil, 422, "invalid_email", "email"},
		{"image too small", with("image_width", 99), nil, 422, "image_too_small", "image_width"},
		{"zero height", with("image_height", 0), nil, 422, "image_too_small", "image_height"},
		{"absurd width", with("image_width", 1_000_000), nil, 422, "image_too_large", "image_width"},
		{"output over the pixel limit", with("resolution", "8x"), nil, 201, "", ""}, // 3200x2400 is fine...
		{"output over the pixel limit at 8x", map[string]any{"image_url": stack.SampleImageURL(400, 300), "resolution": "8x",
			"image_width": 4000, "image_height": 3000}, nil, 422, "output_too_large", "resolution"},
		{"negative post_id", with("post_id", -1), nil, 422, "invalid_post_id", "post_id"},
		{"negative attachment_id", with("attachment_id", -5), nil, 422, "invalid_attachment_id", "attachment_id"},
		{"idempotency key too long", good(), map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid_idempotency_key", ""},
		{"idempotency key with spaces", good(), map[string]string{"Idempotency-Key": "a b"}, 400, "invalid_idempotency_key", ""},
		{"body too large", `{"image_url":"` + strings.Repeat("a", 20000) + `"}`, nil, 413, "body_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.status == 201 {
				return // a control case, exercised elsewhere
			}
			before := take(t)
			var out errorAnswer
			status := call(t, "POST", "/v1/jobs", stack.SiteKey, tt.body, tt.header, &out)
			require.Equal(t, tt.status, status)
			require.Equal(t, tt.code, out.Error.Code)
			require.Equal(t, tt.field, out.Error.Field)
			require.NotEmpty(t, out.Error.Message)
			require.Equal(t, before, take(t), "nothing changed")
		})
	}
}

func TestBadInputIdempotencyKeyReusedWithAnotherRequest(t *testing.T) {
	key := "reuse-" + time.Now().Format(time.RFC3339Nano)
	_, status := newJob(t, 300, 300, "4x", key)
	require.Equal(t, http.StatusCreated, status)
	before := take(t)
	var out errorAnswer
	status = call(t, "POST", "/v1/jobs", stack.SiteKey, createReq{ImageURL: stack.SampleImageURL(300, 300), Resolution: "8x",
		ImageWidth: 300, ImageHeight: 300}, map[string]string{"Idempotency-Key": key}, &out)
	require.Equal(t, http.StatusUnprocessableEntity, status)
	require.Equal(t, "idempotency_key_reused", out.Error.Code)
	require.Equal(t, before, take(t))
}

// effects are what a rejected webhook must leave as they were: the job's
// row (every column, updated_at included) and audit trail, the Stripe
// events recorded for the job or the event, and the signals its workflow
// received.
type effects struct {
	row     string
	trail   int
	stripe  int
	signals int
}

func effectsOn(t *testing.T, db *pgx.Conn, jobID, eventID string) effects {
	t.Helper()
	ctx := context.Background()
	var e effects
	require.NoError(t, db.QueryRow(ctx, `SELECT to_jsonb(j)::text FROM jobs j WHERE id = $1`, jobID).Scan(&e.row))
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM job_events WHERE job_id = $1`, jobID).Scan(&e.trail))
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM stripe_events WHERE job_id = $1 OR event_id = $2`, jobID, eventID).Scan(&e.stripe))
	it := temporal.GetWorkflowHistory(ctx, jobs.WorkflowID(jobID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			e.signals++
		}
	}
	return e
}

func connectDB(t *testing.T) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(context.Background(), stack.Env["DATABASE_URL"])
	require.NoError(t, err)
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// Forged, replayed and malformed Stripe deliveries are answered 400 (413
// when too large) and change nothing: not the job's row or trail, not the
// Stripe events recorded, no signal to its workflow, no Stripe call, no
// job, no Upsampler submission. The genuine delivery at the end shows the
// same checks do see an effect.
func TestBadInputStripeWebhooksHaveNoEffect(t *testing.T) {
	created := longWindowJob(t, 300, 300) // awaiting payment throughout
	j := adminJob(t, created.ID)
	session := payments.Session{ID: *j.CheckoutSessionID, Status: "complete", PaymentStatus: "paid",
		PaymentIntentID: "pi_test", AmountTotal: 50, Currency: "usd", JobID: created.ID, ClientReferenceID: created.ID}
	secret := stack.Env["STRIPE_WEBHOOK_SECRET"]
	now := time.Now()
	eventID := payments.NewEventID()
	payload, err := payments.CheckoutEventPayload(eventID, "checkout.session.completed", session, now)
	require.NoError(t, err)
	wrongVersion := strings.Replace(string(payload), stripego.APIVersion, "2025-03-31.basil", 1)
	var event map[string]any
	require.NoError(t, json.Unmarshal(payload, &event))
	event["type"] = "customer.created"
	unhandled, _ := json.Marshal(event)
	good := payments.SignPayload(payload, secret, now)
	_, goodV1, _ := strings.Cut(good, ",v1=")
	ts := strconv.FormatInt(now.Unix(), 10)

	tests := []struct {
		name    string
		body    string
		sig     string
		status  int
		outcome string
	}{
		{"no signature", string(payload), "", 400, ""},
		{"garbage signature", string(payload), "t=1,v1=abc", 400, ""},
		{"no timestamp", string(payload), "v1=" + goodV1, 400, ""},
		{"signature moved to another timestamp", string(payload), "t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + goodV1, 400, ""},
		{"v0 scheme only", string(payload), "t=" + ts + ",v0=" + goodV1, 400, ""},
		{"truncated signature", string(payload), good[:len(good)-2], 400, ""},
		{"wrong secret", string(payload), payments.SignPayload(payload, "whsec_other", now), 400, ""},
		{"tampered body", strings.Replace(string(payload), `"amount_total":50`, `"amount_total":1`, 1), good, 400, ""},
		{"replayed after 10 minutes", string(payload), payments.SignPayload(payload, secret, now.Add(-10*time.Minute)), 400, ""},
		{"replayed just past the tolerance", string(payload), payments.SignPayload(payload, secret, now.Add(-301*time.Second)), 400, ""},
		{"API version mismatch", wrongVersion, payments.SignPayload([]byte(wrongVersion), secret, now), 400, ""},
		{"not JSON but signed", "not json", payments.SignPayload([]byte("not json"), secret, now), 400, ""},
		{"empty body", "", payments.SignPayload(nil, secret, now), 400, ""},
		{"oversized", strings.Repeat(" ", 70<<10), "t=1,v1=abc", 413, ""},
		{"unhandled type is acknowledged", string(unhandled), payments.SignPayload(unhandled, secret, now), 200, "ignored"},
	}
	db := connectDB(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, effectsBefore := take(t), effectsOn(t, db, created.ID, eventID)
			var out map[string]any
			status := call(t, "POST", "/v1/webhooks/stripe", "", tt.body, map[string]string{"Stripe-Signature": tt.sig}, &out)
			require.Equal(t, tt.status, status, out)
			if tt.outcome != "" {
				require.Equal(t, tt.outcome, out["status"])
			} else {
				require.NotEmpty(t, out["error"])
			}
			require.Equal(t, before, take(t))
			require.Equal(t, effectsBefore, effectsOn(t, db, created.ID, eventID), "no effect on the job")
		})
	}
	// None of it reached the job.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, "awaiting_payment", string(adminJob(t, created.ID).Status))

	// Control: the genuine event is recorded and signalled.
	before := effectsOn(t, db, created.ID, eventID)
	var out map[string]any
	require.Equal(t, http.StatusOK, call(t, "POST", "/v1/webhooks/stripe", "", payload,
		map[string]string{"Stripe-Signature": payments.SignPayload(payload, secret, time.Now())}, &out))
	require.Equal(t, "signalled", out["status"])
	after := effectsOn(t, db, created.ID, eventID)
	require.Equal(t, before.signals+1, after.signals)
	require.Equal(t, before.stripe+1, after.stripe)
	// The paid job goes to Upsampler: let it finish, so that its requests
	// are not counted as another test's effects.
	waitFor(t, created.ID, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
}

func TestBadInputOnOtherEndpoints(t *testing.T) {
	created := longWindowJob(t, 300, 300) // awaiting payment throughout
	id := created.ID
	tests := []struct {
		name, method, path, bearer, body string
		status                           int
	}{
		{"job id not a UUID", "GET", "/v1/jobs/not-a-uuid", created.AccessToken, "", 404},
		{"unknown job", "GET", "/v1/jobs/00000000-0000-4000-8000-000000000000", created.AccessToken, "", 404},
		{"another job's token", "GET", "/v1/jobs/" + id, changeFirst(created.AccessToken), "", 404},
		{"download token malformed", "GET", "/v1/downloads/short", "", "", 404},
		{"download token unknown", "GET", "/v1/downloads/" + strings.Repeat("A", 64), "", "", 404},
		{"admin without token", "GET", "/v1/admin/jobs", "", "", 401},
		{"admin with a wrong token", "GET", "/v1/admin/jobs", "wrong-token-0123456789", "", 401},
		{"admin with a job's token", "GET", "/v1/admin/jobs", created.AccessToken, "", 401},
		{"admin bad status", "GET", "/v1/admin/jobs?status=completed,done", admin(), "", 422},
		{"admin limit too large", "GET", "/v1/admin/jobs?limit=1000", admin(), "", 422},
		{"admin limit not a number", "GET", "/v1/admin/jobs?limit=ten", admin(), "", 422},
		{"admin bad order_by", "GET", "/v1/admin/jobs?order_by=price", admin(), "", 422},
		{"admin bad cursor", "GET", "/v1/admin/jobs?cursor=yesterday", admin(), "", 422},
		{"admin unknown job", "GET", "/v1/admin/jobs/00000000-0000-4000-8000-000000000000", admin(), "", 404},
		{"upsampler callback with a wrong secret", "POST", "/v1/webhooks/upsampler/" + id + "/wrong", "", `{"id":"x","status":"SUCCESS"}`, 404},
		{"upsampler callback for an unknown job", "POST", "/v1/webhooks/upsampler/00000000-0000-4000-8000-000000000000/x", "", `{"id":"x","status":"SUCCESS"}`, 404},
		{"unknown route", "GET", "/v1/nothing", "", "", 404},
		{"wrong method", "DELETE", "/v1/jobs/" + id, "", "", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := take(t)
			var out errorAnswer
			var body any
			if tt.body != "" {
				body = tt.body
			}
			status := call(t, tt.method, tt.path, tt.bearer, body, nil, &out)
			require.Equal(t, tt.status, status)
			require.NotEmpty(t, out.Error.Code)
			require.NotEmpty(t, out.Error.Message)
			require.Equal(t, before, take(t))
		})
	}
}

// Upsampler callbacks with a wrong secret (404) or, with the job's real
// secret, a malformed body (400) change nothing: no signal, the job's row
// and trail as they were. The well-formed callback at the end is signalled
// (the workflow treats it as a hint only).
func TestBadInputUpsamplerCallbacksHaveNoEffect(t *testing.T) {
	created := longWindowJob(t, 300, 300) // awaiting payment throughout
	db := connectDB(t)
	var secret string
	require.NoError(t, db.QueryRow(context.Background(), `SELECT callback_secret FROM jobs WHERE id = $1`, created.ID).Scan(&secret))
	require.NotEmpty(t, secret)
	base := "/v1/webhooks/upsampler/" + created.ID + "/"
	forged := `{"id":"forged","status":"SUCCESS","imageUrl":"http://169.254.169.254/latest/meta-data/"}`
	tests := []struct {
		name, path, body string
		status           int
	}{
		{"guessed secret", base + strings.Repeat("a", len(secret)), forged, 404},
		{"secret's prefix", base + secret[:len(secret)-1], forged, 404},
		{"secret with one more character", base + secret + "a", forged, 404},
		{"secret in another case", base + strings.ToUpper(secret), forged, 404},
		{"another job's path", "/v1/webhooks/upsampler/00000000-0000-4000-8000-000000000000/" + secret, forged, 404},
		{"not JSON", base + secret, "{", 400},
		{"JSON null", base + secret, "null", 400},
		{"JSON array", base + secret, `[{"id":"x","status":"SUCCESS"}]`, 400},
		{"no id", base + secret, `{"status":"SUCCESS"}`, 400},
		{"no status", base + secret, `{"id":"x"}`, 400},
		{"id of the wrong type", base + secret, `{"id":7,"status":"SUCCESS"}`, 400},
		{"over 1 MB", base + secret, `{"id":"x","status":"SUCCESS","pad":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := effectsOn(t, db, created.ID, "")
			var out errorAnswer
			status := call(t, "POST", tt.path, "", tt.body, nil, &out)
			require.Equal(t, tt.status, status)
			require.NotEmpty(t, out.Error.Code)
			require.Equal(t, before, effectsOn(t, db, created.ID, ""), "no effect on the job")
		})
	}

	before := effectsOn(t, db, created.ID, "")
	require.Equal(t, http.StatusOK, call(t, "POST", base+secret, "", `{"id":"ups_hint","status":"IN_PROGRESS"}`, nil, nil))
	require.Equal(t, before.signals+1, effectsOn(t, db, created.ID, "").signals)
	require.Equal(t, "awaiting_payment", string(adminJob(t, created.ID).Status))
}

// changeFirst returns tok with its first character replaced by a different
// one, so the result is never the token itself.
func changeFirst(tok string) string {
	c := byte('x')
	if tok[0] == c {
		c = 'y'
	}
	return string(c) + tok[1:]
}
