// Package upsampler is a small client for the Upsampler image-upscaling API
// (https://upsampler.com/api/v1). Upsampler has no public reference docs; the
// shapes here follow the two known working clients (see
// shared/reference/external-apis.md §B1), so responses are parsed leniently.
package upsampler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Upsampler's production API root.
const DefaultBaseURL = "https://upsampler.com/api/v1"

// Job statuses as reported by Upsampler.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusSuccess    = "SUCCESS"
	StatusFailed     = "FAILED"
)

// DefaultInputImageType is sent when SubmitRequest.InputImageType is empty.
const DefaultInputImageType = "universal"

// maxBody caps how much of any response we read.
const maxBody = 1 << 20

// ErrInvalidResponse marks a 2xx answer we cannot use (not JSON, no id, ...).
// It is wrapped in an *APIError that is not retryable.
var ErrInvalidResponse = errors.New("invalid response from upsampler")

// Client calls the Upsampler API. It is safe for concurrent use.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
}

// New returns a client for baseURL (e.g. DefaultBaseURL) authenticating with
// apiKey. A nil httpClient means a client with a 60 s timeout.
func New(baseURL, apiKey string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, http: httpClient}
}

// SubmitRequest describes one precise-upscale job.
type SubmitRequest struct {
	ImageURL       string  // public URL Upsampler fetches the input from
	UpscaleFactor  float64 // 1–16 for precise-upscale
	InputImageType string  // realism | anime | universal (default)
	WebhookURL     string  // optional; Upsampler POSTs the finished job here
	// Optional flags, sent only when set.
	ShouldEnhanceFaces *bool
	ShouldPreserveBlur *bool
}

// Job is Upsampler's view of a job, from submit, status or a webhook.
type Job struct {
	ID                 string
	Status             string
	ImageURL           string // full-quality PNG; expires after ~3 h
	CompressedImageURL string
	CreditCost         float64
	Error              string
}

// Terminal reports whether the job has finished. Unknown statuses are not
// terminal, so callers keep waiting (and polling) rather than guessing.
func (j Job) Terminal() bool {
	return j.Status == StatusSuccess || j.Status == StatusFailed
}

// APIError is a non-2xx answer, or a 2xx answer we could not use.
type APIError struct {
	StatusCode int
	Message    string
	RetryAfter time.Duration // from Retry-After on 429/503, else 0

	cause error // ErrInvalidResponse for unusable 2xx answers
}

func (e *APIError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%v (HTTP %d): %s", e.cause, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
}

func (e *APIError) Unwrap() error { return e.cause }

// Retryable is true for 429 and 5xx; other answers will not change on retry.
func (e *APIError) Retryable() bool {
	if e.cause != nil {
		return false
	}
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Retryable classifies any error returned by this package: *APIError decides
// for itself, anything else (transport errors, timeouts) is retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Retryable()
	}
	return true
}

// Ambiguous reports whether a failed Submit may still have created a job
// at Upsampler: the request may have been read and acted on, but the answer
// was lost (a timeout or a broken connection after sending, a gateway's
// 502/504, any 5xx but 503, or a success answer we cannot read). Sending the
// image again could upscale, and charge, it twice. A refused connection, a
// name that does not resolve, 429 and 503 mean nothing was done.
func Ambiguous(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		if errors.Is(apiErr.cause, ErrInvalidResponse) {
			return apiErr.StatusCode >= 200 && apiErr.StatusCode <= 299
		}
		return apiErr.StatusCode >= 500 && apiErr.StatusCode != http.StatusServiceUnavailable
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	var dnsErr *net.DNSError
	return !errors.As(err, &dnsErr)
}

type submitBody struct {
	Webhook string      `json:"webhook,omitempty"`
	Input   submitInput `json:"input"`
}

type submitInput struct {
	ImageURL           string  `json:"imageUrl"`
	InputImageType     string  `json:"inputImageType"`
	UpscaleFactor      float64 `json:"upscaleFactor"`
	ShouldEnhanceFaces *bool   `json:"shouldEnhanceFaces,omitempty"`
	ShouldPreserveBlur *bool   `json:"shouldPreserveBlur,omitempty"`
}

// Submit starts a precise-upscale job. Upsampler answers at once with the
// job id; the job may already be FAILED (e.g. insufficient credits).
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (Job, error) {
	typ := req.InputImageType
	if typ == "" {
		typ = DefaultInputImageType
	}
	body, err := json.Marshal(submitBody{
		Webhook: req.WebhookURL,
		Input: submitInput{
			ImageURL:           req.ImageURL,
			InputImageType:     typ,
			UpscaleFactor:      req.UpscaleFactor,
			ShouldEnhanceFaces: req.ShouldEnhanceFaces,
			ShouldPreserveBlur: req.ShouldPreserveBlur,
		},
	})
	if err != nil {
		return Job{}, fmt.Errorf("upsampler: submit: %w", err)
	}
	job, err := c.do(ctx, http.MethodPost, "/precise-upscale", body)
	if err == nil && job.ID == "" {
		err = invalid("missing job id")
	}
	if err != nil {
		return Job{}, fmt.Errorf("upsampler: submit: %w", err)
	}
	return job, nil
}

// Status fetches the current state of job id.
func (c *Client) Status(ctx context.Context, id string) (Job, error) {
	if id == "" {
		return Job{}, errors.New("upsampler: status: empty job id")
	}
	job, err := c.do(ctx, http.MethodGet, "/status/"+url.PathEscape(id), nil)
	switch {
	case err != nil:
	case job.Status == "":
		err = invalid("missing status")
	case job.ID == "":
		job.ID = id // the status answer may omit the id we asked about
	case job.ID != id:
		err = invalid(fmt.Sprintf("answer is for job %q", job.ID))
	}
	if err != nil {
		return Job{}, fmt.Errorf("upsampler: status %s: %w", id, err)
	}
	return job, nil
}

// ParseCallback parses a webhook body. It needs at least id and status; the
// body is unauthenticated, so callers should confirm it with Status.
func ParseCallback(body []byte) (Job, error) {
	job, err := parseJob(body)
	if err != nil {
		return Job{}, fmt.Errorf("upsampler: callback: %w", invalid(err.Error()))
	}
	if job.ID == "" || job.Status == "" {
		return Job{}, fmt.Errorf("upsampler: callback: %w", invalid("id and status are required"))
	}
	return job, nil
}

// invalid builds the non-retryable error for a 2xx answer we cannot use.
func invalid(msg string) *APIError {
	return &APIError{StatusCode: http.StatusOK, Message: msg, cause: ErrInvalidResponse}
}

// do sends one request and decodes a job from a 2xx answer; callers check
// which fields they need.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (Job, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return Job{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Job{}, err // *url.Error carries the URL, never headers
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Job{}, fmt.Errorf("read response: %w", err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{StatusCode: resp.StatusCode, Message: c.redact(errorMessage(data, resp.StatusCode))}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			apiErr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return Job{}, apiErr
	}

	job, err := parseJob(data)
	if err != nil {
		apiErr := invalid(c.redact(err.Error()))
		apiErr.StatusCode = resp.StatusCode
		return Job{}, apiErr
	}
	return job, nil
}

// redact makes sure the key never leaks through an echoed server message.
func (c *Client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[redacted]")
}

// wireJob accepts the loose shapes seen in the wild: creditCost as number or
// string, error as string or object.
type wireJob struct {
	ID                 string          `json:"id"`
	Status             string          `json:"status"`
	ImageURL           string          `json:"imageUrl"`
	CompressedImageURL string          `json:"compressedImageUrl"`
	CreditCost         json.RawMessage `json:"creditCost"`
	Error              json.RawMessage `json:"error"`
}

func parseJob(data []byte) (Job, error) {
	var w wireJob
	if err := json.Unmarshal(data, &w); err != nil {
		return Job{}, fmt.Errorf("body is not a JSON object: %s", snippet(data))
	}
	cost, err := parseNumber(w.CreditCost)
	if err != nil {
		return Job{}, fmt.Errorf("bad creditCost: %w", err)
	}
	return Job{
		ID:                 w.ID,
		Status:             strings.ToUpper(strings.TrimSpace(w.Status)),
		ImageURL:           w.ImageURL,
		CompressedImageURL: w.CompressedImageURL,
		CreditCost:         cost,
		Error:              readableError(w.Error),
	}, nil
}

func parseNumber(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("%s", snippet(raw))
	}
	if s == "" {
		return 0, nil
	}
	return strconv.ParseFloat(s, 64)
}

// readableError turns an `error` field (string, object or anything) into text.
func readableError(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) == nil {
		for _, k := range []string{"message", "detail", "error"} {
			if m, ok := obj[k].(string); ok && m != "" {
				return m
			}
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return snippet(buf.Bytes())
	}
	return snippet(raw)
}

// errorMessage extracts the best message from an error answer's body.
func errorMessage(data []byte, code int) string {
	var w struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(data, &w) == nil {
		if msg := readableError(w.Error); msg != "" {
			return msg
		}
		if w.Message != "" {
			return w.Message
		}
	}
	if s := strings.TrimSpace(string(data)); s != "" && !strings.HasPrefix(s, "{") {
		return snippet(data)
	}
	return http.StatusText(code)
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
