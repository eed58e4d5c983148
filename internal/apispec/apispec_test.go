package apispec_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hires/api"
	"hires/internal/apispec"
)

const jobID = "3f8e0b9e-8a5a-4a51-9f0f-0d1f0b3b9b7a"

func answer(status int, contentType, body string) *http.Response {
	h := http.Header{"X-Request-Id": {"req-1"}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &http.Response{StatusCode: status, Header: h}
}

const errBody = `{"error":{"code":"not_found","message":"not found"}}`

const adminJSON = `{"id":"` + jobID + `","status":"completed","payment_status":"paid","resolution":"4x",
"image_width":100,"image_height":100,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z",
"price":{"currency":"usd","amount_cents":50,"output_width":400,"output_height":400,"credits":1,"cost_cents":4,"markup_percent":200},
"image_url":"https://images.example.com/a.png","email":null,"post_id":1,"attachment_id":null,"checkout_session_id":null,
"checkout_expires_at":null,"payment_intent_id":null,"amount_paid_cents":null,"paid_currency":null,"customer_email":null,
"refund_id":null,"refund_amount_cents":null,"refunded_at":null,"refund_status":null,"refund_confirmed_at":null,
"refund_error":null,"attempt":1,"upsampler_job_id":null,"upsampler_credits":null,"upsampler_cost_cents":null,
"failure_reason":null,"failure_detail":null,"result_content_type":null,"result_bytes":null,"result_sha256":null,
"result_width":null,"result_height":null,"download_expired_at":null,"margin_cents":null,"workflow_id":"job:` + jobID + `",
"events":[]}`

func TestCheck(t *testing.T) {
	s, err := apispec.Load(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	admin := map[string]string{"Authorization": "Bearer admin-token"}
	for _, tt := range []struct {
		name              string
		method, path      string
		header            map[string]string
		reqBody           string
		status            int
		contentType, body string
		wantErr           string // "" means no violation
	}{
		{"admin job", "GET", "/v1/admin/jobs/" + jobID, admin, "", 200, "application/json", adminJSON, ""},
		{"admin job with an extra field", "GET", "/v1/admin/jobs/" + jobID, admin, "", 200, "application/json",
			strings.Replace(adminJSON, `"attempt":1`, `"attempt":1,"secret":"x"`, 1), "secret"},
		{"admin job without a required field", "GET", "/v1/admin/jobs/" + jobID, admin, "", 200, "application/json",
			strings.Replace(adminJSON, `"attempt":1,`, ``, 1), "attempt"},
		{"undeclared status", "GET", "/v1/admin/jobs/" + jobID, admin, "", 409, "application/json", errBody, "not declared"},
		{"missing admin token refused", "GET", "/v1/admin/jobs/" + jobID, nil, "", 401, "application/json",
			`{"error":{"code":"unauthorized","message":"no"}}`, ""},
		{"missing admin token accepted", "GET", "/v1/admin/jobs/" + jobID, nil, "", 200, "application/json", adminJSON,
			"yet it was answered 200"},
		{"malformed error body", "GET", "/v1/admin/jobs/" + jobID, admin, "", 404, "application/json", `{"error":"nope"}`, "error"},
		{"bad JSON refused", "POST", "/v1/admin/jobs/" + jobID + "/refund-settled", admin, `{"note":`, 400, "application/json",
			`{"error":{"code":"invalid_json","message":"bad"}}`, ""},
		{"unknown field accepted", "POST", "/v1/admin/jobs/" + jobID + "/refund-settled", admin, `{"note":"x","z":1}`, 200,
			"application/json", adminJSON, "yet it was answered 200"},
		{"unknown path", "GET", "/v1/nope", nil, "", 404, "application/json", errBody, ""},
		{"unknown path answered 200", "GET", "/v1/nope", nil, "", 200, "application/json", `{}`, "no documented operation"},
		{"wrong method", "DELETE", "/v1/jobs/" + jobID, nil, "", 405, "application/json",
			`{"error":{"code":"method_not_allowed","message":"Method Not Allowed"}}`, ""},
		{"options", "OPTIONS", "/v1/downloads/x", nil, "", 204, "", "", ""},
		{"dev route excluded", "POST", "/dev/jobs/" + jobID + "/pay", nil, "", 303, "", "", ""},
		{"HEAD without body", "HEAD", "/v1/downloads/" + strings.Repeat("a", 64), nil, "", 410, "", "", ""},
		{"rate limited without Retry-After", "GET", "/v1/downloads/" + strings.Repeat("a", 64), nil, "", 429,
			"application/json", `{"error":{"code":"rate_limited","message":"slow"}}`, "Retry-After"},
		{"healthz", "GET", "/healthz", nil, "", 200, "application/json", `{"status":"ok"}`, ""},
		{"healthz wrong", "GET", "/healthz", nil, "", 200, "application/json", `{"status":"fine"}`, "status"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.reqBody))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp := answer(tt.status, tt.contentType, tt.body)
			if tt.name == "rate limited without Retry-After" {
				resp.Header.Del("Retry-After")
			}
			err := s.Check(req, []byte(tt.reqBody), resp, []byte(tt.body))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected violation: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("no violation, want one about %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("violation %v, want one about %q", err, tt.wantErr)
			}
		})
	}
}
