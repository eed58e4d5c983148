package events

import (
	"context"
	"encoding/json"
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

const senderSecret = "s3cr3t-signing-value"

func testEvent() Event {
	exp := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	return New(JobCompleted, "job-1", 1, testNow, Data{Status: "completed", Resolution: "4x", DownloadExpiresAt: &exp})
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

func mustSender(t *testing.T, urls []string, client *http.Client) *Sender {
	t.Helper()
	s, err := NewSender(urls, senderSecret, client)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
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

func TestNewSender(t *testing.T) {
	tests := []struct {
		name    string
		urls    []string
		secret  string
		want    []string // nil with ok: disabled
		wantErr bool
	}{
		{name: "none", urls: nil, secret: ""},
		{name: "blank entries only", urls: []string{"", "  "}, secret: ""},
		{name: "one https", urls: []string{"https://hooks.example.com/hires"}, secret: "x", want: []string{"https://hooks.example.com/hires"}},
		{name: "http with port and query", urls: []string{"http://127.0.0.1:8080/in?token=abc"}, secret: "x", want: []string{"http://127.0.0.1:8080/in?token=abc"}},
		{name: "trimmed, blanks skipped, repeats dropped", urls: []string{" https://a.example/h ", "", "https://b.example/h", "https://a.example/h"}, secret: "x",
			want: []string{"https://a.example/h", "https://b.example/h"}},
		{name: "upper-case scheme", urls: []string{"HTTPS://a.example/h"}, secret: "x", want: []string{"HTTPS://a.example/h"}},

		{name: "URLs without secret", urls: []string{"https://a.example/h"}, secret: "", wantErr: true},
		{name: "ftp", urls: []string{"ftp://a.example/h"}, secret: "x", wantErr: true},
		{name: "no scheme", urls: []string{"a.example/h"}, secret: "x", wantErr: true},
		{name: "relative", urls: []string{"/hooks"}, secret: "x", wantErr: true},
		{name: "no host", urls: []string{"https:///h"}, secret: "x", wantErr: true},
		{name: "port only", urls: []string{"http://:8080/h"}, secret: "x", wantErr: true},
		{name: "opaque", urls: []string{"https:a.example"}, secret: "x", wantErr: true},
		{name: "user info", urls: []string{"https://user:hunter2@a.example/h"}, secret: "x", wantErr: true},
		{name: "user only", urls: []string{"https://hunter2@a.example/h"}, secret: "x", wantErr: true},
		{name: "unparsable", urls: []string{"http://a.example/%zz?token=hunter2"}, secret: "x", wantErr: true},
		{name: "one bad among good", urls: []string{"https://a.example/h", "javascript:alert(1)"}, secret: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSender(tt.urls, tt.secret, nil)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewSender(%q) = nil error", tt.urls)
				}
				checkSafe(t, err, "hunter2")
				return
			}
			if err != nil {
				t.Fatalf("NewSender: %v", err)
			}
			if got := s.URLs(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("URLs = %q, want %q", got, tt.want)
			}
			if s.Enabled() != (len(tt.want) > 0) {
				t.Fatalf("Enabled = %v", s.Enabled())
			}
		})
	}
}

func TestSenderAccessors(t *testing.T) {
	var nilSender *Sender
	if nilSender.Enabled() || nilSender.URLs() != nil {
		t.Fatal("nil Sender is not disabled")
	}
	s := mustSender(t, []string{"https://a.example/h"}, nil)
	s.URLs()[0] = "https://evil.example/"
	if s.URLs()[0] != "https://a.example/h" {
		t.Fatal("URLs exposes the Sender's slice")
	}
	client := &http.Client{Timeout: time.Second}
	mustSender(t, []string{"https://a.example/h"}, client)
	if client.CheckRedirect != nil {
		t.Fatal("NewSender changed the caller's client")
	}
}

func TestDeliverRequest(t *testing.T) {
	rc := newReceiver(t, status(http.StatusNoContent, ""))
	s := mustSender(t, []string{rc.URL + "/hooks"}, rc.Client())
	clock := testNow
	s.now = func() time.Time { return clock }

	e := testEvent()
	if err := s.Deliver(context.Background(), rc.URL+"/hooks", e); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	clock = clock.Add(90 * time.Second) // a retry, later
	if err := s.Deliver(context.Background(), rc.URL+"/hooks", e); err != nil {
		t.Fatalf("Deliver again: %v", err)
	}

	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.method != http.MethodPost {
			t.Errorf("method %s", r.method)
		}
		for k, want := range map[string]string{
			"Content-Type":     "application/json",
			"User-Agent":       "hires-events/1",
			"Hires-Event-Id":   e.ID,
			"Hires-Event-Type": "job.completed",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("request %d: %s = %q, want %q", i, k, got, want)
			}
		}
		sig := r.header.Get("Hires-Signature")
		when := testNow.Add(time.Duration(i) * 90 * time.Second)
		if err := Verify([]byte(senderSecret), sig, r.body, DefaultTolerance, when); err != nil {
			t.Errorf("request %d: Verify(%q) = %v", i, sig, err)
		}
		if err := Verify([]byte("other"), sig, r.body, DefaultTolerance, when); !errors.Is(err, ErrBadSignature) {
			t.Errorf("request %d: verified with the wrong secret: %v", i, err)
		}
		var got Event
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if got.ID != e.ID || got.Type != e.Type || got.JobID != e.JobID || !got.CreatedAt.Equal(e.CreatedAt) ||
			got.Data.Status != "completed" || got.Data.DownloadExpiresAt == nil || got.Data.Attempt != 1 {
			t.Errorf("body decoded to %+v", got)
		}
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Errorf("a retry sent a different body:\n%s\n%s", reqs[0].body, reqs[1].body)
	}
	if reqs[0].header.Get("Hires-Signature") == reqs[1].header.Get("Hires-Signature") {
		t.Error("a retry reused the old signature timestamp")
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
			endpoint := rc.URL + "/secret-path?token=hunter2"
			s := mustSender(t, []string{endpoint}, rc.Client())
			err := s.Deliver(context.Background(), endpoint, testEvent())
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
			s := mustSender(t, []string{rc.URL}, rc.Client())
			s.now = func() time.Time { return testNow }
			var de *DeliveryError
			if err := s.Deliver(context.Background(), rc.URL, testEvent()); !errors.As(err, &de) {
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
	s := mustSender(t, []string{rc.URL}, rc.Client())
	var de *DeliveryError
	if err := s.Deliver(context.Background(), rc.URL, testEvent()); !errors.As(err, &de) {
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
			s := mustSender(t, []string{tt.endpoint}, tt.client)
			start := time.Now()
			err := s.Deliver(ctx, tt.endpoint, testEvent())
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

func TestDeliverRefuses(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	s := mustSender(t, []string{rc.URL}, rc.Client())
	disabled := mustSender(t, nil, nil)
	valid := testEvent()

	tests := []struct {
		name     string
		sender   *Sender
		endpoint string
		event    func(Event) Event
		want     error
	}{
		{"unconfigured URL", s, rc.URL + "/other", nil, ErrUnknownURL},
		{"disabled sender", disabled, rc.URL, nil, ErrUnknownURL},
		{"nil sender", nil, rc.URL, nil, ErrUnknownURL},
		{"no id", s, rc.URL, func(e Event) Event { e.ID = ""; return e }, ErrInvalidEvent},
		{"unknown type", s, rc.URL, func(e Event) Event { e.Type = "job.exploded"; return e }, ErrInvalidEvent},
		{"no job", s, rc.URL, func(e Event) Event { e.JobID = ""; return e }, ErrInvalidEvent},
		{"no time", s, rc.URL, func(e Event) Event { e.CreatedAt = time.Time{}; return e }, ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			if tt.event != nil {
				e = tt.event(e)
			}
			err := tt.sender.Deliver(context.Background(), tt.endpoint, e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver = %v, want %v", err, tt.want)
			}
			if Retryable(err) {
				t.Fatalf("Retryable(%v) = true", err)
			}
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
			s := mustSender(t, []string{rc.URL}, &http.Client{Timeout: 5 * time.Second})
			err := s.Deliver(context.Background(), rc.URL, testEvent())
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
		{"wrapped permanent", fmt.Errorf("x: %w", &DeliveryError{Err: ErrUnknownURL}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Fatalf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
