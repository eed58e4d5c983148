package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/paysim"
)

// giveUp bounds how long the site and "Stripe" keep retrying a request
// (Stripe itself retries webhooks for days).
const giveUp = 5 * time.Minute

// driver plays the selling site and Stripe: it creates the jobs of the
// plan, retrying creations that fail during an outage with the same
// Idempotency-Key, and delivers each job's Stripe events, duplicated,
// jittered and concurrent, retrying until the API acknowledges them.
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
	paidAt     *time.Time       // first acknowledged payment delivery
}

// DriveStats counts what the site and Stripe did.
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
}

func newDriver(st *stack, settings Settings, seed int64, plan []JobPlan, log func(string, ...any)) *driver {
	d := &driver{
		st: st, settings: settings, seed: seed, log: log,
		hc:    &http.Client{Timeout: 45 * time.Second}, // creation waits up to 30s for the checkout
		sends: make(chan struct{}, 32),
		stats: DriveStats{CreateFailures: map[int]int{}, DeliveryFailed: map[int]int{}, Outcomes: map[string]int{}},
	}
	for _, p := range plan {
		d.runs = append(d.runs, &jobRun{plan: p})
	}
	return d
}

// run plays every job's script from start and returns when all are done.
func (d *driver) run(ctx context.Context, start time.Time) {
	d.start = start
	var wg sync.WaitGroup
	for _, r := range d.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.script(ctx, r)
		}()
	}
	wg.Wait()
}

// script is one job's life as the customer and Stripe live it.
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
	switch {
	case p.Path == PathPaid:
		sleepCtx(ctx, p.PayAfter)
		d.pay(ctx, r, rnd, 3*time.Second)
		if p.StaleExpiry && r.paidAt != nil {
			sleepCtx(ctx, jitter(rnd, 2*time.Second))
			d.count(func(s *DriveStats) { s.StaleExpiries++ })
			d.expire(ctx, r, rnd)
		}
	case p.ExpiredEvent:
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
	d.pay(ctx, r, rnd, time.Second)
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
		status, err := d.call(ctx, http.MethodPost, "/v1/jobs", "", body, map[string]string{"Idempotency-Key": p.Key}, &out)
		if err == nil && (status == http.StatusCreated || status == http.StatusOK) {
			r.id, r.token, r.checkoutAt = out.ID, out.AccessToken, time.Now()
			return nil
		}
		d.count(func(s *DriveStats) { s.CreateFailures[status]++ })
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			return fmt.Errorf("creation refused: HTTP %d", status)
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			return fmt.Errorf("creation still failing after %s: HTTP %d %v", giveUp, status, err)
		}
	}
}

// loadSession reads the job's Checkout Session from its record, which is
// what Stripe would describe in its events.
func (d *driver) loadSession(ctx context.Context, r *jobRun) error {
	j, err := d.adminJobRetrying(ctx, r.id, func(j api.AdminJob) bool { return j.CheckoutSessionID != nil })
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
	_, err := d.adminJobPolling(ctx, r.id, 250*time.Millisecond, func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	return err
}

// pay delivers one checkout.session.completed, paid, Copies times, each
// copy after its own jitter (up to spread); the first goes at once.
func (d *driver) pay(ctx context.Context, r *jobRun, rnd *rand.Rand, spread time.Duration) {
	s := r.session
	s.Status, s.PaymentStatus, s.PaymentIntentID = "complete", "paid", payments.NewPaymentIntentID()
	r.paidAt = d.deliverCopies(ctx, jobs.EventCheckoutCompleted, s, rnd, spread)
}

// expire delivers one checkout.session.expired, Copies times.
func (d *driver) expire(ctx context.Context, r *jobRun, rnd *rand.Rand) {
	s := r.session
	s.Status, s.PaymentStatus = "expired", "unpaid"
	d.deliverCopies(ctx, jobs.EventCheckoutExpired, s, rnd, 2*time.Second)
}

// deliverCopies sends one event Copies times concurrently and returns when
// the first copy was acknowledged (nil if none was).
func (d *driver) deliverCopies(ctx context.Context, typ string, s payments.Session, rnd *rand.Rand, spread time.Duration) *time.Time {
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
			if at, ok := d.deliver(ctx, eventID, typ, s); ok {
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
func (d *driver) deliver(ctx context.Context, eventID, typ string, s payments.Session) (time.Time, bool) {
	opts := paysim.Options{APIURL: d.st.apiURL, WebhookSecret: d.st.env["STRIPE_WEBHOOK_SECRET"], HTTPClient: &http.Client{Timeout: 20 * time.Second}}
	deadline := time.Now().Add(giveUp)
	for attempt := 0; ; attempt++ {
		d.sends <- struct{}{}
		res, err := paysim.Send(ctx, opts, eventID, typ, s)
		<-d.sends
		acked := time.Now()
		d.count(func(st *DriveStats) {
			st.Deliveries++
			if attempt > 0 {
				st.DeliveryRetry++
			}
			if err == nil && res.Status == http.StatusOK {
				st.Outcomes[outcomeOf(res.Body)]++
			} else {
				st.DeliveryFailed[res.Status]++
			}
		})
		if err == nil && res.Status == http.StatusOK {
			return acked, true
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, backoff(attempt)) {
			d.log("event %s (%s) for job %s not acknowledged after %s: HTTP %d %v", eventID, typ, s.JobID, giveUp, res.Status, err)
			return time.Time{}, false
		}
	}
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

// adminJobRetrying reads the job through the admin API until cond holds,
// riding out outages, for up to giveUp.
func (d *driver) adminJobRetrying(ctx context.Context, id string, cond func(api.AdminJob) bool) (api.AdminJob, error) {
	return d.adminJobPolling(ctx, id, time.Second, cond)
}

// adminJobPolling is adminJobRetrying, polling every interval.
func (d *driver) adminJobPolling(ctx context.Context, id string, interval time.Duration, cond func(api.AdminJob) bool) (api.AdminJob, error) {
	deadline := time.Now().Add(giveUp)
	var last string
	for {
		var j api.AdminJob
		status, err := d.call(ctx, http.MethodGet, "/v1/admin/jobs/"+id, d.st.adminToken(), nil, nil, &j)
		if err == nil && status == http.StatusOK && cond(j) {
			return j, nil
		}
		last = fmt.Sprintf("HTTP %d %v, status %s", status, err, j.Status)
		if time.Now().After(deadline) || !sleepCtx(ctx, interval) {
			return j, fmt.Errorf("job %s: condition not reached within %s (last: %s)", id, giveUp, last)
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
