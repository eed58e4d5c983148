//go:build integration

package e2e

import (
	"context"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// A job from creation to payment, upscaling, download and, past the
// link's expiry, cleanup.
func TestPaidJobLifecycle(t *testing.T) {
	const w, h = 160, 120
	key := "order-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	created, status := newJob(t, w, h, "4x", key)
	require.Equal(t, http.StatusCreated, status)
	id := created.ID
	require.Equal(t, jobs.StatusAwaitingPayment, created.Status)
	require.NotEmpty(t, created.CheckoutURL)
	require.NotEmpty(t, created.AccessToken)
	require.Equal(t, api.Price{Currency: "usd", AmountCents: 50, OutputWidth: 640, OutputHeight: 480}, created.Price)
	require.Equal(t, api.AdminPrice{Price: created.Price, Credits: 1, CostCents: 4, MarkupPercent: 200}, adminJob(t, created.ID).Price)

	// One Checkout Session at Stripe, keyed by the job, carrying the job ID.
	sessions := stripe.Effects("POST", "/v1/checkout/sessions")
	var mine []url.Values
	for _, c := range sessions {
		if c.IdempotencyKey == "checkout:"+id {
			mine = append(mine, c.Form)
		}
	}
	require.Len(t, mine, 1, "exactly one session created for the job")
	form := mine[0]
	require.Equal(t, id, form.Get("client_reference_id"))
	require.Equal(t, id, form.Get("metadata[job_id]"))
	require.Equal(t, id, form.Get("payment_intent_data[metadata][job_id]"))
	require.Equal(t, "50", form.Get("line_items[0][price_data][unit_amount]"))
	require.Equal(t, "usd", form.Get("line_items[0][price_data][currency]"))
	require.Equal(t, "buyer@example.com", form.Get("customer_email"))
	require.Equal(t, "payment", form.Get("mode"))
	exp, _ := strconv.ParseInt(form.Get("expires_at"), 10, 64)
	ttl := time.Until(time.Unix(exp, 0))
	require.True(t, ttl > 30*time.Minute && ttl <= 24*time.Hour, "session expiry %s within Stripe's limits", ttl)

	// The same request with the same key is the same job; no second session.
	again, status := newJob(t, w, h, "4x", key)
	require.Equal(t, http.StatusCreated, status, "the first answer, replayed")
	require.Equal(t, id, again.ID)
	require.Equal(t, created.AccessToken, again.AccessToken)
	require.Equal(t, 1, countKey("POST", "/v1/checkout/sessions", "checkout:"+id))

	// Only the access token opens the job.
	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+id, created.AccessToken, nil, nil, &view))
	require.Equal(t, jobs.StatusAwaitingPayment, view.Status)
	require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/jobs/"+id, "", nil, nil, nil))
	require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/jobs/"+id, created.AccessToken+"x", nil, nil, nil))
	page := getPage(t, "/jobs/"+id+"?token="+url.QueryEscape(created.AccessToken))
	require.Contains(t, page, "Waiting for your payment")
	require.Contains(t, page, `http-equiv="refresh"`)

	// The customer pays; Stripe delivers the event twice.
	res, err := paysim.Pay(context.Background(), paysimOptions(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	require.Contains(t, res.Body, "signalled")
	dup, err := paysim.Send(context.Background(), paysimOptions(), res.EventID, jobs.EventCheckoutCompleted, res.Session)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, dup.Status)
	require.Contains(t, dup.Body, "duplicate")

	done := waitFor(t, id, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	require.Equal(t, jobs.PaymentPaid, done.PaymentStatus)
	require.Equal(t, int64(50), *done.AmountPaidCents)
	require.Equal(t, "buyer@example.com", *done.CustomerEmail)
	require.NotNil(t, done.UpsamplerJobID)
	require.Equal(t, 640, *done.ResultWidth)
	require.Equal(t, 480, *done.ResultHeight)
	require.Equal(t, 1.0, *done.UpsamplerCredits)
	require.Equal(t, int64(50-4), *done.MarginCents)

	// One submission to Upsampler, with this job's callback URL.
	submits := 0
	for _, r := range stack.Upsampler.Requests() {
		if r.Submit != nil && r.JobID == *done.UpsamplerJobID {
			submits++
			require.Contains(t, r.Submit.Webhook, "/v1/webhooks/upsampler/"+id+"/")
			require.Equal(t, 4.0, *r.Submit.Input.UpscaleFactor)
		}
	}
	require.Equal(t, 1, submits)

	// The customer downloads the real, upscaled image.
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+id, created.AccessToken, nil, nil, &view))
	require.NotNil(t, view.Download)
	resp, err := apiClient.Get(view.Download.URL)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	img, format, err := image.Decode(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "png", format)
	require.Equal(t, image.Rect(0, 0, 4*w, 4*h), img.Bounds())

	req, _ := http.NewRequest("GET", view.Download.URL, nil)
	req.Header.Set("Range", "bytes=0-99")
	resp, err = apiClient.Do(req)
	require.NoError(t, err)
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Len(t, part, 100)

	// The page Stripe Checkout returns the customer to shows the same.
	page = getPage(t, "/jobs/"+id+"?token="+url.QueryEscape(created.AccessToken))
	require.Contains(t, page, "Your image is ready")
	require.Contains(t, page, view.Download.URL)
	require.NotContains(t, page, `http-equiv="refresh"`)
	require.Contains(t, getPage(t, "/jobs/"+id+"?token=wrong"), "does not exist")

	// Admins find it in Temporal by status.
	requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND JobStatus = "completed" AND PaymentStatus = "paid"`, jobs.WorkflowID(id)))

	// Past expiry: the file is gone, the link answers 410, the workflow ends.
	expired := waitFor(t, id, downloadTTL+30*time.Second, "download expiry",
		func(j api.AdminJob) bool { return j.DownloadExpiredAt != nil })
	require.Equal(t, jobs.StatusCompleted, expired.Status)
	resp, err = apiClient.Get(view.Download.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusGone, resp.StatusCode)
	_, err = os.Stat(filepath.Join(stack.Env["DATA_DIR"], "results", id+".png"))
	require.True(t, os.IsNotExist(err), "result file deleted")
	requireClosed(t, id, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	recordHistory(t, id, "paid_completed_expired")

	// The audit trail tells the story with its causes.
	trail := adminJob(t, id).Events
	var steps []string
	for _, e := range trail {
		steps = append(steps, e.ToStatus+"<-"+e.Cause)
	}
	require.Equal(t, []string{
		"awaiting_payment<-created",
		"pending<-" + res.EventID,
		"processing<-upsampler:" + *done.UpsamplerJobID,
		"completed<-upsampler:" + *done.UpsamplerJobID,
		"completed<-download_expired",
	}, steps)
}

func TestUnpaidJobIsAbandonedWhenThePaymentWindowCloses(t *testing.T) {
	created, status := newJob(t, 200, 150, "8x", "")
	require.Equal(t, http.StatusCreated, status)
	id := created.ID
	j := waitFor(t, id, paymentTimeout+30*time.Second, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	require.Equal(t, jobs.PaymentExpired, j.PaymentStatus)
	// The session was expired at Stripe, once, with a key derived from the job.
	require.Equal(t, 1, countKey("POST", "/v1/checkout/sessions/", "expire:"+id))
	requireClosed(t, id, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND JobStatus = "abandoned"`, jobs.WorkflowID(id)))
	recordHistory(t, id, "abandoned_payment_timeout")

	// A payment event arriving afterwards does not bring the job back.
	res, err := paysim.Pay(context.Background(), paysimOptions(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status)
	require.Equal(t, jobs.StatusAbandoned, adminJob(t, id).Status)
}

func TestExpiredSessionEventAbandonsTheJob(t *testing.T) {
	created, _ := newJob(t, 300, 300, "4x", "")
	res, err := paysim.Expire(context.Background(), paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	j := waitFor(t, created.ID, 20*time.Second, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	require.Equal(t, res.EventID, j.Events[len(j.Events)-1].Cause)
	require.Equal(t, 0, countKey("POST", "/v1/checkout/sessions/", "expire:"+created.ID))
	requireClosed(t, created.ID, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	recordHistory(t, created.ID, "abandoned_session_expired")
}

// countKey counts forwarded Stripe calls carrying an idempotency key.
func countKey(method, pathPrefix, key string) int {
	n := 0
	for _, c := range stripe.Effects(method, pathPrefix) {
		if c.IdempotencyKey == key {
			n++
		}
	}
	return n
}

// requireVisible waits for a visibility query to find exactly one workflow.
func requireVisible(t *testing.T, query string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(t, err)
		if len(resp.Executions) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no workflow matches %s", query)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func requireClosed(t *testing.T, id string, want enumspb.WorkflowExecutionStatus) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d, err := temporal.DescribeWorkflowExecution(context.Background(), jobs.WorkflowID(id), "")
		require.NoError(t, err)
		if st := d.WorkflowExecutionInfo.Status; st == want {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("workflow of %s is %s, want %s", id, st, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getPage fetches an HTML page of the API.
func getPage(t *testing.T, path string) string {
	t.Helper()
	resp, err := apiClient.Get(stack.APIURL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	return string(b)
}
