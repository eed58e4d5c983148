package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/paysim"
	"hires/internal/store"
	"hires/internal/token"
)

// parallel runs fn(0..n-1) on c goroutines and returns the first error.
func parallel(ctx context.Context, n, c int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// driver speaks to the service as the site, Stripe and Temporal's clients do.
type driver struct {
	s        *stack
	http     *http.Client
	temporal client.Client
	pay      paysim.Options
	stripe   *payments.Client
	store    *store.Store
	baseline BaselineInput // sized from a real happy path

	mu        sync.Mutex
	paidAt    map[string]time.Time     // job ID -> when its payment webhook was sent
	hookTook  map[string]time.Duration // job ID -> how long its payment webhook's answer took
	submitted map[string]time.Time     // job ID -> when the stand-in received it
}

func newDriver(s *stack, c client.Client, st *store.Store) (*driver, error) {
	pc, err := payments.New(s.Env["STRIPE_SECRET_KEY"], s.Env["STRIPE_API_BASE"])
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	return &driver{
		s: s, http: hc, temporal: c, stripe: pc, store: st,
		pay:    paysim.Options{APIURL: s.APIURL, AdminToken: s.Env["ADMIN_TOKEN"], WebhookSecret: s.Env["STRIPE_WEBHOOK_SECRET"], HTTPClient: hc},
		paidAt: map[string]time.Time{}, submitted: map[string]time.Time{}, hookTook: map[string]time.Duration{},
	}, nil
}

// createJob is the site's POST /v1/jobs, with its key and an
// Idempotency-Key as a site sends them; it returns the job ID and the time
// the answer took.
func (d *driver) createJob(ctx context.Context) (string, time.Duration, error) {
	body, _ := json.Marshal(api.CreateJobRequest{
		ImageURL: d.s.SampleImageURL(160, 120), Resolution: string(jobs.Resolution4x),
		Email: "buyer@example.com", PostID: 7, ImageWidth: 160, ImageHeight: 120,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.s.APIURL+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+d.s.SiteKey)
	req.Header.Set("Idempotency-Key", "bench-"+uuid.NewString())
	start := time.Now()
	resp, err := d.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("create job: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		return "", 0, fmt.Errorf("create job: HTTP %d: %s", resp.StatusCode, raw)
	}
	var out api.CreateJobResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", 0, fmt.Errorf("create job: %w", err)
	}
	return out.ID, took, nil
}

// roundTrips performs, alone, what creating a job cannot do without: a
// Checkout Session at stripe-mock, the job's insert, one workflow start.
// It returns the started workflow's ID.
func (d *driver) roundTrips(ctx context.Context) (string, time.Duration, error) {
	id := uuid.NewString()
	wf := "bench-parked-" + id
	start := time.Now()
	_, err := d.stripe.CreateCheckout(ctx, payments.CheckoutParams{
		JobID: id, AmountCents: 500, Currency: "usd", ProductName: "4x upscale",
		SuccessURL: d.s.APIURL + "/ok", CancelURL: d.s.APIURL + "/cancel", ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second),
	})
	if err != nil {
		return "", 0, fmt.Errorf("checkout session: %w", err)
	}
	if _, _, err := d.store.CreateJob(ctx, store.NewJob{
		ID: id, ImageURL: d.s.SampleImageURL(160, 120), Resolution: jobs.Resolution4x, Email: "buyer@example.com",
		PostID: 7, ImageWidth: 160, ImageHeight: 120, OutputWidth: 640, OutputHeight: 480,
		AccessTokenHash: token.Hash(id), RequestHash: token.Hash(id), CallbackSecret: id, Currency: "usd",
		PriceCents: 500, MarkupPercent: 200, CheckoutExpiresAt: time.Now().Add(time.Hour),
	}); err != nil {
		return "", 0, err
	}
	if _, err := d.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wf, TaskQueue: baselineQueue,
	}, parkedWorkflow, time.Hour); err != nil {
		return "", 0, fmt.Errorf("start workflow: %w", err)
	}
	return wf, time.Since(start), nil
}

// paidSession fetches what the payment webhook will carry (not timed).
func (d *driver) paidSession(ctx context.Context, jobID string) (payments.Session, error) {
	return paysim.PaidSession(ctx, d.pay, jobID)
}

// payWebhook sends Stripe's signed checkout.session.completed and returns
// how long the API took to answer it.
func (d *driver) payWebhook(ctx context.Context, s payments.Session) (time.Duration, error) {
	start := time.Now()
	d.mu.Lock()
	d.paidAt[s.JobID] = start
	d.mu.Unlock()
	res, err := paysim.Send(ctx, d.pay, payments.NewEventID(), "checkout.session.completed", s)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.Status != http.StatusOK {
		return 0, fmt.Errorf("payment webhook: HTTP %d: %s", res.Status, res.Body)
	}
	return took, nil
}

// paymentToSubmit pairs each paid job with the stand-in's receipt of its
// submission, waiting up to a minute for the last ones.
func (d *driver) paymentToSubmit(ctx context.Context, jobIDs []string) ([]time.Duration, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		for _, r := range d.s.Upsampler.Requests() {
			if r.Submit == nil {
				continue
			}
			if id, ok := callbackJobID(r.Submit.Webhook); ok {
				d.mu.Lock()
				if _, seen := d.submitted[id]; !seen {
					d.submitted[id] = r.Time
				}
				d.mu.Unlock()
			}
		}
		d.mu.Lock()
		var out []time.Duration
		for _, id := range jobIDs {
			if at, ok := d.submitted[id]; ok {
				out = append(out, at.Sub(d.paidAt[id]))
			}
		}
		d.mu.Unlock()
		if len(out) == len(jobIDs) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d paid jobs reached the Upsampler stand-in within a minute", len(out), len(jobIDs))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// callbackJobID takes the job ID out of the per-job callback URL
// (.../v1/webhooks/upsampler/<job>/<secret>).
func callbackJobID(webhook string) (string, bool) {
	_, rest, ok := strings.Cut(webhook, "/v1/webhooks/upsampler/")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	return id, ok && id != ""
}

// signalParked is the bare SignalWorkflow the webhook is compared with.
func (d *driver) signalParked(ctx context.Context, workflowID string) (time.Duration, error) {
	start := time.Now()
	if err := d.temporal.SignalWorkflow(ctx, workflowID, "", baselinePaid, nil); err != nil {
		return 0, fmt.Errorf("signal %s: %w", workflowID, err)
	}
	return time.Since(start), nil
}

// lifecycle drives one job from creation to the end of its workflow (after
// its download expired).
func (d *driver) lifecycle(ctx context.Context) (string, error) {
	id, err := d.createAndPay(ctx)
	if err != nil {
		return "", err
	}
	return id, d.waitEnd(ctx, id, jobs.StatusCompleted)
}

// createAndPay creates a job and sends its payment webhook.
func (d *driver) createAndPay(ctx context.Context) (string, error) {
	id, _, err := d.createJob(ctx)
	if err != nil {
		return "", err
	}
	s, err := d.paidSession(ctx, id)
	if err != nil {
		return "", err
	}
	_, err = d.payWebhook(ctx, s)
	return id, err
}

// baselineLifecycle drives the baseline workflow the same way.
func (d *driver) baselineLifecycle(ctx context.Context, in BaselineInput) (string, error) {
	id := "bench-baseline-" + uuid.NewString()
	start := d.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID: id, TaskQueue: baselineQueue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, baselineWorkflow, in)
	h, err := d.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateID: "checkout", UpdateName: baselineUpdate, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	if err != nil {
		return "", fmt.Errorf("baseline start: %w", err)
	}
	if err := h.Get(ctx, nil); err != nil {
		return "", fmt.Errorf("baseline update: %w", err)
	}
	if err := d.temporal.SignalWorkflow(ctx, id, "", baselinePaid, nil); err != nil {
		return "", fmt.Errorf("baseline pay: %w", err)
	}
	if err := d.temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		return "", fmt.Errorf("baseline %s: %w", id, err)
	}
	return id, nil
}
