//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/internal/jobs"
)

// The download route on the real stack (PostgreSQL's exact lookup by
// token): near-miss tokens are 404 and record nothing, HEAD records
// nothing, a zero-length suffix range is 416 with a well-formed
// Content-Range, other methods are 405; the right GET serves the file and
// records the download. (Expiry, 410, is in TestPaidJobLifecycle; the rate
// limit, off here, in the api package's tests.)
func TestDownloadTokensOnTheRealStack(t *testing.T) {
	created := paidJob(t)
	waitFor(t, created.ID, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	require.NotNil(t, view.Download)
	base, tok, ok := strings.Cut(view.Download.URL, "/v1/downloads/")
	require.True(t, ok, view.Download.URL)
	require.Len(t, tok, 64)
	db := connectDB(t)
	downloaded := func() bool {
		var at *time.Time
		require.NoError(t, db.QueryRow(context.Background(), `SELECT downloaded_at FROM jobs WHERE id = $1`, created.ID).Scan(&at))
		return at != nil
	}
	do := func(method, token string, header map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest(method, base+"/v1/downloads/"+token, nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := apiClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}
	flipCase := func(s string, i int) string {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			c = '0' + (c-'0'+1)%10
		}
		return s[:i] + string(c) + s[i+1:]
	}

	for _, near := range []string{
		flipCase(tok, 0), flipCase(tok, 63), flipCase(tok, 31), strings.ToLower(tok), strings.ToUpper(tok),
		tok[:63], tok + "A", tok[1:] + tok[:1], fmt.Sprintf("%%%02X", tok[0]) + tok[1:], tok + "%00",
	} {
		if near == tok {
			continue
		}
		resp, body := do("GET", near, map[string]string{"Range": "bytes=0-99"})
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "token %q", near)
		require.Empty(t, resp.Header.Get("Content-Disposition"))
		require.Contains(t, string(body), `"not_found"`)
	}
	resp, body := do("HEAD", tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	require.False(t, downloaded(), "neither HEAD nor wrong tokens record a download")

	for _, method := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := do(method, tok, nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
	}
	resp, body = do("GET", tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(string(body), "\x89PNG\r\n\x1a\n"))
	require.Equal(t, "private, no-store", resp.Header.Get("Cache-Control"))
	require.True(t, downloaded())

	resp, body = do("GET", tok, map[string]string{"Range": "bytes=-0"})
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode)
	require.Regexp(t, `^bytes \*/[1-9][0-9]*$`, resp.Header.Get("Content-Range"))
	require.NotContains(t, string(body), "PNG")
}
