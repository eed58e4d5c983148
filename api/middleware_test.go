package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"hires/internal/config"
)

func TestPerMinuteLimitsEachClient(t *testing.T) {
	s := &Server{cfg: config.Config{}}
	e := echo.New()
	var err error
	if e.IPExtractor, err = s.clientIP(); err != nil {
		t.Fatal(err)
	}
	e.HTTPErrorHandler = s.errorHandler
	e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, perMinute(8)) // burst 2
	get := func(addr, xff string) int {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = addr
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code
	}
	codes := []int{get("10.0.0.1:1", ""), get("10.0.0.1:2", ""), get("10.0.0.1:3", "")}
	if codes[0] != 204 || codes[1] != 204 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("got %v, want two allowed then 429", codes)
	}
	if c := get("10.0.0.2:1", ""); c != 204 {
		t.Fatalf("another client is limited separately, got %d", c)
	}
	// A forged X-Forwarded-For does not escape the limit when proxies are not trusted.
	if c := get("10.0.0.1:4", "203.0.113.9"); c != http.StatusTooManyRequests {
		t.Fatalf("forged header escaped the limit: %d", c)
	}
}

// The client's address comes from X-Forwarded-For only through the
// configured proxies; loopback and private networks are not trusted by
// default (Echo's own default trusts them).
func TestClientAddress(t *testing.T) {
	tests := []struct {
		name    string
		proxies []string
		remote  string
		xff     string
		want    string
	}{
		{"no proxies: the connection", nil, "203.0.113.7:5", "198.51.100.1", "203.0.113.7"},
		{"no proxies, private peer: still the connection", nil, "10.0.0.2:5", "198.51.100.1", "10.0.0.2"},
		{"trusted proxy: the address it saw", []string{"10.0.0.0/24"}, "10.0.0.2:5", "198.51.100.1", "198.51.100.1"},
		{"trusted proxy, forged entries left of it", []string{"10.0.0.0/24"}, "10.0.0.2:5", "192.0.2.9, 198.51.100.1", "198.51.100.1"},
		{"chain of trusted proxies", []string{"10.0.0.0/24", "172.16.0.5"}, "10.0.0.2:5", "198.51.100.1, 172.16.0.5", "198.51.100.1"},
		{"untrusted peer: header ignored", []string{"10.0.0.0/24"}, "203.0.113.7:5", "198.51.100.1", "203.0.113.7"},
		{"loopback is not trusted unless listed", []string{"10.0.0.0/24"}, "127.0.0.1:5", "198.51.100.1", "127.0.0.1"},
		{"trusted proxy, no header", []string{"10.0.0.0/24"}, "10.0.0.2:5", "", "10.0.0.2"},
		{"trusted proxy, garbage header", []string{"10.0.0.0/24"}, "10.0.0.2:5", "not-an-address", "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: config.Config{TrustedProxies: tt.proxies}}
			extract, err := s.clientIP()
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tt.remote
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := extract(req); got != tt.want {
				t.Fatalf("client address %q, want %q", got, tt.want)
			}
		})
	}
}

// CORS answers only on the route a browser calls (a customer's job, read
// with its access token from the site's page); job creation needs a site
// key, which never belongs in a browser, and admin routes are not for sites.
func TestCORSOnlyOnTheCustomersRoute(t *testing.T) {
	app := newTestApp(t, config.Config{SiteOrigins: []string{"https://shop.example.com"}})
	tests := []struct {
		method, path, origin string
		preflight            bool
		allowed              string
	}{
		{http.MethodGet, "/v1/jobs/" + validJobID, "https://shop.example.com", false, "https://shop.example.com"},
		{http.MethodOptions, "/v1/jobs/" + validJobID, "https://shop.example.com", true, "https://shop.example.com"},
		{http.MethodGet, "/v1/jobs/" + validJobID, "https://evil.example.org", false, ""},
		{http.MethodOptions, "/v1/jobs", "https://shop.example.com", true, ""},
		{http.MethodPost, "/v1/jobs", "https://shop.example.com", false, ""},
		{http.MethodGet, "/v1/admin/jobs", "https://shop.example.com", false, ""},
		{http.MethodGet, "/v1/downloads/x", "https://shop.example.com", false, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		req.Header.Set("Origin", tt.origin)
		if tt.preflight {
			req.Header.Set("Access-Control-Request-Method", http.MethodGet)
		}
		rec := app.do(req, "192.0.2.1:1")
		if got := rec.Header().Get(echo.HeaderAccessControlAllowOrigin); got != tt.allowed {
			t.Errorf("%s %s from %s: allowed %q, want %q", tt.method, tt.path, tt.origin, got, tt.allowed)
		}
	}
}
