package upsampler

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseCallback: arbitrary webhook bodies. ParseCallback must not panic;
// an accepted body yields a job with an id and a normalised (trimmed,
// upper-case) non-empty status; a rejected one is a non-retryable
// *APIError wrapping ErrInvalidResponse. More seeds are in
// testdata/fuzz/FuzzParseCallback.
func FuzzParseCallback(f *testing.F) {
	for _, body := range []string{
		`{"id":"u1","status":"SUCCESS","imageUrl":"https://x/f.png","creditCost":2}`,
		`{"id":"u2","status":"FAILED","error":{"message":"no credits"}}`,
		`{"id":"u3","status":"  "}`,
		`{"id":"u5","status":"SUCCESS","creditCost":{}}`,
		`null`,
		`id=u4&status=SUCCESS`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxBody {
			t.Skip("larger than the route's body limit")
		}
		job, err := ParseCallback(body)
		if err != nil {
			var apiErr *APIError
			if !errors.As(err, &apiErr) || !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("error %T %v is not an *APIError wrapping ErrInvalidResponse", err, err)
			}
			if Retryable(err) {
				t.Fatalf("a malformed callback is retryable: %v", err)
			}
			if job != (Job{}) {
				t.Fatalf("error %v with a non-zero job %+v", err, job)
			}
			return
		}
		if job.ID == "" || job.Status == "" {
			t.Fatalf("accepted a job without id or status: %+v", job)
		}
		if job.Status != strings.ToUpper(strings.TrimSpace(job.Status)) {
			t.Fatalf("status %q is not normalised", job.Status)
		}
	})
}
