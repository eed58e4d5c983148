package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names and fixed values of a delivery.
const (
	HeaderSignature = "Hires-Signature"
	HeaderEventID   = "Hires-Event-Id"
	HeaderEventType = "Hires-Event-Type"
	ContentType     = "application/json"
	UserAgent       = "hires-events/1"
)

// DefaultTolerance is the recommended maximum distance between a
// signature's timestamp and the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify.
var (
	ErrNoSecret         = errors.New("events: no signing secret")
	ErrMissingSignature = errors.New("events: missing signature header")
	ErrMalformedHeader  = errors.New("events: malformed signature header")
	ErrBadSignature     = errors.New("events: signature does not match")
	ErrTooOld           = errors.New("events: signature timestamp too old")
	ErrTooNew           = errors.New("events: signature timestamp in the future")
)

// Sign returns the Hires-Signature header value for body signed at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// maxHeader bounds the header Verify will parse.
const maxHeader = 4096

// Verify checks a Hires-Signature header against the raw body: that one of
// its v1 values is the HMAC of body under secret (several v1 values are
// allowed, for secret rotation), then that its timestamp is within tolerance
// of now, in either direction. A tolerance of zero or less skips the time
// check. The error is nil or wraps one of the package's Err values.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrMissingSignature
	}
	if len(header) > maxHeader {
		return ErrMalformedHeader
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedHeader
		}
		switch k {
		case "t":
			if ts != "" || !digits(v) {
				return ErrMalformedHeader
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrMalformedHeader
			}
			sigs = append(sigs, sig)
		default:
			// Other schemes, for forward compatibility.
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformedHeader
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformedHeader
	}

	want := mac(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		if hmac.Equal(want, sig) { // constant time
			matched = true
		}
	}
	if !matched {
		return ErrBadSignature
	}

	if tolerance > 0 {
		age := now.Sub(time.Unix(sec, 0))
		switch {
		case age > tolerance:
			return ErrTooOld
		case age < -tolerance:
			return ErrTooNew
		}
	}
	return nil
}

// digits reports whether s is a non-empty run of at most 18 ASCII digits,
// so that it always parses as an int64.
func digits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
