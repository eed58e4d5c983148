package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// DefaultTimeout bounds one delivery when NewSender is given no client.
const DefaultTimeout = 10 * time.Second

const (
	maxErrorBody = 512      // bytes of a failed answer's body kept in the error
	maxDrain     = 64 << 10 // bytes of an answer read so the connection can be reused
)

// Errors a DeliveryError wraps to say why a delivery failed; a network error
// or timeout is wrapped as it is.
var (
	ErrUnknownURL   = errors.New("events: URL is not a configured endpoint")
	ErrInvalidEvent = errors.New("events: invalid event")
	ErrRejected     = errors.New("events: receiver rejected the event")
	ErrUnavailable  = errors.New("events: receiver unavailable")
)

// Sender POSTs signed events to the configured endpoints. It is safe for
// concurrent use.
type Sender struct {
	urls   []string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewSender checks the endpoints and returns a Sender for them. Each URL
// must be an absolute http or https URL without user info; blank entries are
// skipped and repeats dropped. A non-empty secret is required when there is
// at least one URL; with none the Sender is disabled. A nil client means one
// with DefaultTimeout. The Sender never follows redirects, whatever the
// client's CheckRedirect says.
func NewSender(urls []string, secret string, client *http.Client) (*Sender, error) {
	s := &Sender{secret: []byte(secret), now: time.Now}
	var errs []error
	for i, raw := range urls {
		raw = strings.TrimSpace(raw)
		if raw == "" || slices.Contains(s.urls, raw) {
			continue
		}
		if err := checkURL(raw); err != nil {
			errs = append(errs, fmt.Errorf("events: endpoint %d: %w", i+1, err))
			continue
		}
		s.urls = append(s.urls, raw)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(s.urls) > 0 && secret == "" {
		return nil, errors.New("events: a signing secret is required when endpoints are configured")
	}
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &c
	return s, nil
}

// checkURL's errors never repeat the URL's user info, query or path, which
// may hold credentials.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return errors.New("must be an absolute URL with a host")
	}
	if u.User != nil {
		return fmt.Errorf("%s: must not carry user info", redact(u))
	}
	return nil
}

// redact shows a URL without user info, path or query, which may hold
// credentials (some services put their token in the path).
func redact(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" {
		s += "/…"
	}
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

func redactString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return redact(u)
}

// Enabled reports whether any endpoint is configured.
func (s *Sender) Enabled() bool { return s != nil && len(s.urls) > 0 }

// URLs returns the configured endpoints, in order.
func (s *Sender) URLs() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.urls)
}

// DeliveryError describes a failed delivery. Its message shows the endpoint
// without path or query and never the secret.
type DeliveryError struct {
	EventID    string
	URL        string        // the endpoint, redacted
	StatusCode int           // the receiver's answer, 0 if none
	Body       string        // start of the answer's body, cleaned
	RetryAfter time.Duration // from a Retry-After header, 0 if none
	Err        error         // ErrUnknownURL, ErrInvalidEvent, ErrRejected, ErrUnavailable, or a network error
	retryable  bool
}

func (e *DeliveryError) Error() string {
	msg := "events: deliver " + e.EventID + " to " + e.URL + ": "
	if e.StatusCode != 0 {
		msg += "receiver answered " + strconv.Itoa(e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			msg += " " + t
		}
		if e.Body != "" {
			msg += ": " + strconv.Quote(e.Body)
		}
		return msg
	}
	return msg + strings.TrimPrefix(e.Err.Error(), "events: ")
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Retryable reports whether a delivery that failed with err may succeed if
// tried again: true for network errors, timeouts and answers 408, 429 and
// 5xx; false for nil, for other answers (the receiver rejected the event; a
// caller may still want to record that) and for an unknown URL or invalid
// event. Errors not from Deliver count as retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.retryable
	}
	return true
}

// Deliver makes one attempt to POST e to endpoint, which must be one of URLs(),
// signed with a fresh timestamp. Any 2xx answer is success. Retries are the
// caller's (a Temporal activity's) business; use Retryable on the error.
func (s *Sender) Deliver(ctx context.Context, endpoint string, e Event) error {
	fail := func(err error) *DeliveryError {
		return &DeliveryError{EventID: e.ID, URL: redactString(endpoint), Err: err}
	}
	if !s.Enabled() || !slices.Contains(s.urls, endpoint) {
		return fail(ErrUnknownURL)
	}
	if err := e.check(); err != nil {
		return fail(err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrInvalidEvent, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderEventType, string(e.Type))
	req.Header.Set(HeaderSignature, Sign(s.secret, s.now(), body))

	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		de := fail(err)
		de.retryable = true
		return de
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return nil
	}

	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	de := fail(ErrRejected)
	de.StatusCode = resp.StatusCode
	de.Body = clean(snippet)
	switch code := resp.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		de.Err = ErrUnavailable
		de.retryable = true
		de.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return de
}

func (e Event) check() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: no id", ErrInvalidEvent)
	case !e.Type.Valid():
		return fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, e.Type)
	case e.JobID == "":
		return fmt.Errorf("%w: no job id", ErrInvalidEvent)
	case e.CreatedAt.IsZero():
		return fmt.Errorf("%w: no created_at", ErrInvalidEvent)
	}
	return nil
}

// clean makes a receiver's answer safe to put in a log line.
func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), "�")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		if n > 0 {
			return time.Duration(n) * time.Second
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
