package stripetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"

	"hires/internal/payments"
	"hires/internal/paysim"
)

// stripeLike is an upstream that answers like stripe-mock: fixtures of the
// right shape whose amounts and states say nothing, fresh IDs for created
// objects, and a 400 validation error for reason=bogus.
type stripeLike struct{ n atomic.Int64 }

func (s *stripeLike) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	n := s.n.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", fmt.Sprintf("req_up%d", n))
	expanded := func(field string) bool {
		for k, vs := range r.Form {
			if strings.HasPrefix(k, "expand") && len(vs) > 0 && vs[0] == field {
				return true
			}
		}
		return false
	}
	path := r.URL.Path
	switch {
	case r.Form.Get("reason") == "bogus":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"Request validation error: reason"}}`)
	case r.Method == http.MethodPost && path == "/v1/refunds":
		fmt.Fprintf(w, `{"id":"re_up%d","object":"refund","amount":100,"charge":"ch_fixture","created":1234567890,"currency":"usd","metadata":{},"payment_intent":%q,"reason":null,"status":"succeeded"}`,
			n, r.Form.Get("payment_intent"))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		charge := `"ch_fixture"`
		if expanded("latest_charge") {
			charge = `{"id":"ch_fixture","object":"charge","amount":100,"amount_refunded":0,"refunded":false,"captured":false,"currency":"usd","payment_intent":null,"refunds":{"object":"list","data":[{"id":"re_fixture","object":"refund","amount":100}]}}`
		}
		fmt.Fprintf(w, `{"id":%q,"object":"payment_intent","amount":1099,"amount_received":0,"currency":"usd","status":"requires_payment_method","canceled_at":1234567890,"last_payment_error":{"type":"idempotency_error"},"latest_charge":%s}`,
			strings.TrimPrefix(path, "/v1/payment_intents/"), charge)
	case r.Method == http.MethodPost && path == "/v1/checkout/sessions":
		fmt.Fprintf(w, `{"id":"cs_test_up%d","object":"checkout.session","amount_total":null,"currency":null,"status":"open","payment_status":"unpaid","payment_intent":"pi_fixture","url":"https://checkout.stripe.com/c/pay/cs_test_up%d"}`, n, n)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/expire"):
		fmt.Fprintf(w, `{"id":"cs_test_other%d","object":"checkout.session","status":"open","payment_status":"unpaid","payment_intent":"pi_fixture","url":"https://checkout.stripe.com/x"}`, n)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/checkout/sessions/"):
		pi := `"pi_fixture"`
		if expanded("payment_intent") {
			pi = `{"id":"pi_fixture","object":"payment_intent","amount":1099,"currency":"usd","status":"requires_payment_method"}`
		}
		fmt.Fprintf(w, `{"id":%q,"object":"checkout.session","amount_total":null,"currency":"usd","status":"open","payment_status":"unpaid","payment_intent":%s,"url":"https://checkout.stripe.com/x","client_reference_id":"job_fixture"}`,
			strings.TrimPrefix(path, "/v1/checkout/sessions/"), pi)
	default:
		fmt.Fprintf(w, `{"id":"obj_%d"}`, n)
	}
}

func newStateful(t *testing.T) (*Recorder, *stripeLike) {
	t.Helper()
	up := &stripeLike{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	rec := NewRecorder(srv.URL)
	rec.Start()
	t.Cleanup(rec.Close)
	return rec, up
}

// payClient is the service's own Stripe client, pointed at rec.
func payClient(t *testing.T, rec *Recorder) *payments.Client {
	t.Helper()
	c, err := payments.New("sk_test_123", rec.URL())
	require.NoError(t, err)
	return c
}

// reply is a decoded answer of the Recorder.
type reply struct {
	status   int
	replayed bool
	obj      map[string]any
	errType  string
	errCode  string
	errMsg   string
}

func (r reply) str(k string) string { s, _ := r.obj[k].(string); return s }

func (r reply) num(k string) int64 {
	f, _ := r.obj[k].(float64)
	return int64(f)
}

func send(t *testing.T, rec *Recorder, method, path, key, form string) reply {
	t.Helper()
	target := rec.URL() + path
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form)
	} else if form != "" {
		target += "?" + form
	}
	req, err := http.NewRequest(method, target, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var obj map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&obj))
	out := reply{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true", obj: obj}
	if e, ok := obj["error"].(map[string]any); ok {
		out.errType, _ = e["type"].(string)
		out.errCode, _ = e["code"].(string)
		out.errMsg, _ = e["message"].(string)
	}
	return out
}

func refundForm(pi, extra string) string {
	f := "payment_intent=" + pi + "&reason=requested_by_customer&metadata[job_id]=job_1&metadata[reason]=upscale_failed"
	if extra != "" {
		f += "&" + extra
	}
	return f
}

func TestClock(t *testing.T) {
	rec, _ := newStateful(t)
	assert.WithinDuration(t, time.Now(), rec.Now(), time.Second)
	rec.Advance(2 * time.Hour)
	rec.Advance(30 * time.Minute)
	assert.WithinDuration(t, time.Now().Add(150*time.Minute), rec.Now(), time.Second)
	send(t, rec, "GET", "/v1/things", "", "")
	assert.WithinDuration(t, time.Now().Add(150*time.Minute), rec.Calls()[0].At, time.Second, "calls are timed on the Recorder's clock")
	assert.Panics(t, func() { rec.Advance(-time.Second) })
	rec.Reset()
	assert.WithinDuration(t, time.Now().Add(150*time.Minute), rec.Now(), time.Second, "Reset keeps the clock")
}

// A stored answer lives 24 h from the key's first use (replays do not
// extend it); after that the key is new, even with other parameters.
func TestIdempotencyExpiry(t *testing.T) {
	rec, _ := newStateful(t)
	steps := []struct {
		name         string
		advance      time.Duration
		form         string
		wantStatus   int
		wantID       string
		wantErr      string
		wantReplayed bool
	}{
		{"first use", 0, "a=1", 200, "obj_1", "", false},
		{"replayed within 24h", 23*time.Hour + 59*time.Minute, "a=1", 200, "obj_1", "", true},
		{"other params still refused", 0, "a=2", 400, "", "idempotency_error", false},
		{"fresh at 24h, other params allowed", time.Minute, "a=2", 200, "obj_2", "", false},
		{"the new first use now binds the key", 0, "a=1", 400, "", "idempotency_error", false},
		{"and replays", 12 * time.Hour, "a=2", 200, "obj_2", "", true},
	}
	for _, s := range steps {
		rec.Advance(s.advance)
		got := send(t, rec, "POST", "/v1/things", "k", s.form)
		assert.Equal(t, s.wantStatus, got.status, s.name)
		assert.Equal(t, s.wantID, got.str("id"), s.name)
		assert.Equal(t, s.wantErr, got.errType, s.name)
		assert.Equal(t, s.wantReplayed, got.replayed, s.name)
	}
	assert.Equal(t, 2, rec.Count("POST", "/v1/things"))

	// A stored refusal expires too: a day later the same key is decided anew.
	rec.RegisterPayment("pi_exp", 500, "usd")
	rec.RefuseRefunds("pi_exp", "charge_disputed", "")
	got := send(t, rec, "POST", "/v1/refunds", "refund:exp", refundForm("pi_exp", ""))
	assert.Equal(t, "charge_disputed", got.errCode)
	rec.AllowRefunds("pi_exp")
	assert.True(t, send(t, rec, "POST", "/v1/refunds", "refund:exp", refundForm("pi_exp", "")).replayed)
	rec.Advance(24 * time.Hour)
	got = send(t, rec, "POST", "/v1/refunds", "refund:exp", refundForm("pi_exp", ""))
	assert.Equal(t, 200, got.status)
	assert.False(t, got.replayed)
	assert.Equal(t, int64(500), got.num("amount"))
}

// The refund rules, step by step on one Recorder.
func TestRefundRules(t *testing.T) {
	rec, _ := newStateful(t)
	rec.RegisterPayment("pi_A", 499, "usd")
	rec.RegisterPayment("pi_B", 1000, "eur")
	rec.RegisterPayment("pi_C", 1000, "")
	rec.RegisterPayment("pi_H", 800, "usd")
	rec.SetDefaultAmount(2500)
	rec.Advance(time.Hour) // created must follow the Recorder's clock, not the fixture's
	start := rec.Now()
	chA, ok := rec.Payment("pi_A")
	require.True(t, ok)
	require.True(t, strings.HasPrefix(chA.ID, "ch_"), chA.ID)

	type step struct {
		name         string
		before       func()
		key, form    string
		wantStatus   int
		wantCode     string
		wantMsg      string
		wantAmount   int64 // of a 200
		wantReplayed bool
		wantForward  bool
	}
	steps := []step{
		{name: "full refund", key: "refund:a", form: refundForm("pi_A", ""),
			wantStatus: 200, wantAmount: 499, wantForward: true},
		{name: "retry replays it", key: "refund:a", form: refundForm("pi_A", ""),
			wantStatus: 200, wantAmount: 499, wantReplayed: true},
		{name: "a new key finds it refunded", key: "refund:a:1", form: refundForm("pi_A", ""),
			wantStatus: 400, wantCode: "charge_already_refunded", wantMsg: "Charge " + chA.ID + " has already been refunded."},
		{name: "which is stored", key: "refund:a:1", form: refundForm("pi_A", ""),
			wantStatus: 400, wantCode: "charge_already_refunded", wantReplayed: true},
		{name: "refused", before: func() { rec.RefuseRefunds("pi_B", "charge_disputed", "") }, key: "refund:b", form: refundForm("pi_B", ""),
			wantStatus: 400, wantCode: "charge_disputed", wantMsg: "has been charged back"},
		{name: "refusal replayed after it is lifted", before: func() { rec.AllowRefunds("pi_B") }, key: "refund:b", form: refundForm("pi_B", ""),
			wantStatus: 400, wantCode: "charge_disputed", wantReplayed: true},
		{name: "a new key refunds once lifted", key: "refund:b:1", form: refundForm("pi_B", ""),
			wantStatus: 200, wantAmount: 1000, wantForward: true},
		{name: "custom refusal message", before: func() { rec.RefuseRefunds("pi_C", "balance_insufficient", "Not enough money.") }, key: "refund:c0", form: refundForm("pi_C", ""),
			wantStatus: 400, wantCode: "balance_insufficient", wantMsg: "Not enough money."},
		{name: "partial refund", before: func() { rec.AllowRefunds("pi_C") }, key: "refund:c1", form: refundForm("pi_C", "amount=300"),
			wantStatus: 200, wantAmount: 300, wantForward: true},
		{name: "too large", key: "refund:c2", form: refundForm("pi_C", "amount=701"),
			wantStatus: 400, wantCode: "amount_too_large", wantMsg: "($7.01) is greater than unrefunded amount on charge ($7.00)"},
		{name: "the rest", key: "refund:c3", form: refundForm("pi_C", ""),
			wantStatus: 200, wantAmount: 700, wantForward: true},
		{name: "validation error not stored", key: "refund:d", form: "payment_intent=pi_D&reason=bogus",
			wantStatus: 400, wantForward: true},
		{name: "retried, forwarded again", key: "refund:d", form: "payment_intent=pi_D&reason=bogus",
			wantStatus: 400, wantForward: true},
		{name: "untracked PI gets the default amount", key: "refund:e", form: refundForm("pi_E", ""),
			wantStatus: 200, wantAmount: 2500, wantForward: true},
		{name: "refuse all", before: func() { rec.RefuseAllRefunds("charge_expired_for_refund", "") }, key: "refund:f", form: refundForm("pi_F", ""),
			wantStatus: 400, wantCode: "charge_expired_for_refund"},
		{name: "per-PI refusal wins", before: func() { rec.RefuseRefunds("pi_G", "refund_disputed_payment", "") }, key: "refund:g", form: refundForm("pi_G", ""),
			wantStatus: 400, wantCode: "refund_disputed_payment"},
		{name: "allow all lifts both", before: rec.AllowAllRefunds, key: "refund:g:1", form: refundForm("pi_G", ""),
			wantStatus: 200, wantAmount: 2500, wantForward: true},
		{name: "by charge ID", key: "refund:h", form: "charge=" + mustCharge(t, rec, "pi_H") + "&amount=100",
			wantStatus: 200, wantAmount: 100, wantForward: true},
		{name: "unsettled delayed payment", before: func() { rec.CompleteSession("cs_delayed", false, "pi_I", 600) }, key: "refund:i", form: refundForm("pi_I", ""),
			wantStatus: 400, wantMsg: "does not have a successful charge to refund"},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		got := send(t, rec, "POST", "/v1/refunds", s.key, s.form)
		assert.Equal(t, s.wantStatus, got.status, s.name)
		assert.Equal(t, s.wantCode, got.errCode, s.name)
		assert.Contains(t, got.errMsg, s.wantMsg, s.name)
		assert.Equal(t, s.wantReplayed, got.replayed, s.name)
		if s.wantStatus == 200 {
			assert.Equal(t, s.wantAmount, got.num("amount"), s.name)
			assert.Equal(t, "succeeded", got.str("status"), s.name)
			assert.True(t, strings.HasPrefix(got.str("id"), "re_"), s.name)
			assert.True(t, strings.HasPrefix(got.str("payment_intent"), "pi_"), s.name)
			ch, ok := rec.Payment(got.str("payment_intent"))
			require.True(t, ok, s.name)
			assert.Equal(t, ch.ID, got.str("charge"), s.name)
			assert.Equal(t, ch.Currency, got.str("currency"), s.name)
		}
		if s.wantStatus == 400 && s.wantCode != "" {
			assert.Equal(t, "invalid_request_error", got.errType, s.name)
		}
		c := rec.Calls()[i]
		assert.Equal(t, s.wantForward, c.Forwarded, s.name)
		assert.Equal(t, s.wantReplayed, c.Replayed, s.name)
		assert.Equal(t, s.wantStatus, c.Status, s.name)
	}

	first := send(t, rec, "POST", "/v1/refunds", "refund:a", refundForm("pi_A", ""))
	assert.Equal(t, map[string]any{"job_id": "job_1", "reason": "upscale_failed"}, first.obj["metadata"], "metadata from the request")
	assert.Equal(t, "requested_by_customer", first.str("reason"))
	assert.GreaterOrEqual(t, first.num("created"), start.Unix(), "created on the Recorder's clock")
	assert.LessOrEqual(t, first.num("created"), rec.Now().Unix())

	for _, tc := range []struct {
		pi       string
		created  int
		refunded int64
	}{
		{"pi_A", 1, 499}, {"pi_B", 1, 1000}, {"pi_C", 2, 1000}, {"pi_D", 0, 0}, {"pi_E", 1, 2500},
		{"pi_F", 0, 0}, {"pi_G", 1, 2500}, {"pi_H", 1, 100}, {"pi_I", 0, 0}, {"pi_never", 0, 0},
	} {
		assert.Equal(t, tc.created, rec.RefundsCreated(tc.pi), tc.pi)
		assert.Equal(t, tc.refunded, rec.AmountRefunded(tc.pi), tc.pi)
	}
	assert.Equal(t, 5, rec.RefundCalls("pi_A", time.Time{}), "replays and refusals count")
	assert.Equal(t, 1, rec.RefundCalls("pi_H", time.Time{}), "by charge")
	assert.Equal(t, 0, rec.RefundCalls("pi_A", rec.Now().Add(time.Second)))
	assert.Equal(t, 9, rec.Count("POST", "/v1/refunds"), "Effects: 7 created refunds and 2 forwarded validation errors")
}

func mustCharge(t *testing.T, rec *Recorder, pi string) string {
	t.Helper()
	ch, ok := rec.Payment(pi)
	require.True(t, ok)
	return ch.ID
}

// The service's client against the double: a refusal is ErrRefundRefused,
// its key stays refused, PaymentState shows nothing refunded, the next
// attempt refunds once, and amount_refunded shows through PaymentState.
func TestRefundAttemptsThroughPaymentsClient(t *testing.T) {
	rec, _ := newStateful(t)
	c := payClient(t, rec)
	ctx := context.Background()
	const pi = "pi_3Attempts"
	rec.RegisterPayment(pi, 499, "usd")
	since := rec.Now()
	p := payments.RefundParams{JobID: "job_1", PaymentIntentID: pi, Reason: "upscale_failed"}

	rec.RefuseRefunds(pi, "charge_disputed", "")
	_, err := c.Refund(ctx, p)
	require.ErrorIs(t, err, payments.ErrRefundRefused)
	assert.False(t, payments.Retryable(err))

	st, err := c.PaymentState(ctx, pi)
	require.NoError(t, err)
	assert.Equal(t, payments.PaymentState{PaymentIntentID: pi, Status: "succeeded", AmountCents: 499,
		ChargeID: mustCharge(t, rec, pi), Currency: "usd"}, st)
	assert.False(t, st.FullyRefunded())

	rec.AllowRefunds(pi)
	_, err = c.Refund(ctx, p)
	require.ErrorIs(t, err, payments.ErrRefundRefused, "the refused key replays its refusal")

	p.Attempt = 1
	r, err := c.Refund(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, int64(499), r.AmountCents)
	assert.Equal(t, "succeeded", r.Status)
	assert.Equal(t, pi, r.PaymentIntentID)
	assert.Equal(t, "job_1", r.JobID)
	again, err := c.Refund(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, r.ID, again.ID, "a retry of the attempt is a replay")

	st, err = c.PaymentState(ctx, pi)
	require.NoError(t, err)
	assert.Equal(t, int64(499), st.AmountRefundedCents)
	assert.True(t, st.Refunded)
	assert.True(t, st.FullyRefunded())

	p.Attempt = 2
	_, err = c.Refund(ctx, p)
	require.ErrorIs(t, err, payments.ErrAlreadyRefunded)
	assert.NotErrorIs(t, err, payments.ErrRefundRefused)

	assert.Equal(t, 1, rec.RefundsCreated(pi))
	assert.Equal(t, int64(499), rec.AmountRefunded(pi))
	assert.Equal(t, 5, rec.RefundCalls(pi, since))
}

// A refund made by hand: no call of ours, the charge fully refunded, the
// API then answers charge_already_refunded, and the returned Charge makes a
// charge.refunded event the service can parse.
func TestRefundByHand(t *testing.T) {
	rec, _ := newStateful(t)
	c := payClient(t, rec)
	ctx := context.Background()

	rec.RegisterPayment("pi_3Hand", 499, "EUR")
	ch, err := rec.RefundByHand("pi_3Hand")
	require.NoError(t, err)
	assert.Equal(t, Charge{ID: mustCharge(t, rec, "pi_3Hand"), PaymentIntentID: "pi_3Hand", AmountCents: 499,
		AmountRefundedCents: 499, Currency: "eur", Refunded: true}, ch)
	assert.Empty(t, rec.Calls(), "no API call")
	assert.Zero(t, rec.RefundsCreated("pi_3Hand"))
	assert.Equal(t, int64(499), rec.AmountRefunded("pi_3Hand"))

	_, err = c.Refund(ctx, payments.RefundParams{JobID: "job_h", PaymentIntentID: "pi_3Hand", Reason: "upscale_failed"})
	require.ErrorIs(t, err, payments.ErrAlreadyRefunded)
	st, err := c.PaymentState(ctx, "pi_3Hand")
	require.NoError(t, err)
	assert.True(t, st.FullyRefunded())

	_, err = rec.RefundByHand("pi_3Hand")
	require.ErrorIs(t, err, ErrNothingToRefund)
	_, err = rec.RefundByHand("ch_3Hand")
	require.Error(t, err)

	// After a partial refund through the API, by hand refunds the rest.
	rec.RegisterPayment("pi_3Part", 1000, "usd")
	got := send(t, rec, "POST", "/v1/refunds", "refund:part", refundForm("pi_3Part", "amount=400"))
	require.Equal(t, 200, got.status)
	ch, err = rec.RefundByHand("pi_3Part")
	require.NoError(t, err)
	assert.Equal(t, int64(1000), ch.AmountRefundedCents)
	assert.True(t, ch.Refunded)
	assert.Equal(t, 1, rec.RefundsCreated("pi_3Part"))

	// The event Stripe would send, through paysim, as the API parses it.
	const secret = "whsec_test"
	var parsed payments.Event
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := payments.ParseEvent(body, r.Header.Get("Stripe-Signature"), secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		parsed = ev
	}))
	defer api.Close()
	res, err := paysim.SendChargeRefunded(ctx, paysim.Options{APIURL: api.URL, WebhookSecret: secret}, payments.Charge{
		ID: ch.ID, PaymentIntentID: ch.PaymentIntentID, AmountCents: ch.AmountCents,
		AmountRefundedCents: ch.AmountRefundedCents, Currency: ch.Currency, Refunded: ch.Refunded, JobID: "job_p",
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	assert.Equal(t, "charge.refunded", parsed.Type)
	require.NotNil(t, parsed.Charge)
	assert.Equal(t, payments.Charge{ID: ch.ID, PaymentIntentID: "pi_3Part", AmountCents: 1000, AmountRefundedCents: 1000,
		Currency: "usd", Refunded: true, JobID: "job_p"}, *parsed.Charge)
}

// GET /v1/payment_intents/{id} describes the tracked payment, and stripe-go
// parses it, with latest_charge expanded or not.
func TestPaymentIntentRead(t *testing.T) {
	rec, _ := newStateful(t)
	rec.RegisterPayment("pi_3Read", 499, "usd")
	got := send(t, rec, "POST", "/v1/refunds", "refund:read", refundForm("pi_3Read", "amount=199"))
	require.Equal(t, 200, got.status)
	sc := stripeClient(rec)
	chID := mustCharge(t, rec, "pi_3Read")

	params := &stripe.PaymentIntentParams{}
	params.AddExpand("latest_charge")
	pi, err := sc.PaymentIntents.Get("pi_3Read", params)
	require.NoError(t, err)
	assert.Equal(t, "pi_3Read", pi.ID)
	assert.Equal(t, int64(499), pi.Amount)
	assert.Equal(t, int64(499), pi.AmountReceived)
	assert.Equal(t, stripe.CurrencyUSD, pi.Currency)
	assert.Equal(t, stripe.PaymentIntentStatusSucceeded, pi.Status)
	assert.Nil(t, pi.LastPaymentError, "the fixture's error is cleared")
	require.NotNil(t, pi.LatestCharge)
	assert.Equal(t, chID, pi.LatestCharge.ID)
	assert.Equal(t, int64(499), pi.LatestCharge.Amount)
	assert.Equal(t, int64(199), pi.LatestCharge.AmountRefunded)
	assert.False(t, pi.LatestCharge.Refunded)
	assert.Equal(t, stripe.CurrencyUSD, pi.LatestCharge.Currency)
	require.NotNil(t, pi.LatestCharge.PaymentIntent)
	assert.Equal(t, "pi_3Read", pi.LatestCharge.PaymentIntent.ID)
	assert.Nil(t, pi.LatestCharge.Refunds, "the fixture's refunds list is dropped")

	pi, err = sc.PaymentIntents.Get("pi_3Read", nil)
	require.NoError(t, err)
	require.NotNil(t, pi.LatestCharge)
	assert.Equal(t, chID, pi.LatestCharge.ID, "not expanded: the ID")
	assert.Zero(t, pi.LatestCharge.Amount)

	// A PI first seen in a read is tracked from then on, with the default amount.
	st, err := payClient(t, rec).PaymentState(context.Background(), "pi_3Unseen")
	require.NoError(t, err)
	assert.Equal(t, int64(1000), st.AmountCents)
	assert.Equal(t, mustCharge(t, rec, "pi_3Unseen"), st.ChargeID)
}

// Checkout Session states: created open, completed paid or unpaid (a
// delayed method), settled, expired; reads and expiry follow them.
func TestSessionStates(t *testing.T) {
	rec, _ := newStateful(t)
	c := payClient(t, rec)
	ctx := context.Background()
	checkout := func(job string) payments.Session {
		t.Helper()
		s, err := c.CreateCheckout(ctx, payments.CheckoutParams{
			JobID: job, AmountCents: 499, Currency: "eur", ProductName: "4x",
			SuccessURL: "https://hires.example/ok", CancelURL: "https://hires.example/cancel",
			ExpiresAt: time.Now().Add(time.Hour),
		})
		require.NoError(t, err)
		return s
	}

	card, delayed, failing, abandoned := checkout("job_card"), checkout("job_delayed"), checkout("job_failing"), checkout("job_abandoned")
	assert.Equal(t, "open", card.Status)
	assert.Equal(t, int64(499), card.AmountTotal, "from the line items")
	assert.Equal(t, "eur", card.Currency)
	assert.Empty(t, card.PaymentIntentID, "no PaymentIntent before payment on 2023-10-16")
	assert.NotEmpty(t, card.URL)

	rec.CompleteSession(card.ID, true, "pi_3Card", 0)
	rec.CompleteSession(delayed.ID, false, "pi_3Delayed", 0)
	rec.CompleteSession(failing.ID, false, "pi_3Failing", 0)
	rec.CompleteSession("cs_test_elsewhere", true, "pi_3Elsewhere", 1500) // never created here

	type want struct {
		status, paymentStatus, pi string
		amount                    int64
		piStatus                  string
	}
	check := func(name, id string, w want) {
		t.Helper()
		s, err := c.GetSession(ctx, id)
		require.NoError(t, err, name)
		assert.Equal(t, id, s.ID, name)
		assert.Equal(t, w.status, s.Status, name)
		assert.Equal(t, w.paymentStatus, s.PaymentStatus, name)
		assert.Equal(t, w.pi, s.PaymentIntentID, name)
		assert.Equal(t, w.amount, s.AmountTotal, name)
		if w.status != "open" {
			assert.Empty(t, s.URL, name)
		}
		if w.pi != "" {
			st, err := c.PaymentState(ctx, w.pi)
			require.NoError(t, err, name)
			assert.Equal(t, w.piStatus, st.Status, name)
			assert.Equal(t, w.amount, st.AmountCents, name)
		}
	}
	check("paid by card", card.ID, want{"complete", "paid", "pi_3Card", 499, "succeeded"})
	check("delayed, unsettled", delayed.ID, want{"complete", "unpaid", "pi_3Delayed", 499, "processing"})
	check("open", abandoned.ID, want{"open", "unpaid", "", 499, ""})
	check("completed elsewhere", "cs_test_elsewhere", want{"complete", "paid", "pi_3Elsewhere", 1500, "succeeded"})

	rec.SettleSession(delayed.ID, true)
	rec.SettleSession(failing.ID, false)
	rec.SettleSession(card.ID, false) // already paid: no change
	check("delayed, settled", delayed.ID, want{"complete", "paid", "pi_3Delayed", 499, "succeeded"})
	check("delayed, failed", failing.ID, want{"complete", "unpaid", "pi_3Failing", 499, "requires_payment_method"})
	check("card unchanged", card.ID, want{"complete", "paid", "pi_3Card", 499, "succeeded"})
	assert.Panics(t, func() { rec.SettleSession(abandoned.ID, true) }, "an open session has nothing to settle")
	assert.Panics(t, func() { rec.SettleSession("cs_never", true) })

	// Expiry: a complete session is refused like Stripe does.
	_, err := c.ExpireSession(ctx, card.ID, "job_card")
	require.ErrorIs(t, err, payments.ErrSessionNotOpen)
	assert.Contains(t, err.Error(), "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `complete`.")
	_, err = c.ExpireSession(ctx, card.ID, "job_card")
	require.ErrorIs(t, err, payments.ErrSessionNotOpen, "replayed")
	assert.True(t, rec.Calls()[len(rec.Calls())-1].Replayed)

	// An open one expires, and then is not open any more.
	s, err := c.ExpireSession(ctx, abandoned.ID, "job_abandoned")
	require.NoError(t, err)
	assert.Equal(t, abandoned.ID, s.ID)
	assert.Equal(t, "expired", s.Status)
	check("expired", abandoned.ID, want{"expired", "unpaid", "", 499, ""})
	_, err = c.ExpireSession(ctx, abandoned.ID, "job_abandoned_again")
	require.ErrorIs(t, err, payments.ErrSessionNotOpen)
	assert.Contains(t, err.Error(), "has a status of `expired`")

	// An unknown session is stripe-mock's, untouched.
	s, err = c.GetSession(ctx, "cs_test_unknown")
	require.NoError(t, err)
	assert.Equal(t, "pi_fixture", s.PaymentIntentID)
	_, err = c.ExpireSession(ctx, "cs_test_unknown", "job_unknown")
	require.NoError(t, err)
}

// Concurrent refunds of one payment under different keys: exactly one is
// made, the others find the charge refunded (run with -race).
func TestConcurrentRefundsOnePayment(t *testing.T) {
	rec, _ := newStateful(t)
	rec.RegisterPayment("pi_race", 700, "usd")
	const n = 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", rec.URL()+"/v1/refunds", strings.NewReader(refundForm("pi_race", "")))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Idempotency-Key", fmt.Sprint("refund:race:", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, map[int]int{200: 1, 400: n - 1}, statuses)
	assert.Equal(t, 1, rec.RefundsCreated("pi_race"))
	assert.Equal(t, int64(700), rec.AmountRefunded("pi_race"))
	assert.Equal(t, n, rec.RefundCalls("pi_race", time.Time{}))
}

func TestResetForgetsState(t *testing.T) {
	rec, _ := newStateful(t)
	rec.RegisterPayment("pi_reset", 300, "usd")
	rec.RefuseAllRefunds("charge_disputed", "")
	rec.CompleteSession("cs_reset", true, "pi_reset", 300)
	rec.Reset()
	_, ok := rec.Payment("pi_reset")
	assert.False(t, ok)
	got := send(t, rec, "POST", "/v1/refunds", "refund:reset", refundForm("pi_reset", ""))
	assert.Equal(t, 200, got.status, "refusals are forgotten")
	assert.Equal(t, int64(1000), got.num("amount"), "the payment is seen anew")
	s, err := payClient(t, rec).GetSession(context.Background(), "cs_reset")
	require.NoError(t, err)
	assert.Equal(t, "open", s.Status, "the session is stripe-mock's again")
}

func TestMisusePanics(t *testing.T) {
	rec, _ := newStateful(t)
	for name, f := range map[string]func(){
		"register without pi_":  func() { rec.RegisterPayment("ch_1", 100, "usd") },
		"register zero amount":  func() { rec.RegisterPayment("pi_1", 0, "usd") },
		"default amount zero":   func() { rec.SetDefaultAmount(0) },
		"refuse without pi_":    func() { rec.RefuseRefunds("", "charge_disputed", "") },
		"complete without id":   func() { rec.CompleteSession("", true, "pi_1", 100) },
		"complete without pi_":  func() { rec.CompleteSession("cs_1", true, "", 100) },
		"settle never complete": func() { rec.SettleSession("cs_2", true) },
	} {
		assert.Panics(t, f, name)
	}
}

// stripeClient is a plain stripe-go client pointed at rec.
func stripeClient(rec *Recorder) *stripeclient.API {
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(rec.URL()),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	})
	return stripeclient.New("sk_test_123", &stripe.Backends{API: b, Connect: b, Uploads: b})
}

// With the upstream down, a refund changes nothing and is not stored.
func TestRefundUpstreamDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	rec := NewRecorder(deadURL)
	rec.Start()
	defer rec.Close()
	rec.RegisterPayment("pi_down", 500, "usd")
	for range 2 {
		got := send(t, rec, "POST", "/v1/refunds", "refund:down", refundForm("pi_down", ""))
		assert.Equal(t, http.StatusBadGateway, got.status)
		assert.Equal(t, "api_error", got.errType)
		assert.False(t, got.replayed)
	}
	assert.Zero(t, rec.RefundsCreated("pi_down"))
	assert.Zero(t, rec.AmountRefunded("pi_down"))
	assert.Zero(t, rec.Count("", ""))
}
