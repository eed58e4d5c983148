package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/store"
	"hires/internal/urlguard"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	sources, err := urlguard.New([]string{"images.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return &Server{
		cfg:     config.Config{MarkupPercent: 200, MaxOutputMegapixels: 400, PublicBaseURL: "https://hires.example.com"},
		sources: sources,
		now:     func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
}

func TestValidateJob(t *testing.T) {
	ok := func() CreateJobRequest {
		return CreateJobRequest{ImageURL: "https://images.example.com/a.jpg", Resolution: "4x",
			Email: "a@example.com", ImageWidth: 2000, ImageHeight: 2000}
	}
	tests := []struct {
		name   string
		mutate func(*CreateJobRequest)
		field  string // "" means valid
		code   string
	}{
		{"valid", func(*CreateJobRequest) {}, "", ""},
		{"email optional", func(r *CreateJobRequest) { r.Email = "" }, "", ""},
		{"spaces trimmed", func(r *CreateJobRequest) { r.ImageURL = "  https://images.example.com/a.jpg " }, "", ""},
		{"no URL", func(r *CreateJobRequest) { r.ImageURL = "" }, "image_url", "required"},
		{"other host", func(r *CreateJobRequest) { r.ImageURL = "https://other.example.com/a.jpg" }, "image_url", "image_url_not_allowed"},
		{"2x", func(r *CreateJobRequest) { r.Resolution = "2x" }, "resolution", "invalid_resolution"},
		{"bad email", func(r *CreateJobRequest) { r.Email = "a@" }, "email", "invalid_email"},
		{"99 px", func(r *CreateJobRequest) { r.ImageHeight = 99 }, "image_height", "image_too_small"},
		{"100 px is enough", func(r *CreateJobRequest) { r.ImageHeight = 100 }, "", ""},
		{"too wide", func(r *CreateJobRequest) { r.ImageWidth = 20001 }, "image_width", "image_too_large"},
		{"output over the limit", func(r *CreateJobRequest) { r.Resolution = "8x"; r.ImageWidth, r.ImageHeight = 3000, 3000 }, "resolution", "output_too_large"},
		{"negative post", func(r *CreateJobRequest) { r.PostID = -1 }, "post_id", "invalid_post_id"},
	}
	s := testServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.mutate(&r)
			q, err := s.validateJob(&r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if q.PriceCents < 50 {
					t.Fatalf("price %d", q.PriceCents)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity || ae.body.Field != tt.field || ae.body.Code != tt.code {
				t.Fatalf("got %#v, want 422 %s/%s", err, tt.field, tt.code)
			}
		})
	}
}

func TestSeedPriceThroughTheAPI(t *testing.T) {
	s := testServer(t)
	s.cfg.MarkupPercent = 500
	r := CreateJobRequest{ImageURL: "https://images.example.com/a.jpg", Resolution: "4x", ImageWidth: 2000, ImageHeight: 2000}
	q, err := s.validateJob(&r)
	if err != nil {
		t.Fatal(err)
	}
	if q.Credits != 16 || q.CostCents != 64 || q.PriceCents != 384 {
		t.Fatalf("got %+v", q)
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	for k, want := range map[string]bool{
		"":                       true,
		"order-1001":             true,
		strings.Repeat("k", 255): true,
		strings.Repeat("k", 256): false,
		"has space":              false,
		"tab\t":                  false,
		"ünïcode":                false,
	} {
		if got := validateIdempotencyKey(k) == nil; got != want {
			t.Errorf("validateIdempotencyKey(%q) ok=%v, want %v", k, got, want)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		body string
		ok   bool
	}{
		{`{"resolution":"4x"}`, true},
		{`{"resolution":"4x","extra":1}`, false},
		{`{"image_width":"wide"}`, false},
		{`{} {}`, false},
		{`{}}`, false},
		{`{"resolution":"4x"}]`, false},
		{"{\"resolution\":\"4x\"}\n", true},
		{``, false},
		{`[]`, false},
	}
	for _, tt := range tests {
		_, err := decodeStrict[CreateJobRequest](strings.NewReader(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("decodeStrict(%q) = %v, want ok=%v", tt.body, err, tt.ok)
		}
	}
}

func TestCustomerViewDownload(t *testing.T) {
	s := testServer(t)
	tok := strings.Repeat("a", 64)
	future, past := s.now().Add(time.Hour), s.now().Add(-time.Second)
	tests := []struct {
		name    string
		job     store.Job
		url     bool
		expired bool
		none    bool
	}{
		{"completed", store.Job{Status: jobs.StatusCompleted, DownloadToken: &tok, DownloadExpiresAt: &future}, true, false, false},
		{"past expiry", store.Job{Status: jobs.StatusCompleted, DownloadToken: &tok, DownloadExpiresAt: &past}, false, true, false},
		{"cleaned up", store.Job{Status: jobs.StatusCompleted, DownloadToken: &tok, DownloadExpiresAt: &future, DownloadExpiredAt: &past}, false, true, false},
		{"processing", store.Job{Status: jobs.StatusProcessing}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := s.customerView(tt.job)
			if tt.none {
				if v.Download != nil {
					t.Fatal("unexpected download")
				}
				return
			}
			if (v.Download.URL != "") != tt.url || v.Download.Expired != tt.expired {
				t.Fatalf("got %+v", v.Download)
			}
			if tt.url && v.Download.URL != "https://hires.example.com/v1/downloads/"+tok {
				t.Fatalf("url %s", v.Download.URL)
			}
		})
	}
}

func TestFormatCents(t *testing.T) {
	for cents, want := range map[int64]string{384: "USD 3.84", 50: "USD 0.50", 100000: "USD 1000.00", 7: "USD 0.07"} {
		if got := formatCents(cents, "usd"); got != want {
			t.Errorf("formatCents(%d) = %q, want %q", cents, got, want)
		}
	}
}
