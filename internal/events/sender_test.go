package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testNow      = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	senderSecret = NewSecret()
)

func testEvent() Event {
	exp := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	return New(JobCompleted, "job-1", 1, testNow, Data{Status: "completed", Resolution: "4x", DownloadExpiresAt: &exp})
}

func testBody(t *testing.T) []byte {
	t.Helper()
	b, err := testEvent().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func endpoint(url string) Endpoint {
	return Endpoint{ID: "ep-1", URL: url, Types: Types, Secret: senderSecret}
}

// deliver sends the test event to url once.
func deliver(t *testing.T, s *Sender, ctx context.Context, url string) (Result, error) {
	t.Helper()
	return s.Deliver(ctx, endpoint(url), testEvent().ID, testBody(t))
}

// receiver is an httptest endpoint answering with a fixed status and body,
// recording what it was sent.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{r.Method, r.Header.Clone(), body})
		rc.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// checkSafe fails if an error message shows the secret or the parts of an
// endpoint that may hold credentials.
func checkSafe(t *testing.T, err error, hidden ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, h := range append(hidden, senderSecret) {
		if strings.Contains(err.Error(), h) {
			t.Fatalf("error %q shows %q", err, h)
		}
	}
}

func TestNewSenderKeepsCallersClient(t *testing.T) {
	client := &http.Client{Timeout: time.Second}
	NewSender(client)
	if client.CheckRedirect != nil {
		t.Fatal("NewSender changed the caller's client")
	}
}

func TestDeliverStatus(t *testing.T) {
	tests := []struct {
		code      int
		ok        bool
		retryable bool
	}{
		{200, true, false},
		{201, true, false},
		{202, true, false},
		{204, true, false},
		{500, false, true},
		{502, false, true},
		{503, false, true},
		{504, false, true},
		{429, false, true},
		{408, false, true},
		{400, false, false},
		{401, false, false},
		{403, false, false},
		{404, false, false},
		{410, false, false},
		{413, false, false},
		{422, false, false},
		{301, false, false},
		{304, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			rc := newReceiver(t, status(tt.code, "receiver says\x1b[31m no\n"))
			s := NewSender(rc.Client())
			res, err := deliver(t, s, context.Background(), rc.URL+"/secret-path?token=hunter2")
			if res.StatusCode != tt.code {
				t.Fatalf("Result.StatusCode = %d, want %d", res.StatusCode, tt.code)
			}
			wantOutcome := map[bool]Outcome{true: Failed, false: Rejected}[tt.retryable]
			if tt.ok {
				wantOutcome = Delivered
			}
			if got := OutcomeOf(err); got != wantOutcome {
				t.Fatalf("OutcomeOf = %s, want %s", got, wantOutcome)
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("Deliver = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if got := Retryable(err); got != tt.retryable {
				t.Fatalf("Retryable(%v) = %v, want %v", err, got, tt.retryable)
			}
			if got := Retryable(fmt.Errorf("activity: %w", err)); got != tt.retryable {
				t.Fatalf("Retryable of a wrapped error = %v", got)
			}
			wantErr := ErrRejected
			if tt.retryable {
				wantErr = ErrUnavailable
			}
			var de *DeliveryError
			if !errors.As(err, &de) || !errors.Is(err, wantErr) || de.StatusCode != tt.code {
				t.Fatalf("Deliver = %#v, want a DeliveryError with status %d wrapping %v", err, tt.code, wantErr)
			}
			if tt.code != 304 && de.Body != "receiver says [31m no" {
				t.Fatalf("Body = %q", de.Body)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.code)) || !strings.Contains(err.Error(), testEvent().ID) {
				t.Fatalf("error %q does not say the status and event", err)
			}
			checkSafe(t, err, "hunter2", "secret-path")
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("receiver got %d requests, want 1", n)
			}
		})
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{testNow.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{testNow.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(http.StatusTooManyRequests)
			})
			s := NewSender(rc.Client())
			s.now = func() time.Time { return testNow }
			var de *DeliveryError
			if _, err := deliver(t, s, context.Background(), rc.URL); !errors.As(err, &de) {
				t.Fatalf("Deliver = %v", err)
			}
			if de.RetryAfter != tt.want {
				t.Fatalf("RetryAfter = %v, want %v", de.RetryAfter, tt.want)
			}
		})
	}
}

func TestDeliverCapsErrorBody(t *testing.T) {
	rc := newReceiver(t, status(http.StatusBadRequest, strings.Repeat("é", 1<<20)))
	s := NewSender(rc.Client())
	var de *DeliveryError
	if _, err := deliver(t, s, context.Background(), rc.URL); !errors.As(err, &de) {
		t.Fatalf("Deliver = %v", err)
	}
	if len(de.Body) > maxErrorBody || len(de.Body) < maxErrorBody-4 {
		t.Fatalf("Body has %d bytes, want at most %d", len(de.Body), maxErrorBody)
	}
	if len(de.Error()) > 2*maxErrorBody {
		t.Fatalf("error message has %d bytes", len(de.Error()))
	}
}

func TestDeliverNetworkErrors(t *testing.T) {
	// A receiver that never answers, until the test ends.
	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // runs before the server's Cleanup Close

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/h?token=hunter2"
	closed.Close()

	tests := []struct {
		name     string
		endpoint string
		client   *http.Client
		ctx      func() (context.Context, context.CancelFunc)
	}{
		{name: "client timeout", endpoint: slow.URL + "/h?token=hunter2", client: &http.Client{Timeout: 100 * time.Millisecond}},
		{name: "context deadline", endpoint: slow.URL + "/h?token=hunter2", client: &http.Client{},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			}},
		{name: "connection refused", endpoint: closedURL, client: &http.Client{Timeout: 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			s := NewSender(tt.client)
			start := time.Now()
			_, err := deliver(t, s, ctx, tt.endpoint)
			if err == nil {
				t.Fatal("Deliver succeeded")
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("Deliver took %v", time.Since(start))
			}
			if !Retryable(err) {
				t.Fatalf("Retryable(%v) = false", err)
			}
			var de *DeliveryError
			if !errors.As(err, &de) || de.StatusCode != 0 {
				t.Fatalf("Deliver = %#v", err)
			}
			if tt.ctx != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Deliver = %v, want it to wrap context.DeadlineExceeded", err)
			}
			checkSafe(t, err, "hunter2")
		})
	}
}

func TestDeliverRefusesBadEndpoints(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	s := NewSender(rc.Client())
	tests := []struct {
		name string
		ep   func(Endpoint) Endpoint
	}{
		{"user info", func(e Endpoint) Endpoint { e.URL = strings.Replace(rc.URL, "://", "://u:hunter2@", 1); return e }},
		{"ftp", func(e Endpoint) Endpoint { e.URL = "ftp://example.com/"; return e }},
		{"no secret", func(e Endpoint) Endpoint { e.Secret = ""; return e }},
		{"secret not base64", func(e Endpoint) Endpoint { e.Secret = "whsec_hunter2!"; return e }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Deliver(context.Background(), tt.ep(endpoint(rc.URL)), testEvent().ID, testBody(t))
			if !errors.Is(err, ErrInvalidEndpoint) || Retryable(err) || OutcomeOf(err) != Rejected {
				t.Fatalf("Deliver = %v, want a permanent ErrInvalidEndpoint", err)
			}
			checkSafe(t, err, "hunter2")
		})
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("receiver got %d requests, want none", n)
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, status(http.StatusOK, ""))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL, code)
			})
			// Even a client that would follow redirects.
			s := NewSender(&http.Client{Timeout: 5 * time.Second})
			_, err := deliver(t, s, context.Background(), rc.URL)
			if !errors.Is(err, ErrRejected) || Retryable(err) {
				t.Fatalf("Deliver = %v, want a permanent rejection", err)
			}
		})
	}
	if n := len(target.requests()); n != 0 {
		t.Fatalf("redirect target got %d requests, want none", n)
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"foreign error", errors.New("boom"), true},
		{"context canceled", context.Canceled, true},
		{"permanent", &DeliveryError{Err: ErrRejected, StatusCode: 400}, false},
		{"retryable", &DeliveryError{Err: ErrUnavailable, StatusCode: 503, retryable: true}, true},
		{"wrapped permanent", fmt.Errorf("x: %w", &DeliveryError{Err: ErrInvalidEndpoint}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Fatalf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
