package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/payments"
)

// giveUp bounds how long the site and "Stripe" keep retrying a request
// (Stripe itself retries webhooks for days).
const giveUp = 5 * time.Minute

// parkConcurrency is how many parked jobs are created at once: enough to
// park a thousand in a minute or two, few enough to leave the two cores
// to the rest of the stack.
const parkConcurrency = 4

// driver plays the selling site, Stripe (its webhooks and its Dashboard)
// and the admins: it creates the jobs of the plan, retrying creations that
// fail during an outage with the same Idempotency-Key, delivers each job's
// Stripe events, duplicated, jittered and concurrent, retrying until the
// API acknowledges them, and terminates, cancels and refunds as planned.
type driver struct {
	st       *stack
	settings Settings
	seed     int64
	start    time.Time
	hc       *http.Client
	sends    chan struct{} // bounds concurrent webhook deliveries
	log      func(string, ...any)

	mu    sync.Mutex
	runs  []*jobRun
	stats DriveStats
}

// jobRun is what the driver knows about one planned job.
type jobRun struct {
	plan       JobPlan
	id, token  string
	checkoutAt time.Time
	session    payments.Session // as the API's record describes it
	// pi is the PaymentIntent the customer paid (or tried to) with.
	pi string
	// paidAt is the first acknowledged delivery of the event that took
	// the money (checkout.session.completed paid, or
	// async_payment_succeeded); nil if the customer never paid.
	paidAt *time.Time
	// The planned act: when it was done, with the job's status then, or
	// why it was not (the job was not in the state the act needs).
	actedAt   *time.Time
	actStatus string
	actMissed string
	// handRefundAt is when the "Dashboard" refunded the payment, on the
	// Stripe double's clock; settledAt when the admin marked it settled.
	handRefundAt *time.Time
	settledAt    *time.Time
}

// DriveStats counts what the site, Stripe and the admins did.
type DriveStats struct {
	CreateRequests int
	CreateRetries  int         // requests repeated with the same Idempotency-Key
	CreateFailures map[int]int // failed creation answers by HTTP status (0: no answer)
	Deliveries     int         // webhook POSTs
	EventsSent     int         // distinct Stripe events
	DeliveryRetry  int         // POSTs repeated after a failure
	DeliveryFailed map[int]int // failed deliveries by HTTP status (0: no answer)
	Outcomes       map[string]int
	StaleExpiries  int // expiries sent after a payment was acknowledged
	LatePayments   int // payments sent after the job was seen abandoned
	// Parking: how many jobs were parked and how long that took.
	Parked     int
	ParkTook   time.Duration
	ParkFailed int
	// Acts done and missed (the job was not in the needed state), by act.
	Acted       map[Act]int
	ActsMissed  map[Act]int
	SettleCalls int // POST .../refund-settled
}

func newDriver(st *stack, settings Settings, seed int64, plan []JobPlan, log func(string, ...any)) *driver {
	d := &driver{
		st: st, settings: settings, seed: seed, log: log,
		hc:    &http.Client{Timeout: 45 * time.Second}, // creation waits up to 30s for the checkout
		sends: make(chan struct{}, 32),
		stats: DriveStats{CreateFailures: map[int]int{}, DeliveryFailed: map[int]int{}, Outcomes: map[string]int{},
			Acted: map[Act]int{}, ActsMissed: map[Act]int{}},
	}
	for _, p := range plan {
		d.runs = append(d.runs, &jobRun{plan: p})
	}
	return d
}

// park creates the parked jobs, parkConcurrency at a time, before the
// traffic: they then wait for a payment that never comes.
func (d *driver) park(ctx context.Context) {
	began := time.Now()
	todo := make(chan *jobRun)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range parkConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range todo {
				err := d.create(ctx, r)
				if err == nil {
					err = d.loadSession(ctx, r)
				}
				mu.Lock()
				done++
				if err != nil {
					d.log("parked job %d: %v", r.plan.Index, err)
					d.count(func(s *DriveStats) { s.ParkFailed++ })
				} else if done%250 == 0 {
					d.log("%d jobs parked", done)
				}
				mu.Unlock()
			}
		}()
	}
	n := 0
	for _, r := range d.runs {
		if r.plan.Path != PathParked {
			continue
		}
		select {
		case todo <- r:
			n++
		case <-ctx.Done():
		}
	}
	close(todo)
	wg.Wait()
	d.count(func(s *DriveStats) { s.Parked, s.ParkTook = n, time.Since(began) })
}

// run plays every job's script from start and returns when all are done.
func (d *driver) run(ctx context.Context, start time.Time) {
	d.start = start
	var wg sync.WaitGroup
	for _, r := range d.runs {
		if r.plan.Path == PathParked && r.plan.Act == ActNone {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.plan.Path == PathParked {
				d.stopAwaiting(ctx, r)
				return
			}
			d.script(ctx, r)
		}()
	}
	wg.Wait()
}

// script is one job's life as the customer, Stripe and the admins live it.
func (d *driver) script(ctx context.Context, r *jobRun) {
	rnd := rand.New(rand.NewPCG(uint64(d.seed), uint64(r.plan.Index)+1))
	if !sleepCtx(ctx, time.Until(d.start.Add(r.plan.CreateAt))) {
		return
	}
	if err := d.create(ctx, r); err != nil {
		d.log("job %d: not created: %v", r.plan.Index, err)
		return
	}
	if err := d.loadSession(ctx, r); err != nil {
		d.log("job %d: %v", r.plan.Index, err)
		return
	}
	p := r.plan
	switch p.Path {
	case PathPaid:
		sleepCtx(ctx, p.PayAfter)
		d.pay(ctx, r, rnd, 3*time.Second)
		if p.StaleExpiry && r.paidAt != nil {
			sleepCtx(ctx, jitter(rnd, 2*time.Second))
			d.count(func(s *DriveStats) { s.StaleExpiries++ })
			d.expire(ctx, r, rnd)
		}
		if r.paidAt != nil {
			d.act(ctx, r, rnd)
		}
	case PathDelayed, PathDelayedFailed, PathDelayedLate:
		sleepCtx(ctx, p.PayAfter)
		completedAt := d.payDelayed(ctx, r, rnd)
		if completedAt == nil {
			return
		}
		switch p.Path {
		case PathDelayed, PathDelayedFailed:
			sleepCtx(ctx, p.SettleAfter)
			d.settleDelayed(ctx, r, rnd, p.Path == PathDelayed)
		case PathDelayedLate:
			// Stripe's word comes after the job gave up waiting for it.
			sleepCtx(ctx, time.Until(completedAt.Add(d.settings.AsyncPayment-2*time.Second)))
			if _, err := d.adminJobPolling(ctx, r.id, 250*time.Millisecond, giveUp, func(j api.AdminJob) bool {
				return j.Status == jobs.StatusAbandoned
			}); err != nil {
				d.log("job %d: not settled late: %v", p.Index, err)
				return
			}
			d.count(func(s *DriveStats) { s.LatePayments++ })
			d.settleDelayed(ctx, r, rnd, true)
		}
	case PathLate, PathNever:
		if p.ExpiredEvent {
			sleepCtx(ctx, p.PayAfter)
			d.expire(ctx, r, rnd)
		}
		if p.Path != PathLate {
			return
		}
		if err := d.awaitAbandoned(ctx, r); err != nil {
			d.log("job %d: not paid late: %v", p.Index, err)
			return
		}
		d.count(func(s *DriveStats) { s.LatePayments++ })
		d.payLate(ctx, r, rnd)
	}
}

// create posts the job, retrying with the same Idempotency-Key through
// outages, until it has the checkout.
func (d *driver) create(ctx context.Context, r *jobRun) error {
	p := r.plan
	body, err := json.Marshal(api.CreateJobRequest{
		ImageURL:   d.imageURL(p),
		Resolution: p.Resolution, Email: fmt.Sprintf("buyer-%d@example.com", p.Index),
		PostID: int64(p.Index + 1), ImageWidth: p.Width, ImageHeight: p.Height,
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(giveUp)
	for attempt := 0; ; attempt++ {
		d.count(func(s *DriveStats) {
			s.CreateRequests++
			if attempt > 0 {
				s.CreateRetries++
			}
		})
		var out api.CreateJobResponse
		status, err := d.call(ctx, http.MethodPost, "/v1/jobs", d.st.siteKey, body, map[string]string{"Idempotency-Key": p.Key}, &out)
		if err == nil && (status == http.StatusCreated || status == http.StatusOK) {
			r.id, r.token, r.checkoutAt = out.ID, out.AccessToken, time.Now()
			return nil
		}
		d.count(func(s *DriveStats) { s.CreateFailures[status]++ })
		if !retryCreation(status) {
			return fmt.Errorf("creation refused: HTTP %d", status)
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			return fmt.Errorf("creation still failing after %s: HTTP %d %v", giveUp, status, err)
		}
	}
}

// retryCreation tells whether a failed creation is repeated with the same
// Idempotency-Key, as a site would: no answer, a 5xx, a 429, or a 409 (the
// key is held by an earlier attempt, which may have died with the API
// mid-request: its lease runs out, then the retry resumes the creation).
// Any other 4xx is final.
func retryCreation(status int) bool {
	switch {
	case status == 0, status >= 500, status == http.StatusTooManyRequests, status == http.StatusConflict:
		return true
	}
	return false
}

// loadSession reads the job's Checkout Session from its record, which is
// what Stripe would describe in its events.
func (d *driver) loadSession(ctx context.Context, r *jobRun) error {
	j, err := d.adminJobPolling(ctx, r.id, time.Second, giveUp, func(j api.AdminJob) bool { return j.CheckoutSessionID != nil })
	if err != nil {
		return fmt.Errorf("read the checkout session: %w", err)
	}
	r.session = payments.Session{
		ID: *j.CheckoutSessionID, JobID: j.ID, ClientReferenceID: j.ID,
		AmountTotal: j.Price.AmountCents, Currency: j.Price.Currency,
		CustomerEmail: fmt.Sprintf("buyer-%d@example.com", r.plan.Index),
		ExpiresAt:     time.Now().Add(time.Hour),
	}
	return nil
}

// awaitAbandoned watches a job that will be paid late, closely, so that
// the payment follows the abandonment as soon as it is recorded.
func (d *driver) awaitAbandoned(ctx context.Context, r *jobRun) error {
	if !r.plan.ExpiredEvent {
		sleepCtx(ctx, time.Until(r.checkoutAt.Add(d.settings.PaymentTimeout-2*time.Second)))
	}
	_, err := d.adminJobPolling(ctx, r.id, 250*time.Millisecond, giveUp, func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	return err
}

// pay completes the job's Checkout by card: the Stripe double learns of
// the payment (with the refusal of its refunds, if planned) before
// checkout.session.completed goes out, Copies times, each copy after its
// own jitter (up to spread); the first goes at once.
func (d *driver) pay(ctx context.Context, r *jobRun, rnd *rand.Rand, spread time.Duration) {
	s := r.session
	r.pi = payments.NewPaymentIntentID()
	s.Status, s.PaymentStatus, s.PaymentIntentID = "complete", "paid", r.pi
	d.st.stripe.CompleteSession(s.ID, true, r.pi, s.AmountTotal)
	if r.plan.Act.refused() {
		d.st.stripe.RefuseRefunds(r.pi, "balance_insufficient", "")
	}
	r.paidAt = d.deliverCopies(ctx, jobs.EventCheckoutCompleted, s, rnd, spread)
}

// payLate is a payment of a session already abandoned (one completed just
// before it was expired, whose event came late).
func (d *driver) payLate(ctx context.Context, r *jobRun, rnd *rand.Rand) {
	s := r.session
	r.pi = payments.NewPaymentIntentID()
	s.Status, s.PaymentStatus, s.PaymentIntentID = "complete", "paid", r.pi
	d.st.stripe.RegisterPayment(r.pi, s.AmountTotal, s.Currency)
	r.paidAt = d.deliverCopies(ctx, jobs.EventCheckoutCompleted, s, rnd, time.Second)
}

// payDelayed completes the Checkout with a delayed method (a bank debit):
// payment_status unpaid until Stripe settles it. It returns when the
// completion was first acknowledged.
func (d *driver) payDelayed(ctx context.Context, r *jobRun, rnd *rand.Rand) *time.Time {
	s := r.session
	r.pi = payments.NewPaymentIntentID()
	s.Status, s.PaymentStatus, s.PaymentIntentID = "complete", "unpaid", r.pi
	d.st.stripe.CompleteSession(s.ID, false, r.pi, s.AmountTotal)
	return d.deliverCopies(ctx, jobs.EventCheckoutCompleted, s, rnd, 3*time.Second)
}

// settleDelayed is Stripe's word on a delayed payment: the money came
// (async_payment_succeeded) or the bank refused it (async_payment_failed).
func (d *driver) settleDelayed(ctx context.Context, r *jobRun, rnd *rand.Rand, succeeded bool) {
	s := r.session
	s.Status, s.PaymentIntentID = "complete", r.pi
	d.st.stripe.SettleSession(s.ID, succeeded)
	if !succeeded {
		s.PaymentStatus = "unpaid"
		d.deliverCopies(ctx, jobs.EventCheckoutAsyncFailed, s, rnd, 3*time.Second)
		return
	}
	s.PaymentStatus = "paid"
	r.paidAt = d.deliverCopies(ctx, jobs.EventCheckoutAsyncSucceeded, s, rnd, 3*time.Second)
}

// expire delivers one checkout.session.expired, Copies times.
func (d *driver) expire(ctx context.Context, r *jobRun, rnd *rand.Rand) {
	s := r.session
	s.Status, s.PaymentStatus = "expired", "unpaid"
	d.deliverCopies(ctx, jobs.EventCheckoutExpired, s, rnd, 2*time.Second)
}

// deliverCopies sends one checkout event Copies times concurrently and
// returns when the first copy was acknowledged (nil if none was).
func (d *driver) deliverCopies(ctx context.Context, typ string, s payments.Session, rnd *rand.Rand, spread time.Duration) *time.Time {
	return d.deliverEvent(ctx, typ, s.JobID, rnd, spread, func(eventID string, now time.Time) ([]byte, error) {
		return payments.CheckoutEventPayload(eventID, typ, s, now)
	})
}

// deliverEvent sends one event (payload builds it) Copies times
// concurrently, each copy after its own jitter, and returns when the first
// copy was acknowledged (nil if none was).
func (d *driver) deliverEvent(ctx context.Context, typ, jobID string, rnd *rand.Rand, spread time.Duration,
	payload func(eventID string, now time.Time) ([]byte, error)) *time.Time {
	eventID := payments.NewEventID()
	d.count(func(st *DriveStats) { st.EventsSent++ })
	delays := make([]time.Duration, Copies)
	for i := 1; i < Copies; i++ {
		delays[i] = jitter(rnd, spread)
	}
	var (
		mu    sync.Mutex
		first *time.Time
		wg    sync.WaitGroup
	)
	for _, delay := range delays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(ctx, delay) {
				return
			}
			if at, ok := d.deliver(ctx, eventID, typ, jobID, payload); ok {
				mu.Lock()
				if first == nil || at.Before(*first) {
					first = &at
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// deliver POSTs one signed event until the API answers 200, as Stripe
// retries a webhook; it returns when that answer came.
func (d *driver) deliver(ctx context.Context, eventID, typ, jobID string, payload func(string, time.Time) ([]byte, error)) (time.Time, bool) {
	deadline := time.Now().Add(giveUp)
	for attempt := 0; ; attempt++ {
		d.sends <- struct{}{}
		status, body, err := d.postEvent(ctx, eventID, payload)
		<-d.sends
		acked := time.Now()
		d.count(func(st *DriveStats) {
			st.Deliveries++
			if attempt > 0 {
				st.DeliveryRetry++
			}
			if err == nil && status == http.StatusOK {
				st.Outcomes[outcomeOf(body)]++
			} else {
				st.DeliveryFailed[status]++
			}
		})
		if err == nil && status == http.StatusOK {
			return acked, true
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			d.log("event %s (%s) for job %s not acknowledged after %s: HTTP %d %v", eventID, typ, jobID, giveUp, status, err)
			return time.Time{}, false
		}
	}
}

// postEvent signs and posts one delivery of an event, as Stripe does.
func (d *driver) postEvent(ctx context.Context, eventID string, payload func(string, time.Time) ([]byte, error)) (int, string, error) {
	now := time.Now()
	body, err := payload(eventID, now)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.st.apiURL+"/v1/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", payments.SignPayload(body, d.st.env["STRIPE_WEBHOOK_SECRET"], now))
	resp, err := d.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(raw), nil
}

// outcomeOf reads the API's {"status": ...} answer to a webhook.
func outcomeOf(body string) string {
	var v struct {
		Status string `json:"status"`
	}
	if json.Unmarshal([]byte(body), &v) != nil || v.Status == "" {
		return "unknown"
	}
	return v.Status
}

// act does the job's planned act once the job is in the state it needs;
// a job that went past that state is left alone (the miss is counted).
func (d *driver) act(ctx context.Context, r *jobRun, rnd *rand.Rand) {
	a := r.plan.Act
	switch a {
	case ActTerminateProcessing, ActCancelProcessing:
		j, err := d.adminJobPolling(ctx, r.id, 250*time.Millisecond, giveUp, func(j api.AdminJob) bool {
			return j.Status == jobs.StatusProcessing || j.Status.Final()
		})
		if err != nil || j.Status != jobs.StatusProcessing {
			d.missed(r, fmt.Sprintf("not seen processing (%s, %v)", j.Status, err))
			return
		}
		d.stop(ctx, r, string(j.Status)+"/"+string(j.PaymentStatus))
	case ActTerminateRefunding, ActCancelRefunding, ActRefundByHand:
		j, err := d.adminJobPolling(ctx, r.id, 500*time.Millisecond, giveUp, func(j api.AdminJob) bool {
			return j.PaymentStatus == jobs.PaymentRefundFailed || j.PaymentStatus == jobs.PaymentRefundNeedsAttention ||
				j.PaymentStatus == jobs.PaymentRefunded || j.Status == jobs.StatusCompleted
		})
		if err != nil || (j.PaymentStatus != jobs.PaymentRefundFailed && j.PaymentStatus != jobs.PaymentRefundNeedsAttention) {
			d.missed(r, fmt.Sprintf("refund not seen refused (%s/%s, %v)", j.Status, j.PaymentStatus, err))
			return
		}
		seen := string(j.Status) + "/" + string(j.PaymentStatus)
		if a == ActRefundByHand {
			d.refundByHand(ctx, r, rnd, seen)
			return
		}
		d.stop(ctx, r, seen)
		// Stripe takes refunds again (the balance was topped up, say).
		d.st.stripe.AllowRefunds(r.pi)
	case ActRefundAttention:
		wait := d.settings.RefundAttention + d.settings.ProcessingTimeout + Slack
		j, err := d.adminJobPolling(ctx, r.id, time.Second, wait, func(j api.AdminJob) bool {
			return j.PaymentStatus == jobs.PaymentRefundNeedsAttention || j.PaymentStatus == jobs.PaymentRefunded ||
				j.Status == jobs.StatusCompleted
		})
		if err != nil || j.PaymentStatus != jobs.PaymentRefundNeedsAttention {
			d.missed(r, fmt.Sprintf("never needed attention (%s/%s, %v)", j.Status, j.PaymentStatus, err))
			return
		}
		d.settleRefund(ctx, r, string(j.Status)+"/"+string(j.PaymentStatus))
	}
}

// stopAwaiting terminates or cancels a parked job at its time, if it is
// still awaiting payment.
func (d *driver) stopAwaiting(ctx context.Context, r *jobRun) {
	if !sleepCtx(ctx, time.Until(d.start.Add(r.plan.ActAt))) || r.id == "" {
		return
	}
	j, err := d.adminJobPolling(ctx, r.id, time.Second, giveUp, func(api.AdminJob) bool { return true })
	if err != nil || j.Status != jobs.StatusAwaitingPayment {
		d.missed(r, fmt.Sprintf("not awaiting payment (%s, %v)", j.Status, err))
		return
	}
	d.stop(ctx, r, string(j.Status)+"/"+string(j.PaymentStatus))
}

// stop terminates or cancels the job's workflow, as an admin would in the
// Web UI, retrying through a Temporal outage.
func (d *driver) stop(ctx context.Context, r *jobRun, seen string) {
	wid := jobs.WorkflowID(r.id)
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		at := time.Now()
		var err error
		if r.plan.Act.terminates() {
			err = d.st.tc.TerminateWorkflow(cctx, wid, "", "chaos: terminated by an admin")
		} else {
			err = d.st.tc.CancelWorkflow(cctx, wid, "")
		}
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case err == nil:
			d.acted(r, at, seen)
			return
		case errors.As(err, &notFound):
			d.missed(r, "workflow already closed")
			return
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			d.missed(r, "Temporal did not take it: "+err.Error())
			return
		}
	}
}

// refundByHand refunds the payment as someone would in the Stripe
// Dashboard; Stripe then sends charge.refunded.
func (d *driver) refundByHand(ctx context.Context, r *jobRun, rnd *rand.Rand, seen string) {
	ch, err := d.st.stripe.RefundByHand(r.pi)
	if err != nil {
		d.missed(r, err.Error())
		return
	}
	at := d.st.stripe.Now()
	r.handRefundAt = &at
	d.acted(r, time.Now(), seen)
	charge := payments.Charge{ID: ch.ID, PaymentIntentID: ch.PaymentIntentID, AmountCents: ch.AmountCents,
		AmountRefundedCents: ch.AmountRefundedCents, Currency: ch.Currency, Refunded: ch.Refunded, JobID: r.id}
	d.deliverEvent(ctx, jobs.EventChargeRefunded, r.id, rnd, 2*time.Second, func(eventID string, now time.Time) ([]byte, error) {
		return payments.ChargeRefundedEventPayload(eventID, charge, now)
	})
}

// settleRefund is the admin's word that a refund Stripe kept refusing was
// paid back another way.
func (d *driver) settleRefund(ctx context.Context, r *jobRun, seen string) {
	body := []byte(`{"note": "paid back by bank transfer", "by": "chaos"}`)
	deadline := time.Now().Add(giveUp)
	for attempt := 0; ; attempt++ {
		d.count(func(s *DriveStats) { s.SettleCalls++ })
		status, err := d.call(ctx, http.MethodPost, "/v1/admin/jobs/"+r.id+"/refund-settled", d.st.adminToken(), body, nil, nil)
		if err == nil && status == http.StatusOK {
			now := time.Now()
			r.settledAt = &now
			d.acted(r, now, seen)
			return
		}
		if status == http.StatusConflict || time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			d.missed(r, fmt.Sprintf("settlement refused: HTTP %d %v", status, err))
			return
		}
	}
}

func (d *driver) acted(r *jobRun, at time.Time, seen string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r.actedAt, r.actStatus = &at, seen
	d.stats.Acted[r.plan.Act]++
}

// missed records an act not done. A job whose refunds were to be refused
// gets them accepted again, so that it ends like any other.
func (d *driver) missed(r *jobRun, why string) {
	d.log("job %d (%s): %s not done: %s", r.plan.Index, r.id, r.plan.Act, why)
	if r.plan.Act.refused() && r.pi != "" {
		d.st.stripe.AllowRefunds(r.pi)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r.actMissed = why
	d.stats.ActsMissed[r.plan.Act]++
}

// adminJobPolling reads the job through the admin API every interval,
// riding out outages, until cond holds or wait has passed.
func (d *driver) adminJobPolling(ctx context.Context, id string, interval, wait time.Duration, cond func(api.AdminJob) bool) (api.AdminJob, error) {
	deadline := time.Now().Add(wait)
	var last string
	for {
		var j api.AdminJob
		status, err := d.call(ctx, http.MethodGet, "/v1/admin/jobs/"+id, d.st.adminToken(), nil, nil, &j)
		if err == nil && status == http.StatusOK && cond(j) {
			return j, nil
		}
		last = fmt.Sprintf("HTTP %d %v, status %s", status, err, j.Status)
		if time.Now().After(deadline) || !sleepCtx(ctx, interval) {
			return j, fmt.Errorf("job %s: condition not reached within %s (last: %s)", id, wait, last)
		}
	}
}

// call sends a request to the API and decodes a JSON answer into out.
// status is 0 when no answer came.
func (d *driver) call(ctx context.Context, method, path, bearer string, body []byte, header map[string]string, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.st.apiURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: answer is not JSON: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (d *driver) count(f func(*DriveStats)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.stats)
}

// backoff grows from 250ms to 4s.
func backoff(attempt int) time.Duration {
	return min(250*time.Millisecond<<min(attempt, 5), 4*time.Second)
}

func jitter(r *rand.Rand, upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	return time.Duration(r.Int64N(int64(upTo)))
}

// sleepCtx sleeps for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
