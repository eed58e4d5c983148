package chaos

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // results may be JPEG
	_ "image/png"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "golang.org/x/image/webp" // or WebP

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"hires/api"
	"hires/dev/stripetest"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
)

// settled reports whether a job needs nothing more: a final status, and
// no payment left to give back.
func settled(j api.AdminJobView) bool {
	owed := j.PaymentStatus == jobs.PaymentRefundFailed || j.PaymentStatus == jobs.PaymentRefundNeedsAttention ||
		j.PaymentStatus == jobs.PaymentPaid && j.Status != jobs.StatusCompleted
	return j.Status.Final() && !owed
}

// awaitSettled polls the admin API until every created job is settled.
func (d *driver) awaitSettled(ctx context.Context, deadline time.Time) error {
	for {
		views, err := d.listJobs(ctx)
		open := 0
		byStatus := map[string]int{}
		if err == nil {
			for _, r := range d.runs {
				if r.id == "" {
					continue
				}
				v, ok := views[r.id]
				if !ok || !settled(v) {
					open++
					byStatus[string(v.Status)+"/"+string(v.PaymentStatus)]++
				}
			}
			if open == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d jobs not settled in time (%v; last error: %v)", open, byStatus, err)
		}
		if !sleepCtx(ctx, 2*time.Second) {
			return ctx.Err()
		}
	}
}

// listJobs reads every job through the admin list, page by page.
func (d *driver) listJobs(ctx context.Context) (map[string]api.AdminJobView, error) {
	out := map[string]api.AdminJobView{}
	cursor := ""
	for {
		var page api.JobList
		status, err := d.call(ctx, http.MethodGet, "/v1/admin/jobs?limit=100&order_by=created_at&cursor="+url.QueryEscape(cursor),
			d.st.adminToken(), nil, nil, &page)
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("list jobs: HTTP %d %v", status, err)
		}
		for _, j := range page.Jobs {
			out[j.ID] = j
		}
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// observe reads back, for every planned job, what the service recorded
// and what the components saw. With full, it also fetches every completed
// job's image (which counts as the customer's download) and reads the
// workflows' histories.
func (d *driver) observe(ctx context.Context, full bool) ([]Observed, error) {
	calls := d.st.stripe.Calls()
	refunds := refundsByJob(calls)
	confirmed := refundsMadeAt(calls)
	closed := sessionsClosed(calls)
	sends := sendsByJob(d.st.standIn.Jobs())
	behavior := d.st.standIn.Behavior()
	obs := make([]Observed, len(d.runs))
	errs := make([]error, len(d.runs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	d.mu.Lock() // the acts' records, written by the scripts (all done by now)
	for i, r := range d.runs {
		obs[i] = Observed{Plan: r.plan, JobID: r.id, CheckoutAt: r.checkoutAt, PaymentAcceptedAt: r.paidAt,
			ActedAt: r.actedAt, ActStatus: r.actStatus, ActMissed: r.actMissed, PI: r.pi, HandRefundAt: r.handRefundAt}
	}
	d.mu.Unlock()
	for i, r := range d.runs {
		if r.id == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o := &obs[i]
			o.Refunds, o.Sends, o.Submissions = refunds[r.id], sends[r.id], len(sends[r.id])
			o.StandInFails = behavior.Fate(d.imageURL(r.plan)).Fail
			o.AmountCents = r.session.AmountTotal
			if r.session.ID != "" {
				o.SessionClosed = closed[r.session.ID]
			}
			observeStripe(d.st.stripe, o, confirmed)
			errs[i] = d.observeRecord(ctx, r, o, full)
			if full && errs[i] == nil {
				errs[i] = d.observeWorkflows(ctx, o)
			}
		}()
	}
	wg.Wait()
	return obs, errors.Join(errs...)
}

// observeStripe fills what the Stripe double holds about the job's payment.
func observeStripe(s *stripetest.Recorder, o *Observed, madeAt map[string]time.Time) {
	if o.PI == "" {
		return
	}
	o.StripeRefunds = s.RefundsCreated(o.PI)
	o.AmountRefunded = s.AmountRefunded(o.PI)
	o.RefundCalls = s.RefundCalls(o.PI, time.Time{})
	var at *time.Time
	if t, ok := madeAt[o.PI]; ok {
		at = &t
	}
	if h := o.HandRefundAt; h != nil && (at == nil || h.Before(*at)) {
		at = h
	}
	if at != nil {
		o.ConfirmedAt = at
		o.RefundCallsAfter = s.RefundCalls(o.PI, at.Add(time.Nanosecond))
	}
}

// observeRecord fills o from the job's record and trail, and checks the
// download of a completed job as its customer would.
func (d *driver) observeRecord(ctx context.Context, r *jobRun, o *Observed, downloads bool) error {
	j, err := d.adminJobPolling(ctx, r.id, time.Second, giveUp, func(api.AdminJob) bool { return true })
	if err != nil {
		return err
	}
	o.Status, o.PaymentStatus, o.RefundedAt = j.Status, j.PaymentStatus, j.RefundedAt
	if j.FailureReason != nil {
		o.FailureReason = *j.FailureReason
	}
	if j.PaymentIntentID != nil {
		o.PaymentIntentID = *j.PaymentIntentID
	}
	if j.UpsamplerJobID != nil {
		o.UpsamplerJobID = *j.UpsamplerJobID
	}
	for _, e := range j.Events {
		at := e.At
		if e.ToStatus == string(jobs.StatusPending) && o.PendingAt == nil {
			o.PendingAt = &at
		}
		if jobs.Status(e.ToStatus).Final() && o.FinishedAt == nil {
			o.FinishedAt = &at
		}
		switch {
		case e.Detail != nil && *e.Detail == "payment processing":
			o.ProcessingNoted = true
		case e.Cause == "refund_needs_attention":
			o.NeedsAttention = true
		case strings.HasPrefix(e.Cause, "refund_settled") && o.NeedsAttention:
			o.SettledByAdmin = true
		}
	}
	if downloads && o.Status == jobs.StatusCompleted {
		o.Download = d.checkDownload(ctx, r)
	}
	return nil
}

// observeWorkflows reads the length of each of the job's workflows and,
// if the image was sent more than once, checks from the job's history
// that no submission followed the callback of the one before.
func (d *driver) observeWorkflows(ctx context.Context, o *Observed) error {
	kinds := []struct {
		kind, id string
	}{{HistoryJob, jobs.WorkflowID(o.JobID)}}
	if o.PI != "" || o.terminated() {
		kinds = append(kinds, struct{ kind, id string }{HistoryOwedRefund, jobs.OwedRefundWorkflowID(o.JobID)},
			struct{ kind, id string }{HistoryLatePayment, jobs.LatePaymentWorkflowID(o.JobID)})
	}
	for _, k := range kinds {
		h, ok, err := describe(ctx, d.st.tc, k.id)
		if err != nil {
			return fmt.Errorf("describe %s: %w", k.id, err)
		}
		if ok {
			h.Kind = k.kind
			o.Histories = append(o.Histories, h)
		}
	}
	read := false
	for _, s := range o.Sends {
		read = read || s.N > 1 || s.AnswerLost != ""
	}
	if !read {
		return nil
	}
	events, err := history(ctx, d.st.tc, jobs.WorkflowID(o.JobID))
	if err != nil {
		return fmt.Errorf("history of %s: %w", o.JobID, err)
	}
	o.ResentEarly, o.LostWaits = scanSubmissions(events)
	return nil
}

// describe reads a workflow's history length and status; ok is false if
// there is no such workflow.
func describe(ctx context.Context, c client.Client, id string) (History, bool, error) {
	var err error
	for attempt := range 10 {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		r, derr := c.DescribeWorkflowExecution(dctx, id, "")
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case derr == nil:
			info := r.GetWorkflowExecutionInfo()
			return History{WorkflowID: id, Length: info.GetHistoryLength(), Status: statusName(info.GetStatus())}, true, nil
		case errors.As(derr, &notFound):
			return History{}, false, nil
		}
		err = derr
		if !sleepCtx(ctx, backoff(attempt)) {
			break
		}
	}
	return History{}, false, err
}

func statusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_")
}

// history reads a workflow's whole history.
func history(ctx context.Context, c client.Client, id string) ([]*historypb.HistoryEvent, error) {
	var out []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// lostWaitSummary names the timer a job starts to wait for the callback
// of a submission whose answer was lost (workflows/processing.go).
const lostWaitSummary = "lost submission's callback"

// scanSubmissions reads a job's history: early lists the submissions
// (from 2) scheduled after a callback of the submission before had been
// signalled (the workflow knew Upsampler had the image, and sent it again
// anyway); waits are the timers it started to wait for a lost answer's
// callback.
func scanSubmissions(events []*historypb.HistoryEvent) (early []int, waits []time.Duration) {
	dc := converter.GetDefaultDataConverter()
	called := map[int]bool{}
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			a := e.GetWorkflowExecutionSignaledEventAttributes()
			if a.GetSignalName() != jobs.SignalUpsamplerCallback {
				continue
			}
			var cb jobs.UpsamplerCallback
			if dc.FromPayloads(a.GetInput(), &cb) == nil && cb.UpsamplerJobID != "" && cb.Submission > 0 {
				called[cb.Submission] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := e.GetActivityTaskScheduledEventAttributes()
			if a.GetActivityType().GetName() != "SubmitUpscale" {
				continue
			}
			var in struct{ Submission int }
			if dc.FromPayloads(a.GetInput(), &in) == nil && in.Submission > 1 && called[in.Submission-1] {
				early = append(early, in.Submission)
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			var summary string
			if p := e.GetUserMetadata().GetSummary(); p == nil || dc.FromPayload(p, &summary) != nil || summary != lostWaitSummary {
				continue
			}
			waits = append(waits, e.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration())
		}
	}
	return early, waits
}

// checkDownload follows the customer's link and decodes the image.
func (d *driver) checkDownload(ctx context.Context, r *jobRun) *DownloadCheck {
	var view api.JobView
	status, err := d.call(ctx, http.MethodGet, "/v1/jobs/"+r.id, r.token, nil, nil, &view)
	switch {
	case err != nil:
		return &DownloadCheck{Err: "read the job: " + err.Error()}
	case status != http.StatusOK:
		return &DownloadCheck{Err: fmt.Sprintf("read the job: HTTP %d", status)}
	case view.Download == nil || view.Download.URL == "":
		return &DownloadCheck{Err: "completed without a download link"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, view.Download.URL, nil)
	if err != nil {
		return &DownloadCheck{Err: err.Error()}
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return &DownloadCheck{Err: err.Error()}
	}
	defer resp.Body.Close()
	c := &DownloadCheck{HTTPStatus: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		return c
	}
	img, _, err := image.Decode(resp.Body)
	if err != nil {
		c.Err = "decode: " + err.Error()
		return c
	}
	c.Width, c.Height = img.Bounds().Dx(), img.Bounds().Dy()
	return c
}

func (d *driver) imageURL(p JobPlan) string {
	return "http://" + d.st.env["SOURCE_HOSTS"] + p.ImagePath()
}

// refundsByJob lists the refunds that reached Stripe and were created,
// per job (from the refund's metadata); replays of an idempotency key and
// the double's refusals do not count.
func refundsByJob(calls []stripetest.Call) map[string][]Refund {
	out := map[string][]Refund{}
	for _, c := range calls {
		if !refundCreated(c) {
			continue
		}
		job := c.Form.Get("metadata[job_id]")
		out[job] = append(out[job], Refund{PaymentIntentID: c.Form.Get("payment_intent"), IdempotencyKey: c.IdempotencyKey})
	}
	return out
}

// refundsMadeAt is when each PaymentIntent was first refunded through the
// API, on the double's clock.
func refundsMadeAt(calls []stripetest.Call) map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range calls {
		if !refundCreated(c) {
			continue
		}
		pi := c.Form.Get("payment_intent")
		if at, ok := out[pi]; !ok || c.At.Before(at) {
			out[pi] = c.At
		}
	}
	return out
}

func refundCreated(c stripetest.Call) bool {
	return c.Method == http.MethodPost && c.Path == "/v1/refunds" && c.Forwarded && c.Status == http.StatusOK
}

// sessionsClosed lists the Checkout Sessions expired at Stripe.
func sessionsClosed(calls []stripetest.Call) map[string]bool {
	out := map[string]bool{}
	for _, c := range calls {
		rest, ok := strings.CutPrefix(c.Path, "/v1/checkout/sessions/")
		if !ok || c.Method != http.MethodPost || c.Status != http.StatusOK {
			continue
		}
		if id, ok := strings.CutSuffix(rest, "/expire"); ok {
			out[id] = true
		}
	}
	return out
}

// sendsByJob lists the stand-in's jobs per hires job, identified by the
// per-job callback URL the worker submits, with their submission number.
func sendsByJob(standIn []upsamplersim.JobInfo) map[string][]Send {
	const prefix = "/v1/webhooks/upsampler/"
	out := map[string][]Send{}
	for _, j := range standIn {
		u, err := url.Parse(j.Webhook)
		if err != nil {
			continue
		}
		rest, ok := strings.CutPrefix(u.Path, prefix)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		n, _ := strconv.Atoi(u.Query().Get("s"))
		out[id] = append(out[id], Send{N: n, UpsamplerJobID: j.ID, CreatedAt: j.CreatedAt,
			AnswerLost: j.AnswerLost, CallbackAt: j.WebhookDeliveredAt})
	}
	return out
}

// mails reads every message from the mail catcher, with its headers.
func (s *stack) mails(ctx context.Context) ([]Mail, error) {
	list, err := s.mailpit.Messages(ctx)
	if err != nil {
		return nil, err
	}
	admin := s.env["ADMIN_EMAIL"]
	out := make([]Mail, len(list))
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, m := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			msg, err := s.mailpit.Message(ctx, m.ID)
			if err != nil {
				errs[i] = err
				return
			}
			toAdmin := len(m.To) == 1 && strings.EqualFold(m.To[0].Address, admin)
			out[i] = Mail{
				JobID: first(msg.Headers["X-Hires-Job"]), Kind: first(msg.Headers["X-Hires-Kind"]),
				Admin: strings.HasPrefix(msg.Subject, "Copy: ") || toAdmin, MessageID: m.MessageID,
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// keepHistory reads a workflow's whole history, writes it as JSON to path
// (the format `temporal workflow show --output json` writes, which the
// replayer and dev/historycost read) and sums it up: events by type,
// and activities by name.
func keepHistory(ctx context.Context, c client.Client, id, path string) (string, error) {
	h := &historypb.History{}
	byType, byActivity := map[string]int{}, map[string]int{}
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return "", err
		}
		h.Events = append(h.Events, e)
		byType[strings.ToLower(strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_"))]++
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			byActivity[a.GetActivityType().GetName()]++
		}
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("events %s; activities %s", countsOf(byType), countsOf(byActivity)), nil
}
