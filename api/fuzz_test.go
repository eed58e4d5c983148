package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"hires/internal/jobs"
	"hires/internal/pricing"
)

// maxFuzzBody mirrors the 16K BodyLimit on POST /v1/jobs: larger bodies never
// reach decodeStrict in production, so fuzzing them only wastes time.
const maxFuzzBody = 16 << 10

// FuzzCreateJobRequest feeds arbitrary bytes through what POST /v1/jobs does
// with its body before touching the store: decodeStrict, then validateJob.
// More seeds are in testdata/fuzz/FuzzCreateJobRequest.
func FuzzCreateJobRequest(f *testing.F) {
	for _, body := range []string{
		`{"image_url":"https://images.example.com/a.jpg","resolution":"4x","email":"a@example.com","post_id":1,"image_width":2000,"image_height":2000}`,
		`{"image_url":"https://images.example.com/a.jpg","resolution":"8x","attachment_id":7,"image_width":100,"image_height":100}`,
		`{"image_url":"https://images.example.com/a.jpg","resolution":"4x","image_width":20001,"image_height":100}`,
		`{"resolution":"4x","extra":1}`,
		`{} {}`,
		``,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxFuzzBody {
			t.Skip("larger than the route's body limit")
		}
		s := testServer(t)

		req, err := decodeStrict[CreateJobRequest](bytes.NewReader(body))
		if err != nil {
			checkAPIError(t, "decodeStrict", err)
			return
		}
		// decodeStrict promises one JSON value and nothing after it but space.
		if rest, ok := afterOneJSONValue(body); !ok || len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
			t.Fatalf("decodeStrict accepted %q, which is not a single JSON value (left over: %q)", body, rest)
		}
		decoded := req
		q, err := s.validateJob(&req)
		if err != nil {
			checkAPIError(t, "validateJob", err)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusUnprocessableEntity && ae.body.Field == "" {
				t.Fatalf("validateJob: 422 without a field: %#v", ae)
			}
			return
		}

		// validateJob only trims the two strings; everything else is as decoded.
		if req.ImageURL != strings.TrimSpace(decoded.ImageURL) || req.Email != strings.TrimSpace(decoded.Email) {
			t.Fatalf("validateJob changed more than surrounding space: %+v -> %+v", decoded, req)
		}
		res := jobs.Resolution(req.Resolution)
		if res != jobs.Resolution4x && res != jobs.Resolution8x {
			t.Fatalf("accepted resolution %q", req.Resolution)
		}
		for _, side := range []int{req.ImageWidth, req.ImageHeight} {
			if side < minImageSide || side > maxImageSide {
				t.Fatalf("accepted side %d outside %d..%d", side, minImageSide, maxImageSide)
			}
		}
		if req.PostID < 0 || req.AttachmentID != nil && *req.AttachmentID < 0 {
			t.Fatalf("accepted negative IDs: post %d attachment %v", req.PostID, req.AttachmentID)
		}
		if _, err := s.sources.Check(req.ImageURL); err != nil {
			t.Fatalf("accepted image URL %q that the policy rejects: %v", req.ImageURL, err)
		}
		// The test policy allows only images.example.com; compare with
		// ASCII-only case folding, as DNS does.
		if u, err := url.Parse(req.ImageURL); err != nil || asciiLower(strings.TrimSuffix(u.Hostname(), ".")) != "images.example.com" {
			t.Fatalf("accepted image URL %q whose host is not images.example.com", req.ImageURL)
		}
		if len(req.Email) > 254 || strings.ContainsFunc(req.Email, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted email %q", req.Email)
		}

		want, err := pricing.Compute(req.ImageWidth, req.ImageHeight, res, s.cfg.MarkupPercent)
		if err != nil {
			t.Fatalf("validateJob accepted what pricing.Compute rejects: %v", err)
		}
		if q != want {
			t.Fatalf("quote %+v, pricing.Compute says %+v", q, want)
		}
		if q.PriceCents < pricing.MinimumPriceCents {
			t.Fatalf("price %d cents is under the %d minimum", q.PriceCents, pricing.MinimumPriceCents)
		}
		if q.OutputWidth != req.ImageWidth*res.Factor() || q.OutputHeight != req.ImageHeight*res.Factor() {
			t.Fatalf("output %dx%d for %dx%d at %s", q.OutputWidth, q.OutputHeight, req.ImageWidth, req.ImageHeight, res)
		}
		if int64(q.OutputWidth)*int64(q.OutputHeight) > s.cfg.MaxOutputMegapixels*1_000_000 {
			t.Fatalf("output %dx%d is over %d megapixels", q.OutputWidth, q.OutputHeight, s.cfg.MaxOutputMegapixels)
		}

		// Validation is idempotent: the request createJob fingerprints is a
		// fixed point, so a retry with the same body hashes the same.
		again := req
		q2, err := s.validateJob(&again)
		if err != nil || q2 != q || again != req {
			t.Fatalf("second validation differs: %+v %v (was %+v)", q2, err, q)
		}
	})
}

// afterOneJSONValue decodes one JSON value from the start of body and returns
// what follows it; ok is false if body does not start with a JSON value.
func afterOneJSONValue(body []byte) (rest []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return body[dec.InputOffset():], true
}

// asciiLower lower-cases A-Z only. strings.ToLower also maps a few
// non-ASCII letters onto ASCII ones (U+0130 to 'i', U+212A to 'k').
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// checkAPIError asserts the contract of errors returned to the client before
// any I/O: an *apiError with a 4xx status, a code and a message.
func checkAPIError(t *testing.T, where string, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: error %T %v is not an *apiError", where, err, err)
	}
	if ae.status < 400 || ae.status > 499 {
		t.Fatalf("%s: status %d is not 4xx: %v", where, ae.status, err)
	}
	if ae.body.Code == "" || ae.body.Message == "" {
		t.Fatalf("%s: empty code or message: %#v", where, ae.body)
	}
}

// FuzzIdempotencyKey: accepted keys are empty, or 1..255 bytes of printable
// ASCII without spaces (0x21..0x7e).
func FuzzIdempotencyKey(f *testing.F) {
	for _, k := range []string{"", "order-1001", "has space", "tab\t", "ünïcode", "~!", strings.Repeat("k", 255), strings.Repeat("k", 256)} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		err := validateIdempotencyKey(k)
		want := len(k) <= 255
		for i := 0; i < len(k); i++ {
			if k[i] <= ' ' || k[i] > '~' {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("validateIdempotencyKey(%q) = %v, want ok=%v", k, err, want)
		}
		if err != nil {
			checkAPIError(t, "validateIdempotencyKey", err)
			var ae *apiError
			errors.As(err, &ae)
			if ae.status != http.StatusBadRequest || ae.body.Code != "invalid_idempotency_key" {
				t.Fatalf("got %d %q, want 400 invalid_idempotency_key", ae.status, ae.body.Code)
			}
		}
	})
}
