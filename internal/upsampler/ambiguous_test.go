package upsampler

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A submission whose answer is lost may have created a job at Upsampler;
// one that never reached it, or that Upsampler refused, did not.
func TestAmbiguousSubmitErrors(t *testing.T) {
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		return "http://" + addr
	}
	tests := []struct {
		name      string
		base      func(t *testing.T) string
		ambiguous bool
		timeout   time.Duration // the client's; 5s if zero, so that only the timeout case times out
	}{
		{"connection refused", refused, false, 0},
		{"429", answering(http.StatusTooManyRequests, `{"error":"slow down"}`), false, 0},
		{"503", answering(http.StatusServiceUnavailable, `{"error":"maintenance"}`), false, 0},
		{"400", answering(http.StatusBadRequest, `{"error":"bad imageUrl"}`), false, 0},
		{"502 from a gateway", answering(http.StatusBadGateway, `bad gateway`), true, 0},
		{"504 from a gateway", answering(http.StatusGatewayTimeout, `timeout`), true, 0},
		{"500", answering(http.StatusInternalServerError, `{"error":"oops"}`), true, 0},
		{"200 without a job id", answering(http.StatusOK, `{"status":"IN_QUEUE"}`), true, 0},
		{"timeout after sending", func(t *testing.T) string {
			return server(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body) // the server notices the client hanging up only once the body is read
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			})
		}, true, 100 * time.Millisecond},
		{"connection closed after the request was read", func(t *testing.T) string {
			return server(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			})
		}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			c := New(tt.base(t), testKey, &http.Client{Timeout: timeout})
			_, err := c.Submit(context.Background(), SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 4})
			require.Error(t, err)
			assert.Equal(t, tt.ambiguous, Ambiguous(err), "%v", err)
		})
	}
	assert.False(t, Ambiguous(nil))
}

func answering(code int, body string) func(t *testing.T) string {
	return func(t *testing.T) string {
		srv, _ := serve(t, answer{code: code, body: body})
		return srv.URL
	}
}

func server(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
