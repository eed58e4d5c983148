package storage

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/config"
)

const testSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

func TestS3Options(t *testing.T) {
	valid := S3Options{Endpoint: "http://127.0.0.1:7070", Bucket: "hires-results", AccessKeyID: "AKID", SecretAccessKey: testSecret}
	tests := []struct {
		name    string
		edit    func(o *S3Options)
		wantErr string
	}{
		{name: "loopback http", edit: func(*S3Options) {}},
		{name: "https", edit: func(o *S3Options) { o.Endpoint = "https://s3.eu-west-1.amazonaws.com/" }},
		{name: "default endpoint", edit: func(o *S3Options) { o.Endpoint = "" }},
		{name: "localhost", edit: func(o *S3Options) { o.Endpoint = "http://localhost:9000" }},
		{name: "no bucket", edit: func(o *S3Options) { o.Bucket = "" }, wantErr: "bucket is required"},
		{name: "bad bucket", edit: func(o *S3Options) { o.Bucket = "Bad_Bucket" }, wantErr: "bucket"},
		{name: "no access key", edit: func(o *S3Options) { o.AccessKeyID = "" }, wantErr: "access key ID and secret access key are required"},
		{name: "no secret", edit: func(o *S3Options) { o.SecretAccessKey = "" }, wantErr: "access key ID and secret access key are required"},
		{name: "credentials in endpoint", edit: func(o *S3Options) { o.Endpoint = "http://AKID:" + testSecret + "@127.0.0.1:7070" }, wantErr: "must not contain credentials"},
		{name: "no scheme", edit: func(o *S3Options) { o.Endpoint = "127.0.0.1:7070" }, wantErr: "http:// or https://"},
		{name: "other scheme", edit: func(o *S3Options) { o.Endpoint = "ftp://example.com" }, wantErr: "http:// or https://"},
		{name: "path", edit: func(o *S3Options) { o.Endpoint = "http://127.0.0.1:7070/bucket" }, wantErr: "without a path"},
		{name: "secret in query", edit: func(o *S3Options) { o.Endpoint = "http://127.0.0.1:7070/?key=" + testSecret }, wantErr: "without a path or query"},
		{name: "part size too small", edit: func(o *S3Options) { o.PartSize = 1 << 20 }, wantErr: "part size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.edit(&o)
			s, err := NewS3(o)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.NotContains(t, err.Error(), testSecret)
				return
			}
			require.NoError(t, err)
			assert.NotContains(t, s.String(), testSecret)
		})
	}
}

func TestS3AddressingAndTLS(t *testing.T) {
	for _, tt := range []struct {
		endpoint string
		secure   bool
		host     string
	}{
		{"http://127.0.0.1:7070", false, "127.0.0.1:7070"},
		{"https://minio.internal:9000", true, "minio.internal:9000"},
		{"", true, "s3.amazonaws.com"},
	} {
		s, err := NewS3(S3Options{Endpoint: tt.endpoint, Bucket: "hires-results", AccessKeyID: "AKID", SecretAccessKey: testSecret})
		require.NoError(t, err)
		u := s.client.EndpointURL()
		assert.Equal(t, tt.host, u.Host, tt.endpoint)
		assert.Equal(t, map[bool]string{true: "https", false: "http"}[tt.secure], u.Scheme, tt.endpoint)
	}
}

func TestS3FromConfig(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir(), S3Bucket: "hires-results", S3Region: "eu-west-1", S3Endpoint: "http://127.0.0.1:7070"}
	_, err := FromConfig(cfg)
	require.ErrorContains(t, err, "S3_* settings")

	cfg.S3AccessKeyID, cfg.S3SecretAccessKey = "AKID", testSecret
	st, err := FromConfig(cfg)
	require.NoError(t, err)
	assert.IsType(t, &S3{}, st)

	cfg.S3Bucket = ""
	st, err = FromConfig(cfg)
	require.NoError(t, err)
	assert.IsType(t, &Local{}, st)
}

// A fake S3 answering every request with a fixed status shows how errors
// are mapped, and that none of them carries the secret key.
func TestS3ErrorMapping(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		assert.Contains(t, r.Header.Get("Authorization"), "Credential=AKID/", "SigV4-signed")
		assert.NotContains(t, r.Header.Get("Authorization"), testSecret)
		w.Header().Set("Content-Type", "application/xml")
		switch {
		case strings.Contains(r.URL.Path, "/missing"):
			w.WriteHeader(http.StatusNotFound)
			if r.Method != http.MethodHead {
				_, _ = w.Write([]byte(`<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>`))
			}
		default:
			w.WriteHeader(http.StatusForbidden)
			if r.Method != http.MethodHead {
				_, _ = w.Write([]byte(`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			}
		}
	}))
	defer srv.Close()
	s, err := NewS3(S3Options{Endpoint: srv.URL, Bucket: "hires-results", AccessKeyID: "AKID", SecretAccessKey: testSecret})
	require.NoError(t, err)
	ctx := t.Context()

	_, err = s.Open(ctx, "results/missing.png")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.Delete(ctx, "results/missing.png"), "a missing key deletes fine")

	_, err = s.Open(ctx, "results/denied.png")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrNotFound)
	assert.NotContains(t, err.Error(), testSecret)
	_, err = s.Put(ctx, "results/denied.png", strings.NewReader("data"))
	require.ErrorContains(t, err, "Access Denied")
	assert.NotContains(t, err.Error(), testSecret)
	err = s.Delete(ctx, "results/denied.png")
	require.ErrorContains(t, err, "results/denied.png")
	assert.NotContains(t, err.Error(), testSecret)

	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		assert.True(t, strings.HasSuffix(p, " /hires-results/results/missing.png") ||
			strings.HasSuffix(p, " /hires-results/results/denied.png"), "path-style request %q", p)
	}
}
