package api

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"hires/internal/jobs"
	"hires/internal/store"
	"hires/internal/token"
)

//go:embed templates/*.html
var templates embed.FS

var pageTemplate = template.Must(template.ParseFS(templates, "templates/job.html"))

// pageData is what the job page shows.
type pageData struct {
	View     JobView
	Headline string
	Detail   string
	Refresh  bool
	Price    string
	Refunded string
	Expires  string
}

var headlines = map[jobs.Status][2]string{
	jobs.StatusAwaitingPayment: {"Waiting for your payment", "Complete the payment to start upscaling."},
	jobs.StatusPending:         {"Payment received", "Your image is about to be upscaled."},
	jobs.StatusProcessing:      {"Upscaling your image", "This usually takes a minute or two."},
	jobs.StatusCompleted:       {"Your image is ready", "Download it before the link expires."},
	jobs.StatusFailed:          {"Something went wrong", "We could not upscale your image."},
	jobs.StatusAbandoned:       {"This order was not paid", "The payment window has closed."},
}

// jobPage is where Stripe Checkout returns the customer: the job's status,
// refreshed until it settles, and the download once ready. The access
// token rides in the query string, so the page forbids referrers and caching.
func (s *Server) jobPage(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	job, ok := s.pageJob(c)
	if !ok {
		return c.HTML(http.StatusNotFound, "<!doctype html><title>Not found</title><p>This order does not exist or the link is incomplete.</p>")
	}
	v := s.customerView(job)
	d := pageData{View: v, Headline: headlines[v.Status][0], Detail: headlines[v.Status][1],
		Refresh: !v.Status.Final(), Price: formatCents(v.Price.AmountCents, v.Price.Currency)}
	if v.Refund != nil {
		d.Refunded = formatCents(v.Refund.AmountCents, v.Refund.Currency)
	}
	if v.Download != nil {
		d.Expires = v.Download.ExpiresAt.Format("Mon 2 Jan 2006 15:04 MST")
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(http.StatusOK)
	return pageTemplate.Execute(c.Response(), d)
}

func (s *Server) pageJob(c echo.Context) (store.Job, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return store.Job{}, false
	}
	job, err := s.store.Get(c.Request().Context(), id.String())
	if err != nil || !token.Matches(c.QueryParam("token"), job.AccessTokenHash) {
		return store.Job{}, false
	}
	return job, true
}

// formatCents shows an amount such as "USD 3.84".
func formatCents(cents int64, currency string) string {
	return fmt.Sprintf("%s %d.%02d", strings.ToUpper(currency), cents/100, cents%100)
}
