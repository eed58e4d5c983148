package stripetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// route picks the handler of an endpoint the Recorder keeps state for; nil
// means a plain proxied call.
func (r *Recorder) route(method, path string) handler {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return nil
	}
	parts := strings.Split(rest, "/")
	isSession := len(parts) >= 3 && parts[0] == "checkout" && parts[1] == "sessions" && parts[2] != ""
	switch {
	case method == http.MethodPost && rest == "refunds":
		return r.createRefund
	case method == http.MethodGet && len(parts) == 2 && parts[0] == "payment_intents" && isPI(parts[1]):
		return func(req *http.Request, form url.Values, _ time.Time) answer {
			return r.getPaymentIntent(req, form, parts[1])
		}
	case method == http.MethodPost && rest == "checkout/sessions":
		return r.createSession
	case method == http.MethodGet && isSession && len(parts) == 3:
		return func(req *http.Request, form url.Values, _ time.Time) answer {
			return r.getSession(req, form, parts[2])
		}
	case method == http.MethodPost && isSession && len(parts) == 4 && parts[3] == "expire":
		return func(req *http.Request, form url.Values, _ time.Time) answer {
			return r.expireSession(req, form, parts[2])
		}
	}
	return nil
}

// upstreamFailed reports whether the upstream's answer is to be passed on
// as it is (unreachable, validation error, …), with the usual storing rule.
func upstreamFailed(up *answer) bool {
	if up.forwarded && up.status == http.StatusOK {
		return false
	}
	up.executed = up.forwarded && storable(up.status)
	return true
}

// createRefund handles POST /v1/refunds. stripe-mock validates the request
// first (its 400s are not stored, as Stripe's validation errors are not);
// then, for a PaymentIntent the Recorder tracks (any pi_ it is given, or a
// tracked charge), the refund is decided on the payment's state and
// stripe-mock's fixture is patched to describe it.
func (r *Recorder) createRefund(req *http.Request, form url.Values, at time.Time) answer {
	up := r.forwardBuffered(req)
	if upstreamFailed(&up) {
		return up
	}
	up.executed = true

	r.mu.Lock()
	defer r.mu.Unlock() // no I/O below
	var p *payment
	switch pi, ch := form.Get("payment_intent"), form.Get("charge"); {
	case isPI(pi):
		p = r.paymentLocked(pi)
	case ch != "":
		p = r.paymentByChargeLocked(ch)
	}
	if p == nil {
		return up // nothing the double knows: stripe-mock's fixture
	}

	amount := p.remaining()
	if v := form.Get("amount"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			// Validation: not stored.
			return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "amount",
				"Invalid positive integer", false)
		}
		amount = n
	}
	// Business refusals: the endpoint ran, so Stripe stores them.
	if p.status != piSucceeded {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "", "",
			fmt.Sprintf("This PaymentIntent (%s) does not have a successful charge to refund.", p.id), true)
	}
	if p.remaining() <= 0 {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "",
			fmt.Sprintf("Charge %s has already been refunded.", p.chargeID), true)
	}
	if f, ok := r.refusalLocked(p); ok {
		return stripeError(http.StatusBadRequest, "invalid_request_error", f.code, "", f.text(p.chargeID), true)
	}
	if amount > p.remaining() {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "amount_too_large", "amount",
			fmt.Sprintf("Refund amount (%s) is greater than unrefunded amount on charge (%s)",
				money(amount, p.currency), money(p.remaining(), p.currency)), true)
	}

	obj := decodeObject(up.body)
	id, _ := obj["id"].(string)
	if !strings.HasPrefix(id, "re_") {
		id = newID("re_")
	}
	p.refunds = append(p.refunds, refund{id: id, amount: amount, at: at})
	p.refunded += amount

	obj["id"] = id
	obj["object"] = "refund"
	obj["amount"] = amount
	obj["charge"] = p.chargeID
	obj["currency"] = p.currency
	obj["payment_intent"] = p.id
	obj["status"] = "succeeded"
	obj["created"] = at.Unix()
	obj["metadata"] = formMap(form, "metadata")
	if reason := form.Get("reason"); reason != "" {
		obj["reason"] = reason
	}
	up.setBody(obj)
	return up
}

// getPaymentIntent handles GET /v1/payment_intents/{id}: stripe-mock's
// fixture patched with the payment's state, latest_charge expanded if asked.
func (r *Recorder) getPaymentIntent(req *http.Request, form url.Values, id string) answer {
	up := r.forwardBuffered(req)
	if upstreamFailed(&up) {
		return up
	}
	r.mu.Lock()
	p := *r.paymentLocked(id)
	r.mu.Unlock()

	obj := decodeObject(up.body)
	patchPaymentIntent(obj, p)
	if expandAsked(form, "latest_charge") {
		base, _ := obj["latest_charge"].(map[string]any)
		obj["latest_charge"] = chargeObject(base, p)
	} else {
		obj["latest_charge"] = p.chargeID
	}
	up.setBody(obj)
	return up
}

// createSession handles POST /v1/checkout/sessions: the new session is
// recorded as open, with the amount and currency of its line items (which
// stripe-mock does not reflect).
func (r *Recorder) createSession(req *http.Request, form url.Values, _ time.Time) answer {
	up := r.forwardBuffered(req)
	if upstreamFailed(&up) {
		return up
	}
	up.executed = true
	obj := decodeObject(up.body)
	id, _ := obj["id"].(string)
	if id == "" {
		return up
	}
	amount, currency := lineItemsTotal(form)

	r.mu.Lock()
	s := r.sessionLocked(id)
	if amount > 0 {
		s.amountTotal = amount
	}
	if currency != "" {
		s.currency = currency
	}
	snap := *s
	r.mu.Unlock()

	patchSession(obj, snap, nil, false)
	up.setBody(obj)
	return up
}

// getSession handles GET /v1/checkout/sessions/{id}: for a recorded session
// the fixture is patched with its state; others are stripe-mock's.
func (r *Recorder) getSession(req *http.Request, form url.Values, id string) answer {
	up := r.forwardBuffered(req)
	if upstreamFailed(&up) {
		return up
	}
	r.mu.Lock()
	s, ok := r.st.sessions[id]
	var snap session
	var pay *payment
	if ok {
		snap = *s
		if p, tracked := r.st.payments[s.pi]; tracked {
			cp := *p
			pay = &cp
		}
	}
	r.mu.Unlock()
	if !ok {
		return up
	}
	obj := decodeObject(up.body)
	patchSession(obj, snap, pay, expandAsked(form, "payment_intent"))
	up.setBody(obj)
	return up
}

// expireSession handles POST /v1/checkout/sessions/{id}/expire: an open
// recorded session expires; a complete or expired one is refused as
// Stripe does (payments.ExpireSession turns that into ErrSessionNotOpen).
func (r *Recorder) expireSession(req *http.Request, form url.Values, id string) answer {
	up := r.forwardBuffered(req)
	if upstreamFailed(&up) {
		return up
	}
	up.executed = true
	r.mu.Lock()
	s, ok := r.st.sessions[id]
	if !ok {
		r.mu.Unlock()
		return up
	}
	if s.status != sessionOpen {
		status := s.status
		r.mu.Unlock()
		return stripeError(http.StatusBadRequest, "invalid_request_error", "", "", fmt.Sprintf(
			"Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `%s`.", status), true)
	}
	s.status = sessionExpired
	snap := *s
	r.mu.Unlock()

	obj := decodeObject(up.body)
	patchSession(obj, snap, nil, expandAsked(form, "payment_intent"))
	up.setBody(obj)
	return up
}

// patchPaymentIntent writes p's state into a payment_intent object.
func patchPaymentIntent(obj map[string]any, p payment) {
	obj["id"] = p.id
	obj["object"] = "payment_intent"
	obj["amount"] = p.amount
	obj["currency"] = p.currency
	obj["status"] = p.status
	obj["amount_received"] = int64(0)
	if p.status == piSucceeded {
		obj["amount_received"] = p.amount
		// stripe-mock's fixture carries a cancellation and an error.
		obj["canceled_at"] = nil
		obj["cancellation_reason"] = nil
		obj["last_payment_error"] = nil
	}
}

// chargeObject is p's charge as an expanded latest_charge, built on base
// (stripe-mock's expanded fixture, for the full shape) if there is one.
func chargeObject(base map[string]any, p payment) map[string]any {
	c := base
	if c == nil {
		c = map[string]any{}
	}
	succeeded := p.status == piSucceeded
	c["id"] = p.chargeID
	c["object"] = "charge"
	c["amount"] = p.amount
	c["amount_captured"] = int64(0)
	if succeeded {
		c["amount_captured"] = p.amount
	}
	c["amount_refunded"] = p.refunded
	c["refunded"] = p.amount > 0 && p.refunded >= p.amount
	c["currency"] = p.currency
	c["payment_intent"] = p.id
	c["captured"] = succeeded
	c["paid"] = succeeded
	switch p.status {
	case piSucceeded:
		c["status"] = "succeeded"
	case piProcessing:
		c["status"] = "pending"
	default:
		c["status"] = "failed"
	}
	// Since API 2022-11-15 a charge's refunds come only when expanded; the
	// fixture's would contradict amount_refunded.
	delete(c, "refunds")
	return c
}

// patchSession writes s's state into a checkout.session object. pay is the
// session's payment if tracked; expandPI renders payment_intent as an object.
func patchSession(obj map[string]any, s session, pay *payment, expandPI bool) {
	obj["id"] = s.id
	obj["object"] = "checkout.session"
	obj["status"] = s.status
	obj["payment_status"] = s.paymentStatus
	if s.amountTotal > 0 {
		obj["amount_total"] = s.amountTotal
		obj["amount_subtotal"] = s.amountTotal
	}
	if s.currency != "" {
		obj["currency"] = s.currency
	}
	if s.status != sessionOpen {
		obj["url"] = nil // Stripe drops the hosted page once the session closed
	}
	switch {
	case s.pi == "":
		// On 2023-10-16 Checkout creates the PaymentIntent only on payment.
		obj["payment_intent"] = nil
	case expandPI:
		base, _ := obj["payment_intent"].(map[string]any)
		if base == nil {
			base = map[string]any{}
		}
		p := payment{id: s.pi, status: piSucceeded, amount: s.amountTotal, currency: s.currency}
		if pay != nil {
			p = *pay
		}
		patchPaymentIntent(base, p)
		if p.chargeID != "" {
			base["latest_charge"] = p.chargeID
		} else {
			base["latest_charge"] = nil
		}
		obj["payment_intent"] = base
	default:
		obj["payment_intent"] = s.pi
	}
}

// lineItemsTotal sums line_items[i][price_data][unit_amount] × quantity and
// returns the first item's currency; 0 if an item has no price_data.
func lineItemsTotal(form url.Values) (int64, string) {
	var total int64
	currency := ""
	for i := 0; ; i++ {
		prefix := fmt.Sprintf("line_items[%d]", i)
		unit := form.Get(prefix + "[price_data][unit_amount]")
		qty := form.Get(prefix + "[quantity]")
		if unit == "" && qty == "" && form.Get(prefix+"[price]") == "" {
			return total, currency
		}
		n, err := strconv.ParseInt(unit, 10, 64)
		if err != nil {
			return 0, currency // priced by a Price ID: unknown here
		}
		q := int64(1)
		if qty != "" {
			if q, err = strconv.ParseInt(qty, 10, 64); err != nil {
				return 0, currency
			}
		}
		total += n * q
		if currency == "" {
			currency = strings.ToLower(form.Get(prefix + "[price_data][currency]"))
		}
	}
}

// expandAsked reports whether the request asked to expand field
// (expand[]=field or expand[0]=field, as stripe-go sends it).
func expandAsked(form url.Values, field string) bool {
	for k, vs := range form {
		if k != "expand" && !strings.HasPrefix(k, "expand[") {
			continue
		}
		for _, v := range vs {
			if v == field {
				return true
			}
		}
	}
	return false
}

// formMap collects name[key]=value parameters into a map; empty values
// unset a key at Stripe, so they are left out.
func formMap(form url.Values, name string) map[string]string {
	m := map[string]string{}
	for k, vs := range form {
		inner, ok := strings.CutPrefix(k, name+"[")
		if !ok || !strings.HasSuffix(inner, "]") || len(vs) == 0 || vs[0] == "" {
			continue
		}
		m[strings.TrimSuffix(inner, "]")] = vs[0]
	}
	return m
}

// decodeObject parses a JSON object, keeping numbers exact; anything else
// yields an empty object to build on.
func decodeObject(b []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// setBody replaces the answer's body with obj, as JSON.
func (a *answer) setBody(obj map[string]any) {
	b, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		// Only values decoded from JSON or set above: cannot happen.
		panic(fmt.Sprintf("stripetest: encode patched object: %v", err))
	}
	a.body = append(b, '\n')
	if a.header == nil {
		a.header = http.Header{}
	}
	a.header.Set("Content-Type", "application/json")
}

// money formats cents the way Stripe's messages do ($4.99, or 4.99 eur).
func money(cents int64, currency string) string {
	if currency == "usd" {
		return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
	}
	return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, currency)
}
