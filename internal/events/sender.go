package events

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
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
	ErrInvalidEvent = errors.New("events: invalid event")
	ErrRejected     = errors.New("events: receiver rejected the event")
	ErrUnavailable  = errors.New("events: receiver unavailable")
)

// Sender POSTs signed events to endpoints. It is safe for concurrent use.
type Sender struct {
	client *http.Client
	now    func() time.Time
}

// NewSender returns a Sender using client; nil means one with
// DefaultTimeout. The Sender never follows redirects, whatever the client's
// CheckRedirect says: a redirect could carry the event to another host.
func NewSender(client *http.Client) *Sender {
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{client: &c, now: time.Now}
}

// DeliveryError describes a failed delivery. Its message shows the endpoint
// without path or query and never the secret.
type DeliveryError struct {
	EventID    string
	URL        string        // the endpoint, redacted
	StatusCode int           // the receiver's answer, 0 if none
	Body       string        // start of the answer's body, cleaned
	RetryAfter time.Duration // from a Retry-After header, 0 if none
	Err        error         // ErrInvalidEndpoint, ErrRejected, ErrUnavailable, or a network error
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
// caller may still want to record that) and for an invalid endpoint. Errors
// not from Deliver count as retryable.
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

// Result describes one delivery attempt, failed or not, for the log.
type Result struct {
	StatusCode int           // the receiver's answer, 0 if none
	Duration   time.Duration // from sending the request to reading the answer
}

// Deliver makes one attempt to POST body, the stored bytes of event id, to
// ep, signed afresh with every secret valid now. Any 2xx answer is success.
// Retries are the caller's (a Temporal activity's) business; use Retryable
// on the error.
func (s *Sender) Deliver(ctx context.Context, ep Endpoint, id string, body []byte) (Result, error) {
	fail := func(err error) *DeliveryError {
		return &DeliveryError{EventID: id, URL: Redact(ep.URL), Err: err}
	}
	if err := CheckURL(ep.URL); err != nil {
		return Result{}, fail(err)
	}
	now := s.now()
	sig, err := Sign(id, now, body, ep.SigningSecrets(now)...)
	if err != nil {
		return Result{}, fail(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Result{}, fail(err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		de := fail(err)
		de.retryable = true
		return Result{Duration: time.Since(start)}, de
	}
	defer resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		res.Duration = time.Since(start)
		return res, nil
	}

	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	res.Duration = time.Since(start)
	de := fail(ErrRejected)
	de.StatusCode = resp.StatusCode
	de.Body = clean(snippet)
	switch code := resp.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		de.Err = ErrUnavailable
		de.retryable = true
		de.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return res, de
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

// Outcome is how a delivery attempt ended, as the delivery log records it.
type Outcome string

// The outcomes of an attempt.
const (
	Delivered Outcome = "delivered" // a 2xx answer: the endpoint acknowledged the event
	Failed    Outcome = "failed"    // retryable: no answer, 408, 429 or 5xx
	Rejected  Outcome = "rejected"  // for good: another answer, or an invalid endpoint
)

// OutcomeOf classifies the error of Deliver.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return Delivered
	case Retryable(err):
		return Failed
	}
	return Rejected
}

// maxLogError bounds the error text kept in the delivery log.
const maxLogError = 300

// LogError is err's message cut short for the delivery log ("" for nil).
// Deliver's errors show no secret and the URL redacted.
func LogError(err error) string {
	if err == nil {
		return ""
	}
	s := strings.TrimPrefix(err.Error(), "events: ")
	if len(s) > maxLogError {
		s = strings.ToValidUTF8(s[:maxLogError], "") + "…"
	}
	return s
}
