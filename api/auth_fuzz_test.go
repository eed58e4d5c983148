package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hires/internal/config"
	"hires/internal/sitekey"
	"hires/internal/store"
)

// FuzzSiteAuthorization sends arbitrary Authorization headers to the
// site's routes: only the active key is let in; anything else is 401 (or,
// reading a job, 404 for what is not a site key), never a 5xx, and nothing
// is written.
func FuzzSiteAuthorization(f *testing.F) {
	for _, h := range []string{"Bearer " + testSiteKey, "bearer " + testSiteKey, "Bearer  " + testSiteKey, "Bearer " + testSiteKey + " x",
		"Bearer " + sitekey.New(), "Bearer hires_sk_", "Basic Zm9vOmJhcg==", "Bearer", "", "Bearer \x00hires_sk_", "Bearer " + strings.Repeat("a", 5000)} {
		f.Add(h)
	}
	app := newTestApp(f, config.Config{}, store.Job{ID: validJobID, Site: ptrTo("test-site")})
	f.Fuzz(func(t *testing.T, header string) {
		cred, parsed := sitekey.Bearer(header)
		valid := parsed && cred == testSiteKey
		for _, route := range []struct{ method, path string }{{http.MethodPost, "/v1/jobs"}, {http.MethodGet, "/v1/jobs/" + validJobID}} {
			req := httptest.NewRequest(route.method, route.path, strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header["Authorization"] = []string{header}
			app.reset()
			rec := app.do(req, "192.0.2.9:1")
			switch {
			case rec.Code >= 500:
				t.Fatalf("%s %s with %q: %d", route.method, route.path, header, rec.Code)
			case valid && (rec.Code == http.StatusUnauthorized || rec.Code == http.StatusNotFound):
				t.Fatalf("%s %s: the active key was refused: %d", route.method, route.path, rec.Code)
			case !valid && rec.Code < 300:
				t.Fatalf("%s %s with %q: let in (%d)", route.method, route.path, header, rec.Code)
			case !valid && route.method == http.MethodPost && rec.Code != http.StatusUnauthorized:
				t.Fatalf("POST with %q: %d, want 401", header, rec.Code)
			}
			if !valid {
				app.noEffect(t, "Authenticate", "Get")
			}
		}
	})
}

func ptrTo[T any](v T) *T { return &v }
