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
	e.IPExtractor = s.clientIP()
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

func TestCORS(t *testing.T) {
	tests := []struct {
		origins []string
		origin  string
		allowed string
	}{
		{[]string{"https://shop.example.com"}, "https://shop.example.com", "https://shop.example.com"},
		{[]string{"https://shop.example.com"}, "https://evil.example.org", ""},
		{nil, "https://shop.example.com", ""},
	}
	for _, tt := range tests {
		s := &Server{cfg: config.Config{SiteOrigins: tt.origins}}
		e := echo.New()
		e.Use(s.cors())
		e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Origin", tt.origin)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.allowed {
			t.Errorf("origins %v, Origin %s: allowed %q, want %q", tt.origins, tt.origin, got, tt.allowed)
		}
	}
}
