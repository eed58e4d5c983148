package stripetest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Payment-intent statuses the double uses.
const (
	piSucceeded  = "succeeded"
	piProcessing = "processing"              // a delayed method not settled yet
	piFailed     = "requires_payment_method" // a delayed method that failed
)

// Checkout Session statuses and payment statuses.
const (
	sessionOpen     = "open"
	sessionComplete = "complete"
	sessionExpired  = "expired"
	paymentPaid     = "paid"
	paymentUnpaid   = "unpaid"
)

const (
	defaultAmountCents = 1000
	defaultCurrency    = "usd"
)

// state is what the Recorder remembers besides calls and keys; guarded by
// Recorder.mu.
type state struct {
	advance       time.Duration // added to the real clock
	defaultAmount int64
	payments      map[string]*payment // by PaymentIntent ID
	sessions      map[string]*session // by Checkout Session ID
	refusals      map[string]refusal  // by PaymentIntent ID
	refuseAll     *refusal
}

func newState() state {
	st := state{defaultAmount: defaultAmountCents}
	st.reset()
	return st
}

// reset forgets payments, sessions and refusals, but not the clock nor the
// default amount.
func (st *state) reset() {
	st.payments = map[string]*payment{}
	st.sessions = map[string]*session{}
	st.refusals = map[string]refusal{}
	st.refuseAll = nil
}

// payment is a PaymentIntent with its one charge.
type payment struct {
	id       string
	status   string // piSucceeded, piProcessing, piFailed
	amount   int64
	currency string
	chargeID string
	refunded int64 // amount_refunded, over all refunds
	refunds  []refund
}

func (p *payment) remaining() int64 { return p.amount - p.refunded }

func (p *payment) charge() Charge {
	return Charge{
		ID: p.chargeID, PaymentIntentID: p.id, AmountCents: p.amount, AmountRefundedCents: p.refunded,
		Currency: p.currency, Refunded: p.amount > 0 && p.refunded >= p.amount,
	}
}

// refund is one refund of a payment.
type refund struct {
	id     string
	amount int64
	at     time.Time
	byHand bool // made in the Dashboard, not through the API
}

// refusal is a programmed refund refusal.
type refusal struct{ code, message string }

// session is a Checkout Session's state.
type session struct {
	id            string
	status        string // sessionOpen, sessionComplete, sessionExpired
	paymentStatus string // paymentPaid, paymentUnpaid
	pi            string // "" until completed
	amountTotal   int64
	currency      string
}

// Charge is a payment's charge as Stripe reports it in a charge.refunded
// event. Its fields are those of payments.Charge of the same names, so
//
//	payments.Charge{ID: c.ID, PaymentIntentID: c.PaymentIntentID,
//		AmountCents: c.AmountCents, AmountRefundedCents: c.AmountRefundedCents,
//		Currency: c.Currency, Refunded: c.Refunded, JobID: jobID}
//
// is the argument payments.ChargeRefundedEventPayload (or
// paysim.SendChargeRefunded) needs.
type Charge struct {
	ID                  string
	PaymentIntentID     string
	AmountCents         int64
	AmountRefundedCents int64 // over all refunds of the charge
	Currency            string
	Refunded            bool // true once fully refunded
}

// RegisterPayment makes pi a succeeded PaymentIntent of amountCents in
// currency ("" is usd) with a new charge, so that refunds and reads of it
// follow its state. Registering a tracked PI again changes its amount and
// currency and marks it succeeded, keeping its refunds. It panics on an ID
// without the pi_ prefix or a non-positive amount: a bug in the calling test.
func (r *Recorder) RegisterPayment(pi string, amountCents int64, currency string) {
	mustPI("RegisterPayment", pi)
	if amountCents <= 0 {
		panic(fmt.Sprintf("stripetest: RegisterPayment(%s): amount %d is not positive", pi, amountCents))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.paymentLocked(pi)
	p.amount, p.status = amountCents, piSucceeded
	if currency != "" {
		p.currency = strings.ToLower(currency)
	}
}

// SetDefaultAmount sets the amount (in usd cents) of PaymentIntents the
// Recorder first sees in a request, without RegisterPayment; the default is
// 1000. It panics if cents is not positive.
func (r *Recorder) SetDefaultAmount(cents int64) {
	if cents <= 0 {
		panic(fmt.Sprintf("stripetest: SetDefaultAmount(%d): not positive", cents))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.defaultAmount = cents
}

// paymentLocked returns the tracked PaymentIntent pi, registering an
// untracked one as succeeded with the default amount.
func (r *Recorder) paymentLocked(pi string) *payment {
	p, ok := r.st.payments[pi]
	if !ok {
		p = &payment{id: pi, status: piSucceeded, amount: r.st.defaultAmount, currency: defaultCurrency, chargeID: newID("ch_")}
		r.st.payments[pi] = p
	}
	return p
}

// paymentByChargeLocked finds a tracked payment by its charge ID.
func (r *Recorder) paymentByChargeLocked(ch string) *payment {
	for _, p := range r.st.payments {
		if p.chargeID == ch {
			return p
		}
	}
	return nil
}

// Payment returns the charge of the tracked PaymentIntent pi.
func (r *Recorder) Payment(pi string) (Charge, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.st.payments[pi]
	if !ok {
		return Charge{}, false
	}
	return p.charge(), true
}

// RefuseRefunds makes every new refund of pi fail, until AllowRefunds(pi),
// with 400 invalid_request_error, code (e.g. charge_disputed,
// balance_insufficient) and message ("" for a Stripe-like one). Like
// Stripe's, the refusal is stored under the request's idempotency key and
// replayed for 24 h even once refunds are allowed again.
func (r *Recorder) RefuseRefunds(pi, code, message string) {
	mustPI("RefuseRefunds", pi)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.refusals[pi] = refusal{code: code, message: message}
}

// AllowRefunds lifts RefuseRefunds(pi).
func (r *Recorder) AllowRefunds(pi string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.st.refusals, pi)
}

// RefuseAllRefunds makes every new refund of any PaymentIntent fail as
// RefuseRefunds does, until AllowAllRefunds. A refusal set for one PI by
// RefuseRefunds takes precedence.
func (r *Recorder) RefuseAllRefunds(code, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.refuseAll = &refusal{code: code, message: message}
}

// AllowAllRefunds lifts RefuseAllRefunds and every RefuseRefunds.
func (r *Recorder) AllowAllRefunds() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.refuseAll = nil
	r.st.refusals = map[string]refusal{}
}

// refusalLocked returns the refusal that applies to p, if any.
func (r *Recorder) refusalLocked(p *payment) (refusal, bool) {
	if f, ok := r.st.refusals[p.id]; ok {
		return f, true
	}
	if r.st.refuseAll != nil {
		return *r.st.refuseAll, true
	}
	return refusal{}, false
}

// refusalMessages are Stripe-like messages for refusals programmed without one.
var refusalMessages = map[string]string{
	"charge_disputed":           "Charge %s has been charged back; cannot issue a refund.",
	"charge_expired_for_refund": "Charge %s is too old to be refunded.",
	"balance_insufficient":      "You have insufficient funds in your Stripe account to refund charge %s.",
	"refund_disputed_payment":   "Charge %s is disputed; you cannot refund it.",
}

func (f refusal) text(chargeID string) string {
	switch {
	case f.message != "":
		return f.message
	case refusalMessages[f.code] != "":
		return fmt.Sprintf(refusalMessages[f.code], chargeID)
	}
	return fmt.Sprintf("Charge %s cannot be refunded.", chargeID)
}

// ErrNothingToRefund is returned by RefundByHand when the charge is already
// fully refunded (the Dashboard would not offer a refund).
var ErrNothingToRefund = errors.New("stripetest: nothing left to refund")

// RefundByHand refunds what is left of pi's charge as someone would in the
// Dashboard: no API call is recorded as ours and RefundsCreated does not
// count it, but the charge is then fully refunded, so a later refund
// through the API answers charge_already_refunded. An untracked pi is
// registered first (default amount). It returns the charge as the
// charge.refunded event Stripe would send describes it.
func (r *Recorder) RefundByHand(pi string) (Charge, error) {
	if !isPI(pi) {
		return Charge{}, fmt.Errorf("stripetest: refund by hand: %q is not a pi_ ID", pi)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.paymentLocked(pi)
	switch {
	case p.status != piSucceeded:
		return Charge{}, fmt.Errorf("stripetest: refund by hand of %s: payment is %s, not succeeded", pi, p.status)
	case p.remaining() <= 0:
		return Charge{}, fmt.Errorf("stripetest: refund by hand of %s: charge %s: %w", pi, p.chargeID, ErrNothingToRefund)
	}
	p.refunds = append(p.refunds, refund{id: newID("re_"), amount: p.remaining(), at: r.nowLocked(), byHand: true})
	p.refunded = p.amount
	return p.charge(), nil
}

// RefundsCreated counts the refunds of pi the Recorder created through the
// API: replays, refusals and RefundByHand are not counted.
func (r *Recorder) RefundsCreated(pi string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.st.payments[pi]
	if !ok {
		return 0
	}
	n := 0
	for _, f := range p.refunds {
		if !f.byHand {
			n++
		}
	}
	return n
}

// RefundCalls counts the POST /v1/refunds requests for pi (by payment_intent,
// or by its charge) that arrived at or after since on the Recorder's clock,
// whatever their answer: replays, refusals and errors included.
func (r *Recorder) RefundCalls(pi string, since time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	chargeID := ""
	if p, ok := r.st.payments[pi]; ok {
		chargeID = p.chargeID
	}
	n := 0
	for _, c := range r.calls {
		if c.Method != http.MethodPost || c.Path != "/v1/refunds" || c.At.Before(since) {
			continue
		}
		if c.Form.Get("payment_intent") == pi || (chargeID != "" && c.Form.Get("charge") == chargeID) {
			n++
		}
	}
	return n
}

// AmountRefunded is pi's charge's amount_refunded (0 if untracked).
func (r *Recorder) AmountRefunded(pi string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.st.payments[pi]; ok {
		return p.refunded
	}
	return 0
}

// CompleteSession records that the customer completed Checkout Session
// sessionID, paying with PaymentIntent pi (required) of amountCents (0: the
// amount the session was created with, else the default amount). paid=true
// is a card: payment_status paid and pi succeeded. paid=false is a delayed
// method (bank debit …): payment_status unpaid and pi processing, until
// SettleSession. Reads and expiry of the session then follow this state.
// It panics on an empty session ID or a pi without the pi_ prefix.
func (r *Recorder) CompleteSession(sessionID string, paid bool, pi string, amountCents int64) {
	if sessionID == "" {
		panic("stripetest: CompleteSession: empty session ID")
	}
	mustPI("CompleteSession", pi)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sessionLocked(sessionID)
	if amountCents <= 0 {
		amountCents = s.amountTotal
	}
	if amountCents <= 0 {
		amountCents = r.st.defaultAmount
	}
	s.status, s.pi, s.amountTotal = sessionComplete, pi, amountCents

	_, known := r.st.payments[pi]
	p := r.paymentLocked(pi)
	p.amount = amountCents
	if !known {
		p.currency = s.currency
	}
	if paid {
		s.paymentStatus, p.status = paymentPaid, piSucceeded
	} else {
		s.paymentStatus, p.status = paymentUnpaid, piProcessing
	}
}

// SettleSession settles the delayed payment of a session completed unpaid:
// succeeded=true makes it paid (checkout.session.async_payment_succeeded)
// and its PaymentIntent succeeded; false leaves it unpaid with the
// PaymentIntent failed (async_payment_failed). A session already paid is
// left alone. It panics if the session was never completed.
func (r *Recorder) SettleSession(sessionID string, succeeded bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.st.sessions[sessionID]
	if !ok || s.status != sessionComplete {
		panic(fmt.Sprintf("stripetest: SettleSession(%s): the session was not completed (CompleteSession)", sessionID))
	}
	if s.paymentStatus == paymentPaid {
		return
	}
	p := r.paymentLocked(s.pi)
	if succeeded {
		s.paymentStatus, p.status = paymentPaid, piSucceeded
	} else {
		p.status = piFailed
	}
}

// sessionLocked returns the recorded session id, recording an unknown one
// as open.
func (r *Recorder) sessionLocked(id string) *session {
	s, ok := r.st.sessions[id]
	if !ok {
		s = &session{id: id, status: sessionOpen, paymentStatus: paymentUnpaid, currency: defaultCurrency}
		r.st.sessions[id] = s
	}
	return s
}

func isPI(id string) bool { return strings.HasPrefix(id, "pi_") && len(id) > len("pi_") }

func mustPI(fn, id string) {
	if !isPI(id) {
		panic(fmt.Sprintf("stripetest: %s: %q is not a pi_ ID", fn, id))
	}
}
