package upsamplersim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/upsampler"
)

const key = "sim-test-key"

// Tiny 6x4 WebP files made with cwebp from a generated gradient PNG.
const (
	webpLossless = "UklGRiwAAABXRUJQVlA4TCAAAAAvBcAAAJmM6H9sIqL/AYVsI0AHdv5iP8KgDGBMAERKDg=="
	webpLossy    = "UklGRlYAAABXRUJQVlA4IEoAAAAwAgCdASoGAAQAAUAmJagCdEyAfoAB2aeNEAD+82N/DCgTuXGct9lOaUiewJeeIH1pv/+0cLQfPkVUf7Yjao7ao9D/6MC+etwAAA=="
)

// gradientPNG makes a w×h test image.
func gradientPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 200, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// origin serves test inputs: path → body ("" means 404).
func origin(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hook records webhook deliveries.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	status func(n int) int // answer for the nth call (from 1); nil means 200
}

type hookCall struct {
	header http.Header
	body   []byte
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{header: r.Header.Clone(), body: body})
		code := http.StatusOK
		if h.status != nil {
			code = h.status(len(h.calls))
		}
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) got() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// newSim starts a simulator on a real loopback listener.
func newSim(t *testing.T, opts Options) (*Server, *httptest.Server, *upsampler.Client) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = key
	}
	sim := New(opts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close) // runs first: ends jobs and held submits
	return sim, ts, upsampler.New(ts.URL+"/api/v1", key, nil)
}

// waitDone polls Status until the job is terminal.
func waitDone(t *testing.T, c *upsampler.Client, id string) upsampler.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		job, err := c.Status(context.Background(), id)
		require.NoError(t, err)
		if job.Terminal() {
			return job
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return upsampler.Job{}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func TestUpscaleEndToEnd(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 120, 90)})
	h := newHook(t)
	sim, ts, c := newSim(t, Options{ProcessingDelay: 100 * time.Millisecond})

	start := time.Now()
	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{
		ImageURL: src.URL + "/in.png", UpscaleFactor: 4, WebhookURL: h.URL + "/hook?t=abc",
	})
	require.NoError(t, err)
	assert.Equal(t, upsampler.StatusInQueue, job.Status)
	assert.NotEmpty(t, job.ID)

	done := waitDone(t, c, job.ID)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "ProcessingDelay honoured")
	require.Equal(t, upsampler.StatusSuccess, done.Status, done.Error)
	assert.Equal(t, 1.0, done.CreditCost) // 480*360 px = 0.17 MP → min 1
	assert.Equal(t, ts.URL+"/files/"+job.ID+".png", done.ImageURL)
	assert.Equal(t, ts.URL+"/files/"+job.ID+"-compressed.jpg", done.CompressedImageURL)

	code, body := get(t, done.ImageURL)
	require.Equal(t, http.StatusOK, code)
	full, err := png.Decode(bytes.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 480, 360), full.Bounds())
	// The upscale keeps the picture: the centre pixel matches the source's.
	r, g, b, _ := full.At(240, 180).RGBA()
	assert.InDelta(t, 127, r>>8, 6)
	assert.InDelta(t, 127, g>>8, 6)
	assert.InDelta(t, 200, b>>8, 6)

	code, body = get(t, done.CompressedImageURL)
	require.Equal(t, http.StatusOK, code)
	small, err := jpeg.Decode(bytes.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 480, 360), small.Bounds())

	// Exactly one unsigned JSON callback carrying the status object.
	require.Eventually(t, func() bool { return len(h.got()) == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	calls := h.got()
	require.Len(t, calls, 1)
	assert.Equal(t, "application/json", calls[0].header.Get("Content-Type"))
	for name, vals := range calls[0].header {
		assert.NotContains(t, strings.ToLower(name), "signature")
		assert.NotContains(t, strings.Join(vals, ","), key)
	}
	_, statusBody := authGet(t, ts.URL+"/api/v1/status/"+job.ID, "Bearer "+key)
	assert.JSONEq(t, string(statusBody), string(calls[0].body))
	cb, err := upsampler.ParseCallback(calls[0].body)
	require.NoError(t, err)
	assert.Equal(t, done, cb)

	// Recorded traffic for assertions.
	reqs := sim.Requests()
	require.NotEmpty(t, reqs)
	assert.Equal(t, "/api/v1/precise-upscale", reqs[0].Path)
	assert.True(t, reqs[0].Authorized)
	assert.Equal(t, job.ID, reqs[0].JobID)
	require.NotNil(t, reqs[0].Submit)
	assert.Equal(t, src.URL+"/in.png", reqs[0].Submit.Input.ImageURL)
	assert.Equal(t, 4.0, *reqs[0].Submit.Input.UpscaleFactor)
	assert.Equal(t, h.URL+"/hook?t=abc", reqs[0].Submit.Webhook)
	assert.NotContains(t, reqs[0].Body, "globalCreativity")

	jobs := sim.Jobs()
	require.Len(t, jobs, 1)
	assert.Equal(t, 120, jobs[0].InputWidth)
	assert.Equal(t, 480, jobs[0].OutputWidth)
	assert.Equal(t, 1, jobs[0].WebhookDeliveries)
}

func TestStatusProgression(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 8, 8)})
	_, _, c := newSim(t, Options{ProcessingDelay: 600 * time.Millisecond})
	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.NoError(t, err)

	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		j, err := c.Status(context.Background(), job.ID)
		require.NoError(t, err)
		seen[j.Status] = true
		if j.Terminal() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Equal(t, map[string]bool{StatusInQueue: true, StatusInProgress: true, StatusSuccess: true}, seen)
}

func TestFailedInputs(t *testing.T) {
	src := origin(t, map[string][]byte{
		"/text.png": []byte("this is not an image"),
		"/big.png":  gradientPNG(t, 60, 60),
		"/wide.png": gradientPNG(t, 100, 100),
	})
	tests := []struct {
		name, path string
		factor     float64
		opts       Options
		wantErr    string
	}{
		{"404 input", "/missing.png", 4, Options{}, "HTTP 404"},
		{"not an image", "/text.png", 4, Options{}, "not a supported image"},
		{"too large", "/big.png", 2, Options{MaxInputBytes: 100}, "larger than"},
		{"too many output pixels", "/wide.png", 16, Options{MaxOutputPixels: 1_000_000}, "maximum is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t)
			_, _, c := newSim(t, tt.opts)
			job, err := c.Submit(context.Background(), upsampler.SubmitRequest{
				ImageURL: src.URL + tt.path, UpscaleFactor: tt.factor, WebhookURL: h.URL,
			})
			require.NoError(t, err)
			done := waitDone(t, c, job.ID)
			assert.Equal(t, upsampler.StatusFailed, done.Status)
			assert.Contains(t, done.Error, tt.wantErr)
			assert.Empty(t, done.ImageURL)

			require.Eventually(t, func() bool { return len(h.got()) == 1 }, 5*time.Second, 10*time.Millisecond)
			cb, err := upsampler.ParseCallback(h.got()[0].body)
			require.NoError(t, err)
			assert.Equal(t, done, cb)
		})
	}
}

func TestWebPInput(t *testing.T) {
	for name, b64 := range map[string]string{"lossless": webpLossless, "lossy": webpLossy} {
		t.Run(name, func(t *testing.T) {
			data, err := base64.StdEncoding.DecodeString(b64)
			require.NoError(t, err)
			src := origin(t, map[string][]byte{"/in.webp": data})
			_, _, c := newSim(t, Options{})
			job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.webp", UpscaleFactor: 2.5})
			require.NoError(t, err)
			done := waitDone(t, c, job.ID)
			require.Equal(t, upsampler.StatusSuccess, done.Status, done.Error)
			_, body := get(t, done.ImageURL)
			cfg, err := png.DecodeConfig(bytes.NewReader(body))
			require.NoError(t, err)
			assert.Equal(t, [2]int{15, 10}, [2]int{cfg.Width, cfg.Height}) // round(6*2.5) x round(4*2.5)
		})
	}
}

func authGet(t *testing.T, url, auth string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func post(t *testing.T, url, auth, ctype, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestAuth(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	body := `{"input":{"imageUrl":"http://127.0.0.1:1/x.png","upscaleFactor":4}}`
	for _, auth := range []string{"", "Bearer wrong", "bearer " + key, key, "Bearer " + key + "x", "Basic " + key} {
		code, out := post(t, ts.URL+"/api/v1/precise-upscale", auth, "application/json", body)
		assert.Equal(t, http.StatusUnauthorized, code, auth)
		assert.NotEmpty(t, out["error"], auth)

		code, _ = authGet(t, ts.URL+"/api/v1/status/whatever", auth)
		assert.Equal(t, http.StatusUnauthorized, code, auth)
	}
	code, _ := authGet(t, ts.URL+"/api/v1/status/no-such-job", "Bearer "+key)
	assert.Equal(t, http.StatusNotFound, code)
}

func TestEmptyKeyRefusesEverything(t *testing.T) {
	sim := New(Options{})
	defer sim.Close()
	rr := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/status/x", nil)
	req.Header.Set("Authorization", "Bearer ")
	sim.ServeHTTP(rr, req)
	assert.Equal(t, http.StatusUnauthorized, rr.Code)
}

func TestValidation(t *testing.T) {
	_, ts, _ := newSim(t, Options{ProcessingDelay: time.Hour})
	tests := []struct {
		name, endpoint, ctype, body string
		want                        int
	}{
		{"ok, unknown fields ignored", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":16,"globalCreativity":7,"detail":8},"extra":true}`, 200},
		{"ok with charset", "precise-upscale", "application/json; charset=utf-8", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":1,"inputImageType":"anime"}}`, 200},
		{"smart factor 4", "smart-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":4}}`, 200},
		{"dynamic factor 4.5", "dynamic-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":4.5}}`, 400},
		{"not JSON content type", "precise-upscale", "text/plain", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":4}}`, 400},
		{"broken JSON", "precise-upscale", "application/json", `{"input":`, 400},
		{"missing imageUrl", "precise-upscale", "application/json", `{"input":{"upscaleFactor":4}}`, 400},
		{"relative imageUrl", "precise-upscale", "application/json", `{"input":{"imageUrl":"/a.png","upscaleFactor":4}}`, 400},
		{"ftp imageUrl", "precise-upscale", "application/json", `{"input":{"imageUrl":"ftp://example.com/a.png","upscaleFactor":4}}`, 400},
		{"missing factor", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png"}}`, 400},
		{"factor below 1", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":0.5}}`, 400},
		{"factor above 16", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":17}}`, 400},
		{"factor as string", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":"4"}}`, 400},
		{"bad image type", "precise-upscale", "application/json", `{"input":{"imageUrl":"https://example.com/a.png","upscaleFactor":4,"inputImageType":"photo"}}`, 400},
		{"bad webhook", "precise-upscale", "application/json", `{"webhook":"not a url","input":{"imageUrl":"https://example.com/a.png","upscaleFactor":4}}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := post(t, ts.URL+"/api/v1/"+tt.endpoint, "Bearer "+key, tt.ctype, tt.body)
			assert.Equal(t, tt.want, code, out)
			if tt.want == 200 {
				assert.Equal(t, StatusInQueue, out["status"])
				assert.NotEmpty(t, out["id"])
			} else {
				assert.NotEmpty(t, out["error"])
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	sim, _, c := newSim(t, Options{})
	require.NoError(t, sim.SetBehavior(Behavior{FailNext: 1}))

	submit := func() upsampler.Job {
		job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
		require.NoError(t, err)
		return waitDone(t, c, job.ID)
	}
	first := submit()
	assert.Equal(t, upsampler.StatusFailed, first.Status)
	assert.Equal(t, ErrInternal, first.Error)
	assert.Equal(t, 0, sim.Behavior().FailNext)
	assert.Equal(t, upsampler.StatusSuccess, submit().Status)
}

func TestFailSubmitStatus(t *testing.T) {
	for _, code := range []int{429, 500} {
		sim, _, c := newSim(t, Options{})
		require.NoError(t, sim.SetBehavior(Behavior{FailSubmitStatus: code}))
		_, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 4})
		var apiErr *upsampler.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, code, apiErr.StatusCode)
		assert.True(t, apiErr.Retryable())
		if code == 429 {
			assert.Equal(t, time.Second, apiErr.RetryAfter)
		}
		assert.Empty(t, sim.Jobs())
	}
}

func TestInsufficientCredits(t *testing.T) {
	h := newHook(t)
	sim, _, c := newSim(t, Options{})
	require.NoError(t, sim.SetBehavior(Behavior{InsufficientCredits: true}))
	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 4, WebhookURL: h.URL})
	require.NoError(t, err)
	assert.Equal(t, upsampler.StatusFailed, job.Status)
	assert.Equal(t, ErrInsufficientCredits, job.Error)
	st, err := c.Status(context.Background(), job.ID)
	require.NoError(t, err)
	assert.Equal(t, job, st)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, h.got())
}

func TestResultExpiry(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	_, _, c := newSim(t, Options{ResultTTL: 300 * time.Millisecond})
	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.NoError(t, err)
	done := waitDone(t, c, job.ID)
	code, _ := get(t, done.ImageURL)
	assert.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		a, _ := get(t, done.ImageURL)
		b, _ := get(t, done.CompressedImageURL)
		return a == http.StatusNotFound && b == http.StatusNotFound
	}, 5*time.Second, 20*time.Millisecond)
}

func TestWebhookVariants(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	tests := []struct {
		name       string
		behavior   Behavior
		hookStatus func(n int) int
		wantCalls  int
	}{
		{"duplicate", Behavior{DuplicateWebhooks: true}, nil, 2},
		{"dropped", Behavior{DropWebhooks: true}, nil, 0},
		{"no retry by default", Behavior{}, func(int) int { return 500 }, 1},
		{"retry after 500", Behavior{WebhookRetries: 2}, func(n int) int { return map[bool]int{true: 500, false: 200}[n == 1] }, 2},
		{"delayed", Behavior{WebhookDelay: 50 * time.Millisecond}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t)
			h.status = tt.hookStatus
			sim, _, c := newSim(t, Options{})
			require.NoError(t, sim.SetBehavior(tt.behavior))
			job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2, WebhookURL: h.URL})
			require.NoError(t, err)
			assert.Equal(t, upsampler.StatusSuccess, waitDone(t, c, job.ID).Status)
			if tt.wantCalls > 0 {
				require.Eventually(t, func() bool { return len(h.got()) >= tt.wantCalls }, 5*time.Second, 10*time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // nothing more arrives
			assert.Len(t, h.got(), tt.wantCalls)
		})
	}
}

func TestSuccessWithoutImageURL(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	sim, _, c := newSim(t, Options{})
	require.NoError(t, sim.SetBehavior(Behavior{SuccessWithoutImageURL: true}))
	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.NoError(t, err)
	done := waitDone(t, c, job.ID)
	assert.Equal(t, upsampler.StatusSuccess, done.Status)
	assert.Empty(t, done.ImageURL)
	assert.NotEmpty(t, done.CompressedImageURL)
}

func TestNeverFinishAndClose(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	sim := New(Options{APIKey: key})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	c := upsampler.New(ts.URL+"/api/v1", key, nil)

	require.NoError(t, sim.SetBehavior(Behavior{NeverFinish: true}))
	stuck, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.NoError(t, err)
	require.NoError(t, sim.SetBehavior(Behavior{ProcessingDelay: time.Hour}))
	_, err = c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		j, err := c.Status(context.Background(), stuck.ID)
		return err == nil && j.Status == StatusInProgress
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	j, err := c.Status(context.Background(), stuck.ID)
	require.NoError(t, err)
	assert.Equal(t, StatusInProgress, j.Status)

	closed := make(chan struct{})
	go func() { sim.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return: a job goroutine is stuck")
	}
	// After Close, submits are refused.
	_, err = c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	var apiErr *upsampler.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
}

func TestSubmitDelayLosesTheAnswerButNotTheJob(t *testing.T) {
	src := origin(t, map[string][]byte{"/in.png": gradientPNG(t, 10, 10)})
	sim, ts, _ := newSim(t, Options{})
	require.NoError(t, sim.SetBehavior(Behavior{SubmitDelay: time.Minute}))
	c := upsampler.New(ts.URL+"/api/v1", key, &http.Client{Timeout: 100 * time.Millisecond})
	_, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: src.URL + "/in.png", UpscaleFactor: 2})
	require.Error(t, err)
	assert.True(t, upsampler.Retryable(err))
	require.Eventually(t, func() bool {
		jobs := sim.Jobs()
		return len(jobs) == 1 && jobs[0].Status == StatusSuccess
	}, 5*time.Second, 10*time.Millisecond)
}

func TestMaxJobsEvictsOldest(t *testing.T) {
	sim, _, c := newSim(t, Options{MaxJobs: 2, ProcessingDelay: time.Hour})
	var ids []string
	for range 3 {
		job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 2})
		require.NoError(t, err)
		ids = append(ids, job.ID)
	}
	_, err := c.Status(context.Background(), ids[0])
	var apiErr *upsampler.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	jobs := sim.Jobs()
	require.Len(t, jobs, 2)
	assert.Equal(t, ids[1], jobs[0].ID)
	assert.Equal(t, ids[2], jobs[1].ID)
}

func TestControlAPI(t *testing.T) {
	sim, ts, c := newSim(t, Options{ProcessingDelay: time.Hour})

	code, out := post(t, ts.URL+"/_sim/behavior", "", "application/json", `{"failNext":2,"webhookDelay":"150ms"}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, "1h0m0s", out["processingDelay"], "absent fields keep their value")
	assert.Equal(t, "150ms", out["webhookDelay"])
	assert.Equal(t, 2, sim.Behavior().FailNext)

	code, out = post(t, ts.URL+"/_sim/behavior", "", "application/json", `{"failNxt":1}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"], "failNxt")
	code, _ = post(t, ts.URL+"/_sim/behavior", "", "application/json", `{"failSubmitStatus":200}`)
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = post(t, ts.URL+"/_sim/behavior", "", "application/json", `{"processingDelay":"soon"}`)
	assert.Equal(t, http.StatusBadRequest, code)

	code, body := get(t, ts.URL+"/_sim/behavior")
	require.Equal(t, http.StatusOK, code)
	var b Behavior
	require.NoError(t, json.Unmarshal(body, &b))
	assert.Equal(t, Behavior{ProcessingDelay: time.Hour, FailNext: 2, WebhookDelay: 150 * time.Millisecond}, b)

	job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: "https://example.com/a.png", UpscaleFactor: 3})
	require.NoError(t, err)

	code, body = get(t, ts.URL+"/_sim/requests")
	require.Equal(t, http.StatusOK, code)
	var reqs []Request
	require.NoError(t, json.Unmarshal(body, &reqs))
	require.Len(t, reqs, 1, "control calls are not recorded")
	assert.Equal(t, job.ID, reqs[0].JobID)
	assert.NotContains(t, string(body), key)

	code, body = get(t, ts.URL+"/_sim/jobs")
	require.Equal(t, http.StatusOK, code)
	var jobs []JobInfo
	require.NoError(t, json.Unmarshal(body, &jobs))
	require.Len(t, jobs, 1)
	assert.Equal(t, 3.0, jobs[0].UpscaleFactor)
	assert.Equal(t, "universal", jobs[0].InputImageType)

	code, _ = post(t, ts.URL+"/_sim/reset", "", "", "")
	assert.Equal(t, http.StatusNoContent, code)
	assert.Empty(t, sim.Jobs())
	assert.Empty(t, sim.Requests())
	assert.Equal(t, Behavior{ProcessingDelay: time.Hour}, sim.Behavior())
}

func TestControlAPIIsLoopbackOnly(t *testing.T) {
	sim := New(Options{APIKey: key})
	defer sim.Close()
	rr := httptest.NewRecorder()
	sim.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/_sim/jobs", nil)) // RemoteAddr 192.0.2.1
	assert.Equal(t, http.StatusForbidden, rr.Code)
}

func TestCreditCost(t *testing.T) {
	tests := []struct {
		endpoint   string
		outW, outH int
		want       int
	}{
		{"precise-upscale", 480, 360, 1},
		{"precise-upscale", 2000, 2000, 1}, // exactly 4 MP
		{"precise-upscale", 2001, 2000, 2},
		{"precise-upscale", 8000, 6000, 12},
		{"smart-upscale", 2000, 2000, 4},
		{"dynamic-upscale", 100, 100, 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, creditCost(tt.endpoint, tt.outW, tt.outH), "%s %dx%d", tt.endpoint, tt.outW, tt.outH)
	}
}

func TestBehaviorJSON(t *testing.T) {
	in := Behavior{ProcessingDelay: 1500 * time.Millisecond, FailSubmitStatus: 429, FailNext: 3, NeverFinish: true}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"processingDelay":"1.5s"`)
	var out Behavior
	require.NoError(t, json.Unmarshal(data, &out))
	assert.Equal(t, in, out)

	// Go field names work too (JSON keys match case-insensitively), and
	// numbers are nanoseconds.
	out = Behavior{FailNext: 1}
	require.NoError(t, json.Unmarshal([]byte(`{"ProcessingDelay":2000000000,"DropWebhooks":true}`), &out))
	assert.Equal(t, Behavior{ProcessingDelay: 2 * time.Second, DropWebhooks: true, FailNext: 1}, out)
}
