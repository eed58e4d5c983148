package upsampler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "sk-test-SECRET-123"

// answer is a canned HTTP response.
type answer struct {
	code    int
	body    string
	headers map[string]string
}

// recorded is the last request a test server saw.
type recorded struct {
	mu   sync.Mutex
	req  *http.Request
	body []byte
}

func (r *recorded) get() (*http.Request, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.req == nil {
		return &http.Request{URL: &url.URL{}}, ""
	}
	return r.req, string(r.body)
}

// serve returns a server that records the last request and replies with a.
func serve(t *testing.T, a answer) (*httptest.Server, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.req, rec.body = r.Clone(context.Background()), body
		rec.mu.Unlock()
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.code)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func TestSubmit(t *testing.T) {
	tests := []struct {
		name       string
		answer     answer
		wantJob    Job
		wantCode   int // 0: no *APIError expected
		wantMsg    string
		retryable  bool
		retryAfter time.Duration
		invalid    bool
	}{
		{
			name:    "success",
			answer:  answer{code: 200, body: `{"id":"job-1","status":"IN_QUEUE","creditCost":2,"extra":{"x":1}}`},
			wantJob: Job{ID: "job-1", Status: StatusInQueue, CreditCost: 2},
		},
		{
			name:    "immediately failed",
			answer:  answer{code: 200, body: `{"id":"job-2","status":"FAILED","error":"Insufficient credits"}`},
			wantJob: Job{ID: "job-2", Status: StatusFailed, Error: "Insufficient credits"},
		},
		{
			name:     "401",
			answer:   answer{code: 401, body: `{"error":"Invalid API key"}`},
			wantCode: 401, wantMsg: "Invalid API key",
		},
		{
			name:     "400 string error",
			answer:   answer{code: 400, body: `{"error":"upscaleFactor must be between 1 and 16"}`},
			wantCode: 400, wantMsg: "upscaleFactor must be between 1 and 16",
		},
		{
			name:     "400 object error",
			answer:   answer{code: 400, body: `{"error":{"code":"bad_input","message":"imageUrl is required"}}`},
			wantCode: 400, wantMsg: "imageUrl is required",
		},
		{
			name:     "400 object error without message",
			answer:   answer{code: 400, body: `{"error":{"code":"bad_input","field":"imageUrl"}}`},
			wantCode: 400, wantMsg: `{"code":"bad_input","field":"imageUrl"}`,
		},
		{
			name:     "429 with Retry-After",
			answer:   answer{code: 429, body: `{"error":"Rate limit exceeded"}`, headers: map[string]string{"Retry-After": "7"}},
			wantCode: 429, wantMsg: "Rate limit exceeded", retryable: true, retryAfter: 7 * time.Second,
		},
		{
			name:     "500 plain text",
			answer:   answer{code: 500, body: "upstream exploded"},
			wantCode: 500, wantMsg: "upstream exploded", retryable: true,
		},
		{
			name:     "503 empty body",
			answer:   answer{code: 503, headers: map[string]string{"Retry-After": "2"}},
			wantCode: 503, wantMsg: "Service Unavailable", retryable: true, retryAfter: 2 * time.Second,
		},
		{
			name:     "non-JSON 200",
			answer:   answer{code: 200, body: "<html>hello</html>"},
			wantCode: 200, wantMsg: "not a JSON object", invalid: true,
		},
		{
			name:     "missing id",
			answer:   answer{code: 200, body: `{"status":"IN_QUEUE"}`},
			wantCode: 200, wantMsg: "missing job id", invalid: true,
		},
		{
			name:     "error echoes the key",
			answer:   answer{code: 401, body: `{"error":"bad key sk-test-SECRET-123"}`},
			wantCode: 401, wantMsg: "bad key [redacted]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := serve(t, tt.answer)
			c := New(srv.URL+"/api/v1/", testKey, srv.Client())
			job, err := c.Submit(context.Background(), SubmitRequest{
				ImageURL: "https://example.com/in.png", UpscaleFactor: 4, WebhookURL: "https://example.com/hook",
			})
			got, body := rec.get()

			assert.Equal(t, http.MethodPost, got.Method)
			assert.Equal(t, "/api/v1/precise-upscale", got.URL.Path)
			assert.Equal(t, "Bearer "+testKey, got.Header.Get("Authorization"))
			assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
			assert.JSONEq(t, `{"webhook":"https://example.com/hook","input":{"imageUrl":"https://example.com/in.png","inputImageType":"universal","upscaleFactor":4}}`, body)

			if tt.wantCode == 0 {
				require.NoError(t, err)
				assert.Equal(t, tt.wantJob, job)
				return
			}
			require.Error(t, err)
			assert.NotContains(t, err.Error(), testKey)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.wantCode, apiErr.StatusCode)
			assert.Contains(t, apiErr.Message, tt.wantMsg)
			assert.Equal(t, tt.retryable, apiErr.Retryable())
			assert.Equal(t, tt.retryable, Retryable(err))
			assert.Equal(t, tt.retryAfter, apiErr.RetryAfter)
			assert.Equal(t, tt.invalid, errors.Is(err, ErrInvalidResponse))
			assert.True(t, strings.HasPrefix(err.Error(), "upsampler: submit: "), err.Error())
		})
	}
}

func TestSubmitOptionalFields(t *testing.T) {
	srv, rec := serve(t, answer{code: 200, body: `{"id":"j"}`})
	yes, no := true, false
	_, err := New(srv.URL, testKey, nil).Submit(context.Background(), SubmitRequest{
		ImageURL: "https://example.com/a.jpg", UpscaleFactor: 2.5, InputImageType: "anime",
		ShouldEnhanceFaces: &yes, ShouldPreserveBlur: &no,
	})
	require.NoError(t, err)
	_, body := rec.get()
	assert.JSONEq(t, `{"input":{"imageUrl":"https://example.com/a.jpg","inputImageType":"anime","upscaleFactor":2.5,"shouldEnhanceFaces":true,"shouldPreserveBlur":false}}`, body)
}

func TestTransportErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
	}))
	defer srv.Close()
	c := New(srv.URL, testKey, &http.Client{Timeout: 20 * time.Millisecond})
	_, err := c.Submit(context.Background(), SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 4})
	require.Error(t, err)
	var apiErr *APIError
	assert.False(t, errors.As(err, &apiErr))
	assert.True(t, Retryable(err))
	assert.NotContains(t, err.Error(), testKey)
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		want    Job
		wantErr string
	}{
		{
			name:   "success",
			answer: answer{code: 200, body: `{"id":"a/b c","status":"SUCCESS","imageUrl":"https://x/full.png","compressedImageUrl":"https://x/c.jpg","creditCost":"3"}`},
			want:   Job{ID: "a/b c", Status: StatusSuccess, ImageURL: "https://x/full.png", CompressedImageURL: "https://x/c.jpg", CreditCost: 3},
		},
		{
			name:   "in progress without id",
			answer: answer{code: 200, body: `{"status":"in_progress"}`},
			want:   Job{ID: "a/b c", Status: StatusInProgress},
		},
		{
			name:   "failed with object error",
			answer: answer{code: 200, body: `{"id":"a/b c","status":"FAILED","error":{"message":"Failed to process image"}}`},
			want:   Job{ID: "a/b c", Status: StatusFailed, Error: "Failed to process image"},
		},
		{name: "404", answer: answer{code: 404, body: `{"error":"Job not found"}`}, wantErr: "HTTP 404: Job not found"},
		{name: "missing status", answer: answer{code: 200, body: `{"id":"a/b c"}`}, wantErr: "missing status"},
		{name: "other job", answer: answer{code: 200, body: `{"id":"zzz","status":"SUCCESS"}`}, wantErr: `answer is for job "zzz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := serve(t, tt.answer)
			job, err := New(srv.URL, testKey, nil).Status(context.Background(), "a/b c")
			got, _ := rec.get()
			assert.Equal(t, http.MethodGet, got.Method)
			assert.Equal(t, "/status/a%2Fb%20c", got.URL.EscapedPath())
			assert.Equal(t, "Bearer "+testKey, got.Header.Get("Authorization"))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.False(t, Retryable(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, job)
		})
	}
}

func TestParseCallback(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Job
		wantErr bool
	}{
		{
			name: "success",
			body: `{"id":"u1","status":"SUCCESS","compressedImageUrl":"https://x/c.jpg","imageUrl":"https://x/f.png","creditCost":2,"unknown":[1]}`,
			want: Job{ID: "u1", Status: StatusSuccess, ImageURL: "https://x/f.png", CompressedImageURL: "https://x/c.jpg", CreditCost: 2},
		},
		{
			name: "failed",
			body: `{"id":"u2","status":"FAILED","error":"Failed to process image due to an internal error. Your credits have been refunded."}`,
			want: Job{ID: "u2", Status: StatusFailed, Error: "Failed to process image due to an internal error. Your credits have been refunded."},
		},
		{name: "missing id", body: `{"status":"SUCCESS"}`, wantErr: true},
		{name: "missing status", body: `{"id":"u3"}`, wantErr: true},
		{name: "not json", body: `id=u4&status=SUCCESS`, wantErr: true},
		{name: "bad creditCost", body: `{"id":"u5","status":"SUCCESS","creditCost":{}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := ParseCallback([]byte(tt.body))
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalidResponse)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, job)
		})
	}
}

func TestTerminal(t *testing.T) {
	for status, want := range map[string]bool{
		StatusInQueue: false, StatusInProgress: false, StatusSuccess: true, StatusFailed: true, "CANCELLED": false, "": false,
	} {
		assert.Equal(t, want, Job{Status: status}.Terminal(), status)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 30*time.Second, parseRetryAfter("30", now))
	assert.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, parseRetryAfter("soon", now))
	assert.Zero(t, parseRetryAfter("-1", now))
	assert.Zero(t, parseRetryAfter("", now))
}

func TestJobMarshals(t *testing.T) {
	// Callers put Job into Temporal payloads; it must survive a JSON round trip.
	in := Job{ID: "x", Status: StatusSuccess, ImageURL: "u", CreditCost: 1.5}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var out Job
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
}
