//go:build integration

package e2e

import (
	"context"
	"fmt"
	"image"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"hires/api"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/paysim"
)

// paidSession is the job's Checkout Session completed and paid by card, as
// paysim.PaidSession builds it, with the Stripe double told the same: its
// PaymentIntent succeeded for the job's price and the session is complete,
// so refunds and reads at Stripe follow the job's own payment.
func paidSession(t *testing.T, id string) payments.Session {
	t.Helper()
	s, err := paysim.PaidSession(context.Background(), paysimOptions(), id)
	require.NoError(t, err)
	stripe.RegisterPayment(s.PaymentIntentID, s.AmountTotal, s.Currency)
	stripe.CompleteSession(s.ID, true, s.PaymentIntentID, s.AmountTotal)
	return s
}

// sendCheckout delivers a signed Checkout event about s and requires a 200.
func sendCheckout(t *testing.T, eventType string, s payments.Session) paysim.Result {
	t.Helper()
	res, err := paysim.Send(context.Background(), paysimOptions(), payments.NewEventID(), eventType, s)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	return res
}

// submissionsOf counts the images Upsampler received for the job (each
// submission's callback URL names it).
func submissionsOf(id string) int {
	n := 0
	for _, r := range stack.Upsampler.Requests() {
		if r.Submit != nil && strings.Contains(r.Submit.Webhook, "/"+id+"/") {
			n++
		}
	}
	return n
}

// historyLength counts the events of a workflow's history.
func historyLength(t *testing.T, workflowID string) int {
	t.Helper()
	it := temporal.GetWorkflowHistory(context.Background(), workflowID, "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		_, err := it.Next()
		require.NoError(t, err)
		n++
	}
	return n
}

// statuses lists the audit trail's statuses.
func statuses(j api.AdminJob) []string {
	var out []string
	for _, e := range j.Events {
		out = append(out, e.ToStatus)
	}
	return out
}

// parkJobs creates n jobs through the API at base and leaves them unpaid,
// each with its workflow waiting for the payment. Their cleanup cancels
// them and waits until they are abandoned, so that no later test meets them.
func parkJobs(t *testing.T, base string, n int) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		ids  []string
		errs []string
		wg   sync.WaitGroup
	)
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				created, status, err := createAt(base, "")
				mu.Lock()
				if err != nil || status != http.StatusCreated {
					errs = append(errs, fmt.Sprintf("HTTP %d: %v", status, err))
				} else {
					ids = append(ids, created.ID)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() { abandonParked(t, ids) })
	require.Empty(t, errs, "every parked job is created")
	return ids
}

// abandonParked cancels the parked jobs (an unpaid job cancelled is
// abandoned, its session expired) and waits until all are.
func abandonParked(t *testing.T, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan string, len(ids))
	for _, id := range ids {
		next <- id
	}
	close(next)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if err := temporal.CancelWorkflow(context.Background(), jobs.WorkflowID(id), ""); err != nil {
					t.Errorf("cancel %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	// Under load a task can be lost on its way to the worker (Temporal has
	// recorded it started, the poll's answer never arrived): it is retried
	// once its start-to-close timeout passes, 2 minutes for ExpireCheckout.
	// Seen on a cluster whose four roles share two cores with everything else.
	for _, id := range ids {
		waitFor(t, id, 3*time.Minute, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
	}
}

// However many jobs are parked awaiting payment, every sweep looks at every
// owed job: a job terminated behind 260 older owed ones (more than a
// sweep's batch of 200) is settled within two sweeps, and refunded once,
// by an OwedRefund workflow; one terminated while awaiting payment is
// failed and its Checkout Session closed at Stripe.
func TestSweepDoesNotStarve(t *testing.T) {
	// A second API sells the parked jobs with a payment window longer than
	// the test, so that all of them stay owed, and older than the jobs to
	// settle, throughout.
	second := startAPI(t, "PAYMENT_TIMEOUT=5m")
	start := time.Now()
	parked := parkJobs(t, second.url, 260)
	t.Logf("%d jobs parked in %s", len(parked), time.Since(start).Round(time.Millisecond))

	withBehavior(t, func(b *upsamplersim.Behavior) { b.NeverFinish = true }) // still processing when terminated
	processing := paidJob(t)
	awaiting, status := newJob(t, 200, 200, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	p := waitFor(t, processing.ID, 20*time.Second, "processing", func(j api.AdminJob) bool { return j.Status == jobs.StatusProcessing })
	pi := *p.PaymentIntentID
	a := adminJob(t, awaiting.ID)
	require.NotNil(t, a.CheckoutSessionID)
	session := *a.CheckoutSessionID

	for _, id := range []string{processing.ID, awaiting.ID} {
		require.NoError(t, temporal.TerminateWorkflow(context.Background(), jobs.WorkflowID(id), "", "stuck, says the admin"))
	}
	terminated := time.Now()
	// RECONCILE_INTERVAL is 2s, RECONCILE_GRACE 1s: two sweeps, with room
	// for a slow visibility store.
	j := waitFor(t, processing.ID, 45*time.Second, "settled and refunded", func(j api.AdminJob) bool {
		return j.Status == jobs.StatusFailed && j.PaymentStatus == jobs.PaymentRefunded
	})
	require.Equal(t, jobs.ReasonTerminated, *j.FailureReason)
	unpaid := waitFor(t, awaiting.ID, 45*time.Second, "settled", func(j api.AdminJob) bool { return j.Status == jobs.StatusFailed })
	require.Equal(t, jobs.ReasonTerminated, *unpaid.FailureReason)
	t.Logf("both settled %s after the termination", time.Since(terminated).Round(time.Millisecond))
	// The parked jobs were owed all along: the sweep did not get to the
	// settled ones by waiting for the others to finish.
	for _, id := range []string{parked[0], parked[len(parked)/2], parked[len(parked)-1]} {
		require.Equal(t, jobs.StatusAwaitingPayment, adminJob(t, id).Status)
	}

	// The refund was made by the sweep's OwedRefund workflow, once.
	d, err := temporal.DescribeWorkflowExecution(context.Background(), jobs.OwedRefundWorkflowID(processing.ID), "")
	require.NoError(t, err)
	require.Equal(t, jobs.OwedRefundWorkflow, d.WorkflowExecutionInfo.Type.Name)
	requireClosedWorkflow(t, jobs.OwedRefundWorkflowID(processing.ID), enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
	// The unpaid one's session was expired at Stripe, once, under the job's key.
	expired := stripe.Effects("POST", "/v1/checkout/sessions/"+session+"/expire")
	require.Len(t, expired, 1)
	require.Equal(t, "expire:"+awaiting.ID, expired[0].IdempotencyKey)

	time.Sleep(5 * time.Second) // more sweeps: nothing more happens
	require.Equal(t, 1, stripe.RefundsCreated(pi))
	require.Equal(t, 1, refundsOf(processing.ID))
	require.Len(t, stripe.Effects("POST", "/v1/checkout/sessions/"+session+"/expire"), 1)
	require.Equal(t, 0, refundsOf(awaiting.ID))
	recordWorkflowHistory(t, jobs.OwedRefundWorkflowID(processing.ID), "owed_refund_terminated")
	if id := sweepThatSettled(t, awaiting.ID); id != "" {
		recordWorkflowHistory(t, id, "reconcile_settled_awaiting")
	}
}

// requireClosedWorkflow waits for any workflow to end with status want.
func requireClosedWorkflow(t *testing.T, workflowID string, want enumspb.WorkflowExecutionStatus) {
	t.Helper()
	eventually(t, 15*time.Second, workflowID+" "+want.String(), func() (bool, string) {
		d, err := temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
		require.NoError(t, err)
		st := d.WorkflowExecutionInfo.Status
		return st == want, st.String()
	})
}

// Refunds Stripe refuses: the loop retries under new keys, stops at once
// when the payment is refunded by hand, and otherwise hands the refund to
// an admin after REFUND_ATTENTION_AFTER, who can mark it settled.
func TestRefusedRefunds(t *testing.T) {
	// One Upsampler failure for each subtest's job; they run side by side.
	withBehavior(t, func(b *upsamplersim.Behavior) { b.FailNext = 2 })

	// A failed job whose refund Stripe refuses, from its first attempt on.
	refusedJob := func(t *testing.T, code string) (api.CreateJobResponse, string) {
		created, status := newJob(t, 120, 100, "4x", "")
		require.Equal(t, http.StatusCreated, status)
		s := paidSession(t, created.ID)
		stripe.RefuseRefunds(s.PaymentIntentID, code, "")
		sendCheckout(t, jobs.EventCheckoutCompleted, s)
		return created, s.PaymentIntentID
	}

	t.Run("refunded by hand, the loop ends", func(t *testing.T) {
		t.Parallel()
		created, pi := refusedJob(t, "charge_disputed")
		id := created.ID
		j := waitFor(t, id, processingTimeout+20*time.Second, "refund_failed",
			func(j api.AdminJob) bool { return j.PaymentStatus == jobs.PaymentRefundFailed })
		require.Equal(t, jobs.StatusFailed, j.Status)
		require.NotNil(t, j.RefundError)

		// The admin refunds in the Dashboard; Stripe tells us.
		ch, err := stripe.RefundByHand(pi)
		require.NoError(t, err)
		res, err := paysim.SendChargeRefunded(context.Background(), paysimOptions(), payments.Charge{
			ID: ch.ID, PaymentIntentID: ch.PaymentIntentID, AmountCents: ch.AmountCents,
			AmountRefundedCents: ch.AmountRefundedCents, Currency: ch.Currency, Refunded: ch.Refunded, JobID: id,
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status, res.Body)
		j = waitRefunded(t, id, 10*time.Second)
		confirmed := stripe.Now()
		require.NotNil(t, j.RefundConfirmedAt)
		require.Equal(t, *j.AmountPaidCents, *j.RefundAmountCents)

		// No attempt after that, however long we wait; the history stays small.
		time.Sleep(3*refundRetry + time.Second)
		require.Equal(t, 0, stripe.RefundCalls(pi, confirmed), "refund calls after the refund by hand")
		requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND PaymentStatus = "refunded"`, jobs.WorkflowID(id)))
		require.Equal(t, 0, stripe.RefundsCreated(pi), "every refund through the API was refused")
		require.Equal(t, *j.AmountPaidCents, stripe.AmountRefunded(pi))
		require.Less(t, historyLength(t, jobs.WorkflowID(id)), 200)
		require.Equal(t, jobs.PaymentRefunded, adminJob(t, id).PaymentStatus)
		requireClosedEventually(t, id, retryWindow+20*time.Second)
		recordHistory(t, id, "refund_refused_refunded_by_hand")
	})

	t.Run("refused for good, needs attention, settled by an admin", func(t *testing.T) {
		t.Parallel()
		eventually(t, 30*time.Second, "worker ready", func() (bool, string) {
			code, body := get(t, stack.WorkerHTTPURL+"/readyz")
			return code == http.StatusOK, body
		})
		attentionBefore := value(scrape(t, stack.WorkerHTTPURL).fams, "hires_refunds_needing_attention_total")
		created, pi := refusedJob(t, "balance_insufficient")
		id := created.ID
		waitFor(t, id, processingTimeout+20*time.Second, "refund_failed",
			func(j api.AdminJob) bool { return j.PaymentStatus == jobs.PaymentRefundFailed })
		j := waitFor(t, id, refundAttention+20*time.Second, "refund_needs_attention",
			func(j api.AdminJob) bool { return j.PaymentStatus == jobs.PaymentRefundNeedsAttention })
		require.Equal(t, jobs.StatusFailed, j.Status)
		require.NotNil(t, j.RefundError)
		require.Nil(t, j.RefundedAt)

		// Admins find it: the list filter, the Web UI's search, the metric.
		var list api.JobList
		require.Equal(t, http.StatusOK, call(t, "GET", "/v1/admin/jobs?payment_status=refund_needs_attention&limit=100", admin(), nil, nil, &list))
		require.True(t, slices.ContainsFunc(list.Jobs, func(v api.AdminJobView) bool { return v.ID == id }), "listed")
		for _, v := range list.Jobs {
			require.Equal(t, jobs.PaymentRefundNeedsAttention, v.PaymentStatus)
		}
		requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND PaymentStatus = "refund_needs_attention"`, jobs.WorkflowID(id)))
		eventually(t, 10*time.Second, "attention metric", func() (bool, string) {
			v := value(scrape(t, stack.WorkerHTTPURL).fams, "hires_refunds_needing_attention_total")
			return v >= attentionBefore+1, fmt.Sprintf("%v, was %v", v, attentionBefore)
		})

		// The admin alone is emailed, with the payment and Stripe's answer.
		var notice []string
		eventually(t, 30*time.Second, "refund-needs-attention email", func() (bool, string) {
			customer, admins := mailsOf(t, id)
			require.Empty(t, customer[jobs.EmailRefundAttention], "never to the customer")
			notice = nil
			for _, m := range admins[jobs.EmailRefundAttention] {
				require.Equal(t, stack.Env["ADMIN_EMAIL"], m.To[0].Address)
				require.False(t, strings.HasPrefix(m.Subject, "Copy: "), "a notice, not a copy")
				notice = append(notice, m.Text)
			}
			return len(notice) > 0, ""
		})
		require.Len(t, notice, 1)
		require.Contains(t, notice[0], pi)
		require.Contains(t, notice[0], id)

		// Attempts are bounded, each under a new key: refund:<job>, then
		// refund:<job>:<n>, since Stripe replays a refusal under its key.
		var keys []string
		for _, c := range stripe.Calls() {
			if c.Method == http.MethodPost && c.Path == "/v1/refunds" && c.Form.Get("payment_intent") == pi {
				require.False(t, c.Replayed, "a refusal replayed under an old key")
				keys = append(keys, c.IdempotencyKey)
			}
		}
		maxAttempts := int(refundAttention/refundRetry) + 1
		require.GreaterOrEqual(t, len(keys), 2, "refused refunds are retried")
		require.LessOrEqual(t, len(keys), maxAttempts)
		require.Equal(t, len(keys), stripe.RefundCalls(pi, time.Time{}))
		for n, k := range keys {
			want := "refund:" + id
			if n > 0 {
				want += ":" + strconv.Itoa(n)
			}
			require.Equal(t, want, k, "attempt %d", n)
		}
		require.Equal(t, 0, stripe.RefundsCreated(pi))

		// Settling: bad requests change nothing.
		settle := "/v1/admin/jobs/" + id + "/refund-settled"
		var bad errorAnswer
		require.Equal(t, http.StatusUnprocessableEntity, call(t, "POST", settle, admin(), `{"by":"e2e"}`, nil, &bad))
		require.Equal(t, "note", bad.Error.Field)
		require.Equal(t, http.StatusUnprocessableEntity, call(t, "POST", settle, admin(), `{"note":"  ","by":"e2e"}`, nil, &bad))
		require.Equal(t, http.StatusBadRequest, call(t, "POST", settle, admin(), `{"note":`, nil, &bad))
		require.Equal(t, http.StatusUnauthorized, call(t, "POST", settle, "", `{"note":"x"}`, nil, &bad))
		same := adminJob(t, id)
		require.Equal(t, jobs.PaymentRefundNeedsAttention, same.PaymentStatus)
		require.Len(t, same.Events, len(j.Events))

		// The customer was paid back by bank transfer.
		body := `{"note":"paid back by bank transfer","by":"e2e"}`
		var settled api.AdminJob
		require.Equal(t, http.StatusOK, call(t, "POST", settle, admin(), body, nil, &settled))
		require.Equal(t, jobs.PaymentRefunded, settled.PaymentStatus)
		require.Equal(t, jobs.StatusFailed, settled.Status)
		require.NotNil(t, settled.RefundedAt)
		require.Equal(t, *settled.AmountPaidCents, *settled.RefundAmountCents)
		last := settled.Events[len(settled.Events)-1]
		require.Equal(t, "refund_settled:e2e", last.Cause)
		require.NotNil(t, last.Detail)
		require.Equal(t, "paid back by bank transfer", *last.Detail)
		requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND PaymentStatus = "refunded"`, jobs.WorkflowID(id)))

		// Again: a no-op.
		var again api.AdminJob
		require.Equal(t, http.StatusOK, call(t, "POST", settle, admin(), body, nil, &again))
		require.Equal(t, jobs.PaymentRefunded, again.PaymentStatus)
		require.Len(t, again.Events, len(settled.Events))

		// Nothing is owed on a job awaiting its payment.
		other, status := newJob(t, 120, 100, "4x", "")
		require.Equal(t, http.StatusCreated, status)
		var conflict errorAnswer
		require.Equal(t, http.StatusConflict, call(t, "POST", "/v1/admin/jobs/"+other.ID+"/refund-settled", admin(), body, nil, &conflict))
		require.Equal(t, "no_refund_owed", conflict.Error.Code)
		o := adminJob(t, other.ID)
		require.Equal(t, jobs.PaymentPending, o.PaymentStatus)
		require.Len(t, o.Events, 1)

		require.Equal(t, len(keys), stripe.RefundCalls(pi, time.Time{}), "no refund attempt after the hand-over")
		requireClosedEventually(t, id, retryWindow+20*time.Second)
		recordHistory(t, id, "refund_needs_attention_settled")
	})
}

// A Checkout completed with a delayed method (a bank debit) outlives the
// payment window: the job waits for Stripe's verdict, then is made, or
// abandoned with nothing charged.
func TestDelayedPayments(t *testing.T) {
	tests := []struct {
		name      string
		succeeded bool
	}{
		{"the bank pays after the window", true},
		{"the bank refuses", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			created, status := newJob(t, 120, 100, "4x", "")
			require.Equal(t, http.StatusCreated, status)
			id := created.ID
			s, err := paysim.PaidSession(context.Background(), paysimOptions(), id)
			require.NoError(t, err)
			s.PaymentStatus = "unpaid" // complete, the money not there yet
			pi := s.PaymentIntentID
			stripe.CompleteSession(s.ID, false, pi, s.AmountTotal)
			sendCheckout(t, jobs.EventCheckoutCompleted, s)

			j := waitFor(t, id, 20*time.Second, "payment processing",
				func(j api.AdminJob) bool { return j.PaymentStatus == jobs.PaymentProcessing })
			require.Equal(t, jobs.StatusAwaitingPayment, j.Status)
			requireVisible(t, fmt.Sprintf(`WorkflowId = %q AND PaymentStatus = "processing"`, jobs.WorkflowID(id)))
			customer, _ := waitMails(t, id, jobs.EmailPaymentProcessing)
			require.Len(t, customer[jobs.EmailPaymentProcessing], 1)
			require.Equal(t, "buyer@example.com", customer[jobs.EmailPaymentProcessing][0].To[0].Address)

			if tt.succeeded {
				// The payment window closes meanwhile: nothing happens.
				time.Sleep(time.Until(created.CreatedAt.Add(paymentTimeout + 2*time.Second)))
				j = adminJob(t, id)
				require.Equal(t, jobs.StatusAwaitingPayment, j.Status)
				require.Equal(t, jobs.PaymentProcessing, j.PaymentStatus)
				require.Equal(t, 0, countKey("POST", "/v1/checkout/sessions/", "expire:"+id), "the session is not expired")

				stripe.SettleSession(s.ID, true)
				s.PaymentStatus = "paid"
				paid := sendCheckout(t, jobs.EventCheckoutAsyncSucceeded, s)
				j = waitFor(t, id, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
				require.Equal(t, jobs.PaymentPaid, j.PaymentStatus)
				require.Equal(t, pi, *j.PaymentIntentID)
				require.Equal(t, s.AmountTotal, *j.AmountPaidCents)
				require.Equal(t, []string{"awaiting_payment", "awaiting_payment", "pending", "processing", "completed"}, statuses(j))
				require.Equal(t, paid.EventID, j.Events[2].Cause)

				var view api.JobView
				require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+id, created.AccessToken, nil, nil, &view))
				require.NotNil(t, view.Download)
				resp, err := apiClient.Get(view.Download.URL)
				require.NoError(t, err)
				img, _, err := image.Decode(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				require.Equal(t, image.Rect(0, 0, 480, 400), img.Bounds())
				require.Equal(t, 1, submissionsOf(id))
			} else {
				stripe.SettleSession(s.ID, false)
				sendCheckout(t, jobs.EventCheckoutAsyncFailed, s)
				j = waitFor(t, id, 20*time.Second, "abandoned", func(j api.AdminJob) bool { return j.Status == jobs.StatusAbandoned })
				require.Equal(t, jobs.PaymentFailed, j.PaymentStatus)
				require.Nil(t, j.PaymentIntentID, "no payment recorded")
				require.Equal(t, 0, submissionsOf(id), "nothing sent to Upsampler")
			}
			require.Equal(t, 0, refundsOf(id))
			require.Equal(t, 0, stripe.RefundCalls(pi, time.Time{}))
			if tt.succeeded {
				requireClosedEventually(t, id, downloadTTL+20*time.Second)
				recordHistory(t, id, "delayed_payment_completed")
			} else {
				requireClosed(t, id, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED)
				recordHistory(t, id, "abandoned_async_payment_failed")
			}
		})
	}
}

// The customer paid, but Stripe's webhook never came; an admin cancels the
// job. Stripe says the session is paid: the payment is recorded and
// refunded once, and the image is never sent for upscaling.
func TestCancelWhileStripeSaysPaid(t *testing.T) {
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	id := created.ID
	s := paidSession(t, id) // at Stripe only: no event is sent
	require.NoError(t, temporal.CancelWorkflow(context.Background(), jobs.WorkflowID(id), ""))

	j := waitRefunded(t, id, 30*time.Second)
	require.Equal(t, jobs.StatusFailed, j.Status)
	require.Equal(t, jobs.ReasonCancelled, *j.FailureReason)
	require.Equal(t, s.PaymentIntentID, *j.PaymentIntentID)
	require.Equal(t, s.AmountTotal, *j.AmountPaidCents)
	require.Equal(t, s.AmountTotal, *j.RefundAmountCents)
	require.NotContains(t, statuses(j), "processing")
	require.Equal(t, "stripe:"+s.ID, j.Events[1].Cause, "the payment learned from Stripe")
	requireClosed(t, id, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED)
	require.Equal(t, 1, stripe.RefundsCreated(s.PaymentIntentID))
	require.Equal(t, 1, refundsOf(id))
	require.Equal(t, 0, submissionsOf(id), "nothing sent to Upsampler")
	recordHistory(t, id, "cancelled_paid_unnoticed")
}
