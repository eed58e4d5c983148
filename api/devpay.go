package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/paysim"
)

// devPay serves POST /dev/jobs/{id}/pay?token=<access token>, the job page's
// "Pay (simulated)" button. It exists only when DEV_PAYMENTS is on (local
// runs and tests, never production): it does what Stripe does when the
// customer pays, sending this API's webhook a signed
// checkout.session.completed for the job's Checkout Session. A wrong id or
// token is a plain 404, as on the page.
//
// The event and payment intent IDs are derived from the session, so a
// second click sends the same event, which the webhook drops as a duplicate.
// A script asking for JSON gets JSON; a plain form post is sent back to the page.
func (s *Server) devPay(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	job, err := s.pageJob(c)
	if err != nil {
		return err
	}
	if job.Status != jobs.StatusAwaitingPayment || job.CheckoutSessionID == nil {
		return fail(http.StatusConflict, "not_awaiting_payment", "this order is not waiting for a payment")
	}
	sessionID := *job.CheckoutSessionID
	sum := sha256.Sum256([]byte("hires dev payment\x00" + sessionID))
	ids := hex.EncodeToString(sum[:])
	email := deref(job.Email)
	if email == "" {
		email = "customer@example.com" // Checkout always collects one
	}
	sess := payments.Session{
		ID: sessionID, Status: "complete", PaymentStatus: "paid", PaymentIntentID: "pi_dev" + ids[:24],
		AmountTotal: job.PriceCents, Currency: job.Currency, CustomerEmail: email,
		JobID: job.ID, ClientReferenceID: job.ID, ExpiresAt: s.now().Add(time.Hour),
	}
	if job.CheckoutExpiresAt != nil {
		sess.ExpiresAt = *job.CheckoutExpiresAt
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
	defer cancel()
	res, err := paysim.Send(ctx, paysim.Options{APIURL: s.cfg.PublicBaseURL, WebhookSecret: s.cfg.StripeWebhookSecret},
		"evt_dev"+ids[24:48], jobs.EventCheckoutCompleted, sess)
	if err != nil {
		return fmt.Errorf("dev payment for job %s: %w", job.ID, err)
	}
	if res.Status != http.StatusOK {
		s.log.WarnContext(c.Request().Context(), "dev payment: the webhook refused the event",
			"job_id", job.ID, "status", res.Status, "body", res.Body)
		return fail(http.StatusBadGateway, "webhook_refused", fmt.Sprintf("the Stripe webhook answered HTTP %d", res.Status))
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), echo.MIMEApplicationJSON) {
		return c.JSON(http.StatusOK, map[string]string{"status": "sent", "event_id": res.EventID})
	}
	return c.Redirect(http.StatusSeeOther, "/jobs/"+job.ID+"?token="+url.QueryEscape(c.QueryParam("token")))
}
