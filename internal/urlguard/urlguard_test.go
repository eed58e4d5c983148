package urlguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	p, err := New([]string{"images.example.com", "*.cdn.example.net", "127.0.0.1:8090"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://images.example.com/a.png", true},
		{"http://IMAGES.example.com/a.png", true},
		{"https://eu.cdn.example.net/a.png", true},
		{"https://cdn.example.net/a.png", false}, // wildcard covers subdomains only
		{"https://images.example.com.evil.org/a.png", false},
		{"https://evilimages.example.com/a.png", false},
		{"http://127.0.0.1:8090/a.png", true},
		{"http://127.0.0.1:8091/a.png", false},
		{"http://localhost:8090/a.png", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"ftp://images.example.com/a.png", false},
		{"https://user:pw@images.example.com/a.png", false},
		{"images.example.com/a.png", false},
		{"https:///a.png", false},
		{"https://images.example.com/" + strings.Repeat("a", 3000), false},
		{"::not a url", false},
	}
	for _, tt := range tests {
		_, err := p.Check(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(%q) error does not wrap ErrNotAllowed: %v", tt.url, err)
		}
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	for _, in := range [][]string{{}, {" "}, {"http://x.com/path"}, {"a@b.com"}} {
		if _, err := New(in); err == nil {
			t.Errorf("New(%q) accepted", in)
		}
	}
}

func TestHTTPClientRefusesInternalAddressesBehindNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	// "localhost" is on the list by name, but it resolves to loopback, which
	// is not listed literally: the dial must be refused.
	p, _ := New([]string{"localhost"})
	_, err := p.HTTPClient(5 * time.Second).Get("http://localhost:" + port + "/")
	if err == nil || !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("want refusal, got %v", err)
	}

	// Listing the address literally allows it.
	p, _ = New([]string{"127.0.0.1"})
	resp, err := p.HTTPClient(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestHTTPClientChecksRedirects(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(target.URL, "127.0.0.1", "localhost", 1), http.StatusFound)
	}))
	defer redirector.Close()
	p, _ := New([]string{strings.TrimPrefix(redirector.URL, "http://")})
	_, err := p.HTTPClient(5 * time.Second).Get(redirector.URL)
	if err == nil || !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("redirect to an unlisted host must fail, got %v", err)
	}
}
