//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/dev/devstack"
	"hires/dev/upsamplersim"
	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/store"
)

// mailsOf returns the job's messages in mailpit by kind (the customer's
// and the admin's apart), with their bodies. The admin's are the copies
// ("Copy: " subject) and the admin-only notices (refund-needs-attention,
// subject as is): both carry the admin role in their Message-ID.
func mailsOf(t *testing.T, jobID string) (customer, admin map[string][]devstack.MailpitMessageDetail) {
	t.Helper()
	ctx := context.Background()
	list, err := stack.Mailpit.Messages(ctx)
	require.NoError(t, err)
	customer, admin = map[string][]devstack.MailpitMessageDetail{}, map[string][]devstack.MailpitMessageDetail{}
	for _, m := range list {
		d, err := stack.Mailpit.Message(ctx, m.ID)
		require.NoError(t, err)
		if first(d.Headers["X-Hires-Job"]) != jobID {
			continue
		}
		kind := first(d.Headers["X-Hires-Kind"])
		if strings.HasPrefix(d.Subject, "Copy: ") || strings.Contains(d.MessageID, "-admin@") {
			admin[kind] = append(admin[kind], d)
		} else {
			customer[kind] = append(customer[kind], d)
		}
	}
	return customer, admin
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// waitMails waits until the job has a customer email of each kind.
func waitMails(t *testing.T, jobID string, kinds ...string) (map[string][]devstack.MailpitMessageDetail, map[string][]devstack.MailpitMessageDetail) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, a := mailsOf(t, jobID)
		missing := false
		for _, k := range kinds {
			missing = missing || len(c[k]) == 0
		}
		if !missing {
			return c, a
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: emails %v not all received; have %d kinds", jobID, kinds, len(c))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func waitEvents(t *testing.T, jobID string, n int) []events.Event {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := hooks.of(jobID)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d of %d events accepted", jobID, len(got), n)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestDeliveredJobEmailsAndEvents(t *testing.T) {
	created := paidJob(t)
	j := waitFor(t, created.ID, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	// The link, read while it is valid (the reminder below comes just
	// before it expires).
	var view api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &view))
	require.NotEmpty(t, view.Download.URL)
	customer, admin := waitMails(t, created.ID, jobs.EmailPaymentReceived, jobs.EmailImageReady, jobs.EmailExpiringSoon)

	ready := customer[jobs.EmailImageReady]
	require.Len(t, ready, 1, "one image-ready email")
	require.Equal(t, "buyer@example.com", ready[0].To[0].Address)
	require.Contains(t, ready[0].Text, view.Download.URL)
	require.Contains(t, ready[0].HTML, view.Download.URL)
	expiry := j.Download.ExpiresAt.UTC().Format("15:04 MST")
	require.Contains(t, ready[0].Text, expiry, "expiry shown with its zone")
	require.Contains(t, ready[0].Text, "4x")
	paid := customer[jobs.EmailPaymentReceived]
	require.Len(t, paid, 1)
	require.Contains(t, paid[0].Text, "USD 0.50")
	require.Len(t, customer[jobs.EmailExpiringSoon], 1, "reminded once, nobody downloaded")
	require.Len(t, admin[jobs.EmailImageReady], 1, "the admin gets a copy")
	require.Empty(t, customer[jobs.EmailFailedRefunded])

	got := waitEvents(t, created.ID, 3)
	// Deliveries run concurrently and are retried: they may arrive in any
	// order; timestamp orders them, as receivers are told to.
	slices.SortStableFunc(got, func(a, b events.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	var types []string
	for _, e := range got {
		types = append(types, string(e.Type))
		require.Equal(t, events.NewID(created.ID, e.Type, 0), e.ID, "stable ID")
	}
	require.Equal(t, []string{jobs.HookJobCreated, jobs.HookPaymentCompleted, jobs.HookJobCompleted}, types)
	require.Equal(t, "completed", got[2].Data.Status)
	require.Equal(t, int64(50), got[2].Data.AmountPaidCents)
	for _, e := range got {
		require.Equal(t, 2, hooks.attemptsOf(e.ID), "refused once, then accepted once")
	}
	requireClosedEventually(t, created.ID, downloadTTL+20*time.Second)
	recordHistory(t, created.ID, "paid_reminded_expired")
}

func TestFailedJobEmailsTheRefund(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.FailNext = 1 })
	created := paidJob(t)
	j := waitRefunded(t, created.ID, processingTimeout+30*time.Second)
	customer, _ := waitMails(t, created.ID, jobs.EmailFailedRefunded)
	refund := customer[jobs.EmailFailedRefunded]
	require.Len(t, refund, 1)
	require.Contains(t, refund[0].Text, fmt.Sprintf("USD %d.%02d", *j.RefundAmountCents/100, *j.RefundAmountCents%100))
	require.NotContains(t, refund[0].Text, *j.FailureDetail, "no internal detail in the customer's email")
	got := waitEvents(t, created.ID, 3)
	slices.SortStableFunc(got, func(a, b events.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	require.Equal(t, events.Type(jobs.HookJobFailed), got[2].Type)
	require.Equal(t, jobs.ReasonUpsamplerFailed, got[2].Data.FailureReason)
}

func TestAdminResendAndNewToken(t *testing.T) {
	created := paidJob(t)
	waitFor(t, created.ID, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	var before api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &before))

	var info jobs.DownloadInfo
	require.Equal(t, http.StatusOK, call(t, "POST", "/v1/admin/jobs/"+created.ID+"/resend-download", admin(), `{"requested_by":"e2e"}`, nil, &info))
	require.True(t, info.ExpiresAt.After(before.Download.ExpiresAt), "expiry extended")
	var after api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &after))
	require.Equal(t, before.Download.URL, after.Download.URL, "resend keeps the link")

	require.Equal(t, http.StatusOK, call(t, "POST", "/v1/admin/jobs/"+created.ID+"/new-download-token", admin(), nil, nil, &info))
	var fresh api.JobView
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil, &fresh))
	require.NotEqual(t, before.Download.URL, fresh.Download.URL, "a fresh token")
	resp, err := apiClient.Get(before.Download.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the old link stops working")
	resp, err = apiClient.Get(fresh.Download.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	customer, _ := waitMails(t, created.ID, jobs.EmailImageReady)
	deadline := time.Now().Add(20 * time.Second)
	for len(customer[jobs.EmailImageReady]) < 3 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		customer, _ = mailsOf(t, created.ID)
	}
	require.Len(t, customer[jobs.EmailImageReady], 3, "delivered, resent, re-issued")

	requireClosedEventually(t, created.ID, 2*downloadTTL+20*time.Second)
	recordHistory(t, created.ID, "download_resent_reissued")

	// A job that is not delivered refuses both, with 409.
	other, _ := newJob(t, 200, 200, "4x", "")
	var out errorAnswer
	require.Equal(t, http.StatusConflict, call(t, "POST", "/v1/admin/jobs/"+other.ID+"/resend-download", admin(), nil, nil, &out))
	require.Equal(t, "not_downloadable", out.Error.Code)
}

func TestCostReport(t *testing.T) {
	var r api.CostReport
	// Yesterday too: the jobs paid before this test may be on the other
	// side of midnight (UTC).
	now := time.Now().UTC()
	from, to := now.AddDate(0, 0, -1).Format("2006-01-02"), now.Format("2006-01-02")
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/admin/reports/costs?from="+from+"&to="+to, admin(), nil, nil, &r))
	require.NotEmpty(t, r.Days)
	require.LessOrEqual(t, len(r.Days), 2)
	var sum store.CostDay
	for _, d := range r.Days {
		require.Equal(t, d.RevenueCents-d.UpsamplerCost-d.RefundsCents, d.MarginCents, "day %s", d.Day)
		sum.PaidJobs += d.PaidJobs
		sum.RevenueCents += d.RevenueCents
		sum.UpsamplerCost += d.UpsamplerCost
		sum.RefundsCents += d.RefundsCents
		sum.MarginCents += d.MarginCents
	}
	require.Positive(t, sum.PaidJobs)
	sum.Day = r.Total.Day
	require.Equal(t, sum, r.Total)
	var out errorAnswer
	require.Equal(t, http.StatusUnprocessableEntity, call(t, "GET", "/v1/admin/reports/costs?from=2026-13-01", admin(), nil, nil, &out))
	require.Equal(t, http.StatusUnprocessableEntity, call(t, "GET", "/v1/admin/reports/costs?from=2026-02-01&to=2026-01-01", admin(), nil, nil, &out))
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", "/v1/admin/reports/costs", "", nil, nil, &out))
}
