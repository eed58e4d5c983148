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
	"strings"
	"sync"
	"time"

	_ "golang.org/x/image/webp" // or WebP

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/upsamplersim"
)

// settled reports whether a job needs nothing more: a final status, and
// no payment left to give back.
func settled(j api.AdminJobView) bool {
	owed := j.PaymentStatus == jobs.PaymentRefundFailed ||
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
// and what the components saw; with downloads, it also fetches every
// completed job's image (which counts as the customer's download).
func (d *driver) observe(ctx context.Context, downloads bool) ([]Observed, error) {
	refunds := d.st.refundsByJob()
	submissions := submissionsByJob(d.st.standIn.Jobs())
	behavior := d.st.standIn.Behavior()
	obs := make([]Observed, len(d.runs))
	errs := make([]error, len(d.runs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, r := range d.runs {
		obs[i] = Observed{Plan: r.plan, JobID: r.id, CheckoutAt: r.checkoutAt, PaymentAcceptedAt: r.paidAt}
		if r.id == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o := &obs[i]
			o.Refunds, o.Submissions = refunds[r.id], submissions[r.id]
			o.StandInFails = behavior.Fate(d.imageURL(r.plan)).Fail
			errs[i] = d.observeRecord(ctx, r, o, downloads)
		}()
	}
	wg.Wait()
	return obs, errors.Join(errs...)
}

// observeRecord fills o from the job's record and trail, and checks the
// download of a completed job as its customer would.
func (d *driver) observeRecord(ctx context.Context, r *jobRun, o *Observed, downloads bool) error {
	j, err := d.adminJobRetrying(ctx, r.id, func(api.AdminJob) bool { return true })
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
	for _, e := range j.Events {
		at := e.At
		if e.ToStatus == string(jobs.StatusPending) && o.PendingAt == nil {
			o.PendingAt = &at
		}
		if jobs.Status(e.ToStatus).Final() && o.FinishedAt == nil {
			o.FinishedAt = &at
		}
	}
	if downloads && o.Status == jobs.StatusCompleted {
		o.Download = d.checkDownload(ctx, r)
	}
	return nil
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
	return fmt.Sprintf("http://%s/images/%dx%d.png", d.st.env["SOURCE_HOSTS"], p.Width, p.Height)
}

// refundsByJob lists the refunds that reached Stripe and were created,
// per job (from the refund's metadata); replays of an idempotency key are
// answered by the proxy without reaching Stripe, so they do not count.
func (s *stack) refundsByJob() map[string][]Refund {
	out := map[string][]Refund{}
	for _, c := range s.stripe.Effects(http.MethodPost, "/v1/refunds") {
		if c.Status != http.StatusOK {
			continue
		}
		job := c.Form.Get("metadata[job_id]")
		out[job] = append(out[job], Refund{PaymentIntentID: c.Form.Get("payment_intent"), IdempotencyKey: c.IdempotencyKey})
	}
	return out
}

// submissionsByJob counts the stand-in's jobs per hires job, identified
// by the per-job callback URL the worker submits.
func submissionsByJob(standIn []upsamplersim.JobInfo) map[string]int {
	const prefix = "/v1/webhooks/upsampler/"
	out := map[string]int{}
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
		out[id]++
	}
	return out
}

// mails reads every message from the mail catcher, with its headers.
func (s *stack) mails(ctx context.Context) ([]Mail, error) {
	list, err := s.mailpit.Messages(ctx)
	if err != nil {
		return nil, err
	}
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
			out[i] = Mail{
				JobID: first(msg.Headers["X-Hires-Job"]), Kind: first(msg.Headers["X-Hires-Kind"]),
				Admin: strings.HasPrefix(msg.Subject, "Copy: "), MessageID: m.MessageID,
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
