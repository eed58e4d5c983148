package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"hires/internal/jobs"
	"hires/internal/store"
	"hires/internal/token"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed assets/*
var assetFS embed.FS

// pageCSP is the job page's Content-Security-Policy: its script and style
// come from /assets on the same origin, it talks only to the API it came
// from, and nothing inline runs.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// staticAsset is one embedded file of /assets.
type staticAsset struct {
	body        []byte
	contentType string
	version     string // a hash of body; the page links to name?v=version
}

var staticAssets = loadAssets()

func loadAssets() map[string]staticAsset {
	out := map[string]staticAsset{}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		out[e.Name()] = staticAsset{body: b, contentType: mime.TypeByExtension(path.Ext(e.Name())),
			version: hex.EncodeToString(sum[:6])}
	}
	return out
}

// assetURL is the versioned address of an embedded asset, so that it can
// be cached for long and still change with a release.
func assetURL(name string) string {
	a, ok := staticAssets[name]
	if !ok {
		panic("api: no asset " + name)
	}
	return "/assets/" + name + "?v=" + a.version
}

// asset serves GET /assets/:name, the page's script and stylesheet.
func (s *Server) asset(c echo.Context) error {
	a, ok := staticAssets[c.Param("name")]
	if !ok {
		return errNotFound
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if c.QueryParam("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

var pageTemplate = template.Must(template.ParseFS(templates, "templates/job.html"))

// The progress steps, in order. Keep the texts in step with assets/job.js.
var progressSteps = []struct {
	Status jobs.Status
	Label  string
}{
	{jobs.StatusAwaitingPayment, "Awaiting payment"},
	{jobs.StatusPending, "Paid"},
	{jobs.StatusProcessing, "Processing"},
	{jobs.StatusCompleted, "Ready"},
}

var headlines = map[jobs.Status][2]string{
	jobs.StatusAwaitingPayment: {"Waiting for your payment", "Complete the payment to start upscaling."},
	jobs.StatusPending:         {"Payment received", "Your image is about to be upscaled."},
	jobs.StatusProcessing:      {"Upscaling your image", "This usually takes a minute or two."},
	jobs.StatusCompleted:       {"Your image is ready", "Download it before the link expires."},
	jobs.StatusFailed:          {"Something went wrong", "We could not upscale your image."},
	jobs.StatusAbandoned:       {"This order was not paid", "The payment window has closed. Nothing was charged."},
}

// processingHeadline is shown while a bank debit is being processed: the
// job awaits payment, but the customer has done their part.
var processingHeadline = [2]string{"Your payment is being processed",
	"Your bank is confirming the payment, which can take a few business days. We will email you when it is confirmed, and then upscale your image."}

// headline is the page's headline and detail for v.
func headline(v JobView) [2]string {
	if v.Status == jobs.StatusAwaitingPayment && v.PaymentStatus == jobs.PaymentProcessing {
		return processingHeadline
	}
	return headlines[v.Status]
}

var statusLabels = map[jobs.Status]string{
	jobs.StatusAwaitingPayment: "Awaiting payment",
	jobs.StatusPending:         "Paid",
	jobs.StatusProcessing:      "Processing",
	jobs.StatusCompleted:       "Completed",
	jobs.StatusFailed:          "Failed",
	jobs.StatusAbandoned:       "Not paid",
}

// pageTime is how the page shows a time without JavaScript; the script
// shows it in the reader's own time zone.
const pageTime = "Mon 2 Jan 2006 15:04 MST"

// progressStep is one line of the progress list.
type progressStep struct {
	Key   jobs.Status
	Label string
	State string // done, current, todo or failed
}

// pageData is what the job page shows.
type pageData struct {
	View        JobView
	Token       string
	Headline    string
	Detail      string
	StatusLabel string
	Steps       []progressStep
	// Watch: the page may still change, so it refreshes (by script, or
	// without one by a meta refresh).
	Watch bool
	Price string
	// Refunded is the refunded amount; RefundPending says a paid failed job
	// is still waiting for its refund.
	Refunded            string
	RefundedAt          string
	RefundedISO         string
	RefundPending       bool
	Expires             string
	ExpiresISO          string
	DevPay              bool
	Script, Style, Icon string
}

// jobPage is where Stripe Checkout returns the customer: the job's progress,
// updated in place by a small script (or a meta refresh without one) until
// it settles, then the download or the refund. The access token rides in the
// query string, so the page forbids referrers and caching.
func (s *Server) jobPage(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	job, err := s.pageJob(c)
	switch {
	case errors.Is(err, errNotFound):
		return c.HTML(http.StatusNotFound, "<!doctype html><title>Not found</title><p>This order does not exist or the link is incomplete.</p>")
	case unavailable(err):
		// The order is safe; only reading it failed. The page tries again by itself.
		s.log.WarnContext(c.Request().Context(), "the customer's page is unavailable", "error", err)
		h.Set("Retry-After", "5")
		return c.HTML(http.StatusServiceUnavailable, `<!doctype html><meta http-equiv="refresh" content="5"><title>One moment</title>`+
			`<p>Your order is safe, but it cannot be shown right now. This page tries again in a few seconds.</p>`)
	case err != nil:
		return err
	}
	v := s.customerView(job)
	d := pageData{View: v, Token: c.QueryParam("token"),
		Headline: headline(v)[0], Detail: headline(v)[1], StatusLabel: statusLabels[v.Status],
		Steps: steps(v), Watch: watching(v), Price: formatCents(v.Price.AmountCents, v.Price.Currency),
		RefundPending: refundPending(v), DevPay: s.cfg.DevPayments,
		Script: assetURL("job.js"), Style: assetURL("job.css"), Icon: assetURL("favicon.svg")}
	if v.Refund != nil {
		d.Refunded = formatCents(v.Refund.AmountCents, v.Refund.Currency)
		d.RefundedAt, d.RefundedISO = v.Refund.RefundedAt.Format(pageTime), v.Refund.RefundedAt.Format(time.RFC3339)
	}
	if v.Download != nil {
		d.Expires, d.ExpiresISO = v.Download.ExpiresAt.Format(pageTime), v.Download.ExpiresAt.Format(time.RFC3339)
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(http.StatusOK)
	return pageTemplate.Execute(c.Response(), d)
}

// steps places the job on the progress list: a failed job failed where it
// stood (before or after payment), an abandoned one at the payment.
func steps(v JobView) []progressStep {
	at, failed := len(progressSteps), false
	switch v.Status {
	case jobs.StatusFailed:
		at, failed = 0, true
		if v.PaidAt != nil {
			at = 2
		}
	case jobs.StatusAbandoned:
		at, failed = 0, true
	case jobs.StatusCompleted:
	default:
		for i, st := range progressSteps {
			if st.Status == v.Status {
				at = i
			}
		}
	}
	out := make([]progressStep, len(progressSteps))
	for i, st := range progressSteps {
		state, label := "todo", st.Label
		switch {
		case i < at:
			state = "done"
		case i == at && failed:
			state, label = "failed", failedStepLabels[i]
		case i == at:
			state = "current"
		}
		out[i] = progressStep{Key: st.Status, Label: label, State: state}
	}
	return out
}

// failedStepLabels name the step a job stopped at.
var failedStepLabels = []string{"Not paid", "", "Processing failed", ""}

// refundPending: the job failed after payment and the refund is not recorded yet.
func refundPending(v JobView) bool {
	return v.Status == jobs.StatusFailed && v.PaidAt != nil && v.Refund == nil
}

// watching: the page can still change without anyone acting on it.
func watching(v JobView) bool { return !v.Status.Final() || refundPending(v) }

// pageJob is the job the link names, or errNotFound for a wrong id or token.
func (s *Server) pageJob(c echo.Context) (store.Job, error) {
	return s.jobIf(c, func(j store.Job) bool { return token.Matches(c.QueryParam("token"), j.AccessTokenHash) })
}

// formatCents shows an amount such as "USD 3.84".
func formatCents(cents int64, currency string) string {
	return fmt.Sprintf("%s %d.%02d", strings.ToUpper(currency), cents/100, cents%100)
}
