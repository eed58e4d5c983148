//go:build integration

package e2e

import (
	"bytes"
	"context"
	"image"
	_ "image/png" // the download is a PNG
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/dev/upsamplersim"
	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// chromiumPath is Debian's Chromium (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// The phone the pages are looked at on.
const phoneWidth, phoneHeight = 390, 844

// tab is a headless Chromium tab, phone-sized, with the console watched.
type tab struct {
	ctx       context.Context
	downloads string // where the browser saves downloads

	mu       sync.Mutex
	problems []string // console errors and uncaught exceptions
}

// newTab starts Debian's Chromium for the test: headless, a fresh profile,
// and no traffic of its own (the network here is closed), as root.
func newTab(t *testing.T) *tab {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (%v). Install it with: "+
			"apt-get update && apt-get install -y --no-install-recommends chromium (.ci/run does this)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(phoneWidth, phoneHeight),
		chromedp.CombinedOutput(logFile()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, bound to ctx: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	tb := &tab{ctx: ctx, downloads: t.TempDir()}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.problems = append(tb.problems, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	tb.run(t, "set up the phone", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	// Times show in the reader's zone: make it one with a name to look for.
	_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/New_York"})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "en_US"})
	require.NoError(t, err)
	events := true
	_, err = chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: tb.downloads, EventsEnabled: &events,
	})
	require.NoError(t, err)
	return tb
}

// run runs browser steps, bounded in time.
func (tb *tab) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// checkConsole fails the test on console errors and uncaught exceptions
// (a script error, a resource the CSP refused, a failed request).
func (tb *tab) checkConsole(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	require.Empty(t, tb.problems, "the page logged errors")
}

// pageState is what the customer sees, read off the rendered page.
type pageState struct {
	Status         string   `json:"status"`      // #status's data-status
	StatusText     string   `json:"status_text"` // #status as shown
	Headline       string   `json:"headline"`
	Title          string   `json:"title"`
	Steps          []string `json:"steps"` // each step's state
	StepLabels     []string `json:"step_labels"`
	Visible        []string `json:"visible"`
	DownloadHref   string   `json:"download_href"`
	Expires        string   `json:"expires"`
	Refund         string   `json:"refund"`
	Marker         string   `json:"marker"` // set by the test; gone after a reload
	InlineScripts  int      `json:"inline_scripts"`
	ScrollWidth    int      `json:"scroll_width"`
	ViewportWidth  int      `json:"viewport_width"`
	SmallestTarget int      `json:"smallest_target"` // the least height of a visible button, px
}

func (p pageState) shows(id string) bool { return slices.Contains(p.Visible, id) }

const readPage = `(() => {
  const el = id => document.getElementById(id);
  const visible = e => !!e && !e.hidden && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const ids = ['pay', 'pay-dev', 'download', 'expires', 'refund', 'refund-pending', 'offline'];
  const buttons = [...document.querySelectorAll('.button')].filter(visible);
  return {
    status: el('status').getAttribute('data-status'),
    status_text: el('status').textContent.trim(),
    headline: el('headline').textContent.trim(),
    title: document.title,
    steps: [...document.querySelectorAll('#steps .step')].map(s => s.className.replace('step', '').trim()),
    step_labels: [...document.querySelectorAll('#steps .step')].map(s => s.textContent.trim()),
    visible: ids.filter(id => visible(el(id))),
    download_href: el('download').href || '',
    expires: el('expires').textContent.trim(),
    refund: el('refund').textContent.trim(),
    marker: String(window.hiresTestMarker || ''),
    inline_scripts: document.querySelectorAll('script:not([src])').length,
    scroll_width: document.documentElement.scrollWidth,
    viewport_width: window.innerWidth,
    smallest_target: buttons.length ? Math.floor(Math.min(...buttons.map(b => b.getBoundingClientRect().height))) : 0,
  };
})()`

func (tb *tab) state(t *testing.T) pageState {
	t.Helper()
	p, err := tb.tryState()
	require.NoError(t, err, "read the page")
	return p
}

func (tb *tab) tryState() (pageState, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
}

// open loads a job's page the way Stripe Checkout sends the customer back,
// and marks the document, so that a reload would show.
func (tb *tab) open(t *testing.T, created api.CreateJobResponse) pageState {
	t.Helper()
	page := stack.APIURL + "/jobs/" + created.ID + "?token=" + url.QueryEscape(created.AccessToken) + "&checkout=success"
	tb.run(t, "open the page",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("#headline")),
		chromedp.Evaluate[chromedp.Void](`window.hiresTestMarker = 'same document'`),
	)
	p := tb.state(t)
	require.Zero(t, p.InlineScripts, "no inline scripts (the CSP forbids them)")
	require.LessOrEqual(t, p.ScrollWidth, p.ViewportWidth, "no sideways scrolling on a phone")
	require.Equal(t, phoneWidth, p.ViewportWidth)
	return p
}

// waitPage reads the page until cond holds, failing after timeout. It
// returns the state and every status the page showed on the way. A read
// that fails (the page is being reloaded) is tried again.
func (tb *tab) waitPage(t *testing.T, timeout time.Duration, what string, cond func(pageState) bool) (pageState, []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	for {
		p, err := tb.tryState()
		if err == nil {
			if len(seen) == 0 || seen[len(seen)-1] != p.Status {
				seen = append(seen, p.Status)
			}
			if cond(p) {
				return p, seen
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show %s within %s; it shows %+v, last error %v (statuses seen: %v)", what, timeout, p, err, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A customer pays with the page's simulated payment button, watches the
// job move without reloading, and downloads the 4x image.
func TestBrowserPaidJob(t *testing.T) {
	tb := newTab(t)
	const w, h = 120, 100
	// The payment window is short in these tests: open the page at once.
	created, status := newJob(t, w, h, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	p := tb.open(t, created)
	require.Equal(t, "awaiting_payment", p.Status)
	require.Equal(t, "Awaiting payment", p.StatusText)
	require.Equal(t, "Waiting for your payment", p.Headline)
	require.Equal(t, []string{"current", "todo", "todo", "todo"}, p.Steps)
	require.True(t, p.shows("pay"), "Stripe's Pay now")
	require.True(t, p.shows("pay-dev"), "the simulated payment (DEV_PAYMENTS is on in the local stack)")
	require.False(t, p.shows("download"))
	require.GreaterOrEqual(t, p.SmallestTarget, 44, "tap targets at least 44 px high")

	tb.run(t, "pay", chromedp.Click(chromedp.CSS("#pay-dev")))
	p, seen := tb.waitPage(t, 60*time.Second, "the finished job", func(p pageState) bool {
		return p.Status == "completed" && p.shows("download")
	})
	t.Logf("statuses shown: %v", seen)
	require.Equal(t, "same document", p.Marker, "updated in place, not reloaded")
	order := []string{"awaiting_payment", "pending", "processing", "completed"}
	last := -1
	for _, s := range seen {
		i := slices.Index(order, s)
		require.GreaterOrEqual(t, i, last, "the page never goes back (%v)", seen)
		last = i
	}
	require.Equal(t, "Completed", p.StatusText)
	require.Equal(t, "Your image is ready", p.Headline)
	require.Equal(t, "Your image is ready", p.Title)
	require.Equal(t, []string{"done", "done", "done", "done"}, p.Steps)
	require.False(t, p.shows("pay"))
	require.False(t, p.shows("pay-dev"))
	require.True(t, p.shows("expires"))
	// The expiry in the reader's zone (New York here), with the zone's name.
	require.Regexp(t, regexp.MustCompile(`^The link expires on .*\d{1,2}:\d{2}.*\bE[SD]T\.$`), p.Expires)

	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	require.NotNil(t, view.Download)
	require.Equal(t, view.Download.URL, p.DownloadHref)

	if os.Getenv("HIRES_SCREENSHOTS") != "" {
		screenshot(t, tb, filepath.Join("..", "..", "docs", "customer-page.png"))
	}

	// The link lives for DOWNLOAD_TTL only (seconds in these tests): download now.
	progress := chromedp.BrowserEvents(tb.ctx, browser.DownloadProgress)
	tb.run(t, "download", chromedp.Click(chromedp.CSS("#download")))
	file := waitDownload(t, tb, progress)
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	require.NoError(t, err, "the download is an image")
	require.Equal(t, "png", format)
	require.Equal(t, [2]int{4 * w, 4 * h}, [2]int{cfg.Width, cfg.Height}, "4x the input")
	tb.checkConsole(t)
}

// waitDownload waits (bounded) for the browser's download to complete and
// returns the file.
func waitDownload(t *testing.T, tb *tab, progress iter.Seq2[browser.EventDownloadProgress, error]) string {
	t.Helper()
	done := make(chan browser.EventDownloadProgress, 1)
	go func() {
		for ev, err := range progress {
			if err != nil {
				return
			}
			if ev.State != browser.DownloadProgressStateInProgress {
				done <- ev
				return
			}
		}
	}()
	select {
	case ev := <-done:
		require.Equal(t, browser.DownloadProgressStateCompleted, ev.State, "the download")
		// allowAndName saves the file under the download's GUID.
		return filepath.Join(tb.downloads, ev.GUID)
	case <-time.After(30 * time.Second):
		t.Fatalf("the download did not complete within 30s")
		return ""
	}
}

// screenshot saves the phone's view of the page, for README.
func screenshot(t *testing.T, tb *tab, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// The upscale fails after the customer paid: the page shows the failure
// and, once made, the refund with its amount and date.
func TestBrowserFailedJobShowsTheRefund(t *testing.T) {
	tb := newTab(t)
	withBehavior(t, func(b *upsamplersim.Behavior) { b.FailNext = 1 })
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	tb.open(t, created)
	tb.run(t, "pay", chromedp.Click(chromedp.CSS("#pay-dev")))
	p, seen := tb.waitPage(t, processingTimeout+30*time.Second, "the refund", func(p pageState) bool { return p.shows("refund") })
	t.Logf("statuses shown: %v", seen)
	require.Equal(t, "same document", p.Marker, "updated in place, not reloaded")
	require.Equal(t, "failed", p.Status)
	require.Equal(t, "Something went wrong", p.Headline)
	require.Equal(t, []string{"done", "done", "failed", "todo"}, p.Steps)
	require.Equal(t, []string{"Awaiting payment", "Paid", "Processing failed", "Ready"}, p.StepLabels)
	require.False(t, p.shows("download"))
	require.False(t, p.shows("refund-pending"))

	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	require.NotNil(t, view.Refund)
	amount := strings.ToUpper(view.Refund.Currency) + " "
	require.Contains(t, p.Refund, "Your payment of "+amount)
	require.Regexp(t, regexp.MustCompile(`was refunded on .*\d{1,2}:\d{2}.*\bE[SD]T\. It reaches your card`), p.Refund)

	// The same page loaded afresh says the same.
	p = tb.open(t, created)
	require.True(t, p.shows("refund"))
	require.Equal(t, "Failed", p.StatusText)
	tb.checkConsole(t)
}

// With scripts off, the page still works: the button posts a form, and a
// meta refresh reloads the page until the job is done.
func TestBrowserPageWorksWithoutJavaScript(t *testing.T) {
	tb := newTab(t)
	_, err := chromedp.Call(tb.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	require.NoError(t, err)
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	p := tb.open(t, created)
	require.Equal(t, "awaiting_payment", p.Status)
	require.True(t, p.shows("pay-dev"))
	tb.run(t, "pay", chromedp.Click(chromedp.CSS("#pay-dev")))
	p, seen := tb.waitPage(t, 60*time.Second, "the finished job", func(p pageState) bool {
		return p.Status == "completed" && p.shows("download")
	})
	t.Logf("statuses shown: %v", seen)
	require.Empty(t, p.Marker, "reloaded, as it must be without a script")
	require.Equal(t, []string{"done", "done", "done", "done"}, p.Steps)
	require.Regexp(t, regexp.MustCompile(`^The link expires on .* UTC\.$`), p.Expires)
	tb.checkConsole(t)
}

// A Checkout Session that expires unpaid: the page says the order was not paid.
func TestBrowserAbandonedJob(t *testing.T) {
	tb := newTab(t)
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	res, err := paysim.Expire(context.Background(), paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	waitFor(t, created.ID, 20*time.Second, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	p := tb.open(t, created)
	require.Equal(t, "abandoned", p.Status)
	require.Equal(t, "This order was not paid", p.Headline)
	require.Equal(t, []string{"failed", "todo", "todo", "todo"}, p.Steps)
	require.Equal(t, []string{"Not paid", "Paid", "Processing", "Ready"}, p.StepLabels)
	require.Empty(t, p.Visible, "no button, no refund")
	tb.checkConsole(t)
}

// The simulated payment route checks the access token, and is not there
// at all unless DEV_PAYMENTS is on. The page's security headers.
func TestBrowserPageHeadersAndDevPaymentRoute(t *testing.T) {
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	pay := func(tok string) int {
		resp, err := apiClient.Post(stack.APIURL+"/dev/jobs/"+created.ID+"/pay?token="+url.QueryEscape(tok), "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNotFound, pay("wrong"))
	require.Equal(t, http.StatusNotFound, pay(""))
	require.Equal(t, jobs.StatusAwaitingPayment, adminJob(t, created.ID).Status)

	// A plain form post (no script) pays and is sent back to the page.
	noRedirect := &http.Client{Transport: apiClient.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Post(stack.APIURL+"/dev/jobs/"+created.ID+"/pay?token="+url.QueryEscape(created.AccessToken), "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/jobs/"+created.ID+"?token="+url.QueryEscape(created.AccessToken), resp.Header.Get("Location"))
	waitFor(t, created.ID, 20*time.Second, "paid", func(j api.AdminJob) bool { return j.PaidAt != nil })
	require.Equal(t, http.StatusConflict, pay(created.AccessToken), "paid already")
	// Leave no job running behind for the tests that follow.
	waitFor(t, created.ID, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })

	resp, err = apiClient.Get(stack.APIURL + "/jobs/" + created.ID + "?token=" + url.QueryEscape(created.AccessToken))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
		require.Contains(t, csp, d)
	}
	require.NotContains(t, csp, "unsafe-inline")

	resp, err = apiClient.Get(stack.APIURL + "/assets/job.js")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")

	// The same API with DEV_PAYMENTS off has no such route.
	env := map[string]string{}
	for k, v := range stack.Env {
		env[k] = v
	}
	env["DEV_PAYMENTS"] = "false"
	cfg, err := config.LoadEnv(config.RoleAPI, env)
	require.NoError(t, err)
	require.False(t, cfg.DevPayments)
	e, err := api.New(api.Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dev/jobs/"+created.ID+"/pay?token="+url.QueryEscape(created.AccessToken), nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
}
