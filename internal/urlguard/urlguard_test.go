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

// The SSRF matrix: every way of naming an internal address, a foreign
// scheme or a trick host is refused with a clear error, whatever the
// allow-list holds (here, one public name).
func TestSSRFMatrix(t *testing.T) {
	p, err := New([]string{"images.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		"http://127.0.0.1/a.png",
		"http://localhost/a.png",
		"http://LOCALHOST./a.png",
		"http://[::1]/a.png",
		"http://[::ffff:127.0.0.1]/a.png",
		"http://[0:0:0:0:0:0:0:1]/a.png",
		"http://0.0.0.0/a.png",
		"http://0/a.png",
		"http://127.1/a.png",
		"http://2130706433/a.png", // 127.0.0.1 in decimal
		"http://0x7f000001/a.png", // in hex
		"http://0177.0.0.1/a.png", // in octal
		"http://0x7f.0.0.1/a.png", // mixed
		"http://10.0.0.5/a.png",   // private ranges
		"http://172.16.0.1/a.png",
		"http://192.168.1.1/a.png",
		"http://100.64.0.1/a.png",       // carrier-grade NAT
		"http://169.254.169.254/latest", // cloud metadata
		"http://[fe80::1]/a.png",        // link-local IPv6
		"http://[fd00::1]/a.png",        // unique local IPv6
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://images.example.com@127.0.0.1/a.png", // userinfo trick
		"http://127.0.0.1#@images.example.com/a.png",
		"http://127.0.0.1\\@images.example.com/a.png",
		"http://images.example.com.127.0.0.1.nip.io/a.png",
		"http://images.example.com:80@evil.example.org/",
		"file:///etc/passwd",
		"gopher://images.example.com/",
		"ftp://images.example.com/a.png",
		"javascript:alert(1)",
		"data:image/png;base64,AAAA",
		"//images.example.com/a.png",            // scheme-relative
		"https://%C4%B0mages.example.com/a.jpg", // İ lowers to i: another domain
		"https://İmages.example.com/a.jpg",
		"http://.images.example.com/a.png",
		"http://images..example.com/a.png",
		"http:///a.png",
		"",
	} {
		_, err := p.Check(raw)
		if err == nil || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(%q) = %v, want a refusal", raw, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "url not allowed: ") || len(err.Error()) < len("url not allowed: ")+5 {
			t.Errorf("Check(%q): unclear error %q", raw, err)
		}
	}
}

// Names on the allow-list that resolve to internal addresses are refused
// at connection time, for every internal range; literals listed on purpose
// (a local stack) are allowed.
func TestInternalAddressesRefusedAtDial(t *testing.T) {
	p, _ := New([]string{"example.com"})
	for _, addr := range []string{
		"127.0.0.1:80", "[::1]:80", "10.1.2.3:80", "172.31.0.1:80", "192.168.0.1:80",
		"169.254.169.254:80", "[fe80::1]:80", "[fd12::1]:80", "0.0.0.0:80", "[::]:80", "224.0.0.1:80",
		"100.64.0.1:80", "[::ffff:10.0.0.1]:80",
	} {
		if err := p.control("tcp", addr, nil); err == nil || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("control(%s) = %v, want a refusal", addr, err)
		}
	}
	if err := p.control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("a public address is refused: %v", err)
	}
	local, _ := New([]string{"127.0.0.1:8098"})
	if err := local.control("tcp", "127.0.0.1:8098", nil); err != nil {
		t.Errorf("a literally listed address is refused: %v", err)
	}
}
