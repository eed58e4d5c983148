// Package paysim simulates the customer's side of Stripe Checkout for local
// runs and tests: it sends the API the signed webhook event Stripe would
// send when the customer pays (or when the session expires).
package paysim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"hires/internal/payments"
)

// Options say where the API is and which secrets it uses.
type Options struct {
	APIURL        string // e.g. http://127.0.0.1:8080
	AdminToken    string // to read the job's Checkout Session
	WebhookSecret string // STRIPE_WEBHOOK_SECRET, to sign the event
	Email         string // the email the customer types at Checkout
	HTTPClient    *http.Client
}

// Result is what was sent and how the API answered.
type Result struct {
	EventID string
	Session payments.Session // the session as the event described it
	Status  int
	Body    string
}

// Pay sends checkout.session.completed, paid, for the job's session.
func Pay(ctx context.Context, o Options, jobID string) (Result, error) {
	s, err := PaidSession(ctx, o, jobID)
	if err != nil {
		return Result{}, err
	}
	return Send(ctx, o, payments.NewEventID(), "checkout.session.completed", s)
}

// PaidSession is the job's Checkout Session as Stripe reports it once the
// customer paid (with a new PaymentIntent).
func PaidSession(ctx context.Context, o Options, jobID string) (payments.Session, error) {
	s, err := session(ctx, o, jobID)
	if err != nil {
		return s, err
	}
	s.Status, s.PaymentStatus, s.URL = "complete", "paid", ""
	s.PaymentIntentID = payments.NewPaymentIntentID()
	if o.Email != "" {
		s.CustomerEmail = o.Email
	}
	return s, nil
}

// PayByBank sends checkout.session.completed with payment_status unpaid:
// the customer chose a delayed method (a bank debit) that Stripe settles
// later with BankResult.
func PayByBank(ctx context.Context, o Options, jobID string) (Result, error) {
	s, err := PaidSession(ctx, o, jobID)
	if err != nil {
		return Result{}, err
	}
	s.PaymentStatus = "unpaid"
	return Send(ctx, o, payments.NewEventID(), "checkout.session.completed", s)
}

// BankResult sends Stripe's verdict on a bank debit:
// checkout.session.async_payment_succeeded (paid), or _failed.
func BankResult(ctx context.Context, o Options, jobID string, succeeded bool) (Result, error) {
	s, err := PaidSession(ctx, o, jobID)
	if err != nil {
		return Result{}, err
	}
	typ := "checkout.session.async_payment_succeeded"
	if !succeeded {
		s.PaymentStatus = "unpaid"
		typ = "checkout.session.async_payment_failed"
	}
	return Send(ctx, o, payments.NewEventID(), typ, s)
}

// Expire sends checkout.session.expired for the job's session.
func Expire(ctx context.Context, o Options, jobID string) (Result, error) {
	s, err := session(ctx, o, jobID)
	if err != nil {
		return Result{}, err
	}
	s.Status, s.PaymentStatus, s.URL = "expired", "unpaid", ""
	return Send(ctx, o, payments.NewEventID(), "checkout.session.expired", s)
}

// Send signs and posts one event about session s.
func Send(ctx context.Context, o Options, eventID, eventType string, s payments.Session) (Result, error) {
	now := time.Now()
	payload, err := payments.CheckoutEventPayload(eventID, eventType, s, now)
	if err != nil {
		return Result{}, err
	}
	res, err := post(ctx, o, eventID, payload, now)
	res.Session = s
	return res, err
}

// post signs and delivers one event.
func post(ctx context.Context, o Options, eventID string, payload []byte, now time.Time) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.APIURL+"/v1/webhooks/stripe", bytes.NewReader(payload))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", payments.SignPayload(payload, o.WebhookSecret, now))
	resp, err := client(o).Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("paysim: post event: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return Result{EventID: eventID, Status: resp.StatusCode, Body: string(body)}, nil
}

// ConfirmRefund sends charge.refunded for the job's payment, as Stripe does
// once a refund went through.
func ConfirmRefund(ctx context.Context, o Options, jobID string) (Result, error) {
	j, err := job(ctx, o, jobID)
	if err != nil {
		return Result{}, err
	}
	if j.PaymentIntentID == nil || j.AmountPaidCents == nil {
		return Result{}, fmt.Errorf("paysim: job %s has no payment", jobID)
	}
	ch := payments.Charge{ID: payments.NewChargeID(), PaymentIntentID: *j.PaymentIntentID,
		AmountCents: *j.AmountPaidCents, AmountRefundedCents: *j.AmountPaidCents, Currency: j.Price.Currency,
		Refunded: true, JobID: j.ID}
	eventID := payments.NewEventID()
	now := time.Now()
	payload, err := payments.ChargeRefundedEventPayload(eventID, ch, now)
	if err != nil {
		return Result{}, err
	}
	return post(ctx, o, eventID, payload, now)
}

// adminJob is the part of the admin view the simulator needs.
type adminJob struct {
	ID                string  `json:"id"`
	PaymentIntentID   *string `json:"payment_intent_id"`
	AmountPaidCents   *int64  `json:"amount_paid_cents"`
	CheckoutSessionID *string `json:"checkout_session_id"`
	Email             *string `json:"email"`
	Price             struct {
		Currency    string `json:"currency"`
		AmountCents int64  `json:"amount_cents"`
	} `json:"price"`
}

// job reads the job through the admin API.
func job(ctx context.Context, o Options, jobID string) (adminJob, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.APIURL+"/v1/admin/jobs/"+jobID, nil)
	if err != nil {
		return adminJob{}, err
	}
	req.Header.Set("Authorization", "Bearer "+o.AdminToken)
	resp, err := client(o).Do(req)
	if err != nil {
		return adminJob{}, fmt.Errorf("paysim: read job: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return adminJob{}, fmt.Errorf("paysim: read job %s: HTTP %d", jobID, resp.StatusCode)
	}
	var j adminJob
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return adminJob{}, fmt.Errorf("paysim: read job: %w", err)
	}
	return j, nil
}

// session rebuilds the job's Checkout Session as Stripe would report it.
func session(ctx context.Context, o Options, jobID string) (payments.Session, error) {
	j, err := job(ctx, o, jobID)
	if err != nil {
		return payments.Session{}, err
	}
	if j.CheckoutSessionID == nil {
		return payments.Session{}, fmt.Errorf("paysim: job %s has no Checkout Session yet", jobID)
	}
	s := payments.Session{
		ID: *j.CheckoutSessionID, JobID: j.ID, ClientReferenceID: j.ID,
		AmountTotal: j.Price.AmountCents, Currency: j.Price.Currency,
		ExpiresAt: time.Now().Add(time.Hour),
	}
	if j.Email != nil {
		s.CustomerEmail = *j.Email
	}
	if s.CustomerEmail == "" {
		s.CustomerEmail = "customer@example.com" // Checkout always collects one
	}
	return s, nil
}

func client(o Options) *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}
