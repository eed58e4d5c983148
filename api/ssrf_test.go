package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hires/internal/config"
	"hires/internal/urlguard"
)

// POST /v1/jobs refuses every source image URL that names an internal
// address, a foreign scheme or a host off the allow-list, with 422
// image_url_not_allowed on the image_url field, before anything is stored
// or started. The allow-list holds a public name and, as a local stack
// does, one loopback address with its port. (The worker's result URLs go
// through the same policy; internal/urlguard tests that HTTP client, with
// redirects and DNS answers.)
func TestSourceImageURLsSSRFMatrix(t *testing.T) {
	cfg := config.Config{SourceHosts: []string{"images.example.com", "127.0.0.1:8090"}, MarkupPercent: 200, MaxOutputMegapixels: 400}
	a := newTestApp(t, cfg)

	// Control: the same validation passes the listed hosts.
	sources, err := urlguard.New(cfg.SourceHosts)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: cfg, sources: sources}
	for _, u := range []string{"https://images.example.com/a.png", "http://127.0.0.1:8090/a.png"} {
		if _, err := s.validateJob(&CreateJobRequest{ImageURL: u, Resolution: "4x", ImageWidth: 1000, ImageHeight: 1000}); err != nil {
			t.Fatalf("control %q refused: %v", u, err)
		}
	}

	for _, u := range []string{
		"http://127.0.0.1/a.png",
		"http://127.0.0.1:8091/a.png", // the listed address, another port
		"http://localhost:8090/a.png", // a name for the listed address
		"http://127.0.0.2:8090/a.png",
		"http://[::1]:8090/a.png",
		"http://[::ffff:127.0.0.1]:8090/a.png",
		"http://[::ffff:7f00:1]:8090/a.png",
		"http://[0:0:0:0:0:ffff:7f00:1]/a.png",
		"http://[fe80::1]/a.png",
		"http://[fe80::1%25eth0]/a.png",
		"http://[fc00::1]/a.png",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://2130706433:8090/a.png",
		"http://0x7f000001:8090/a.png",
		"http://0177.0.0.1:8090/a.png",
		"http://0177.0.0.01:8090/a.png",
		"http://127.1:8090/a.png",
		"http://127.000.000.001:8090/a.png",
		"http://0/a.png",
		"http://0.0.0.0:8090/a.png",
		"http://10.0.0.1/a.png",
		"http://172.16.0.1/a.png",
		"http://192.168.0.1/a.png",
		"http://100.64.0.1/a.png",
		"http://169.254.169.254/latest/meta-data/",
		"http://169.254.169.254.nip.io/latest/meta-data/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://images.example.com@169.254.169.254/a.png",
		"http://169.254.169.254#@images.example.com/a.png",
		"http://169.254.169.254\\@images.example.com/a.png",
		"http://images.example.com.evil.org/a.png",
		"http://images.example.com:80@evil.example.org/a.png",
		"file:///etc/passwd",
		"file://images.example.com/etc/passwd",
		"gopher://images.example.com:70/_GET",
		"ftp://images.example.com/a.png",
		"dict://images.example.com:11211/stats",
		"data:image/png;base64,iVBORw0KGgo=",
		"javascript:alert(1)",
		"//images.example.com/a.png",
		"HTTP://169.254.169.254/",
		" http://169.254.169.254/ ",
	} {
		body, _ := json.Marshal(CreateJobRequest{ImageURL: u, Resolution: "4x", ImageWidth: 1000, ImageHeight: 1000})
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testSiteKey)
		a.reset()
		rec := a.do(req, "192.0.2.20:1")
		var out errorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		if rec.Code != http.StatusUnprocessableEntity || out.Error.Field != "image_url" || out.Error.Code != "image_url_not_allowed" ||
			!strings.HasPrefix(out.Error.Message, "url not allowed: ") {
			t.Errorf("%q: %d %s, want 422 image_url_not_allowed with the reason", u, rec.Code, rec.Body)
		}
		a.noEffect(t, "Authenticate", "Allow") // counted against the key's limit, nothing stored
	}
}
