//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"hires/api"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// While PostgreSQL is away every route that needs it answers a retryable
// 503 (never a 500) with the usual error body, and nothing is left half
// done: once it is back, the same job creation with the same
// Idempotency-Key makes one job, and the job read during the outage reads.
func TestEveryRouteAnswers503WhilePostgreSQLIsAway(t *testing.T) {
	require.NotNil(t, stack.Postgres, "the suite's PostgreSQL is started by the stack")
	created := mustNewJob(t)
	order := map[string]string{"Idempotency-Key": "outage-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	body := sampleOrder(130, 100)

	restarted := make(chan error, 1)
	go func() { restarted <- stack.Postgres.Restart(context.Background(), 8*time.Second) }()
	// Wait for the outage to show: the job's own read fails.
	require.Eventually(t, func() bool {
		return send(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil).status == http.StatusServiceUnavailable
	}, 10*time.Second, 100*time.Millisecond)

	for _, tt := range []struct {
		name, method, path, bearer string
		body                       any
		header                     map[string]string
	}{
		{"create a job", "POST", "/v1/jobs", stack.SiteKey, body, order},
		{"the customer reads the job", "GET", "/v1/jobs/" + created.ID, created.AccessToken, nil, nil},
		{"the site reads the job", "GET", "/v1/jobs/" + created.ID, stack.SiteKey, nil, nil},
		{"a download", "GET", "/v1/downloads/" + strings.Repeat("A", 64), "", nil, nil},
		{"an admin lists jobs", "GET", "/v1/admin/jobs", admin(), nil, nil},
		{"an admin reads a job", "GET", "/v1/admin/jobs/" + created.ID, admin(), nil, nil},
		{"an admin lists site keys", "GET", "/v1/admin/site-keys", admin(), nil, nil},
	} {
		a := send(t, tt.method, tt.path, tt.bearer, tt.body, tt.header)
		require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", tt.name, a.body)
		var e errorAnswer
		require.NoError(t, json.Unmarshal(a.body, &e), tt.name)
		require.Contains(t, []string{"unavailable", "timeout"}, e.Error.Code, tt.name)
	}
	page := send(t, "GET", "/jobs/"+created.ID+"?token="+created.AccessToken, "", nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, page.status, "the customer's page")
	require.NoError(t, <-restarted)

	// Back: the retry makes the job, once, and reads work again.
	retryCreation(t, body, order, 30*time.Second)
	require.Equal(t, http.StatusOK, send(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil).status)
}

// While Temporal is away, a route that needs it (a job's creation, Stripe's
// payment webhook, the page's simulated payment) answers a retryable 503
// within its deadline, and one that needs only PostgreSQL keeps answering.
// Nothing is half done: back up, the same creation with the same
// Idempotency-Key makes one job, and Stripe's redelivery of the payment
// completes the job. Two outages as clients meet them on a cluster: the
// frontend gone (connections refused), and the history service gone (the
// frontend up but unable to serve).
func TestTemporalRoutesAnswer503WhileTemporalIsAway(t *testing.T) {
	if stack.TemporalCluster == nil {
		t.Skip("needs Temporal's roles as processes: make test-cluster")
	}
	for i, role := range []string{"frontend", "history"} {
		t.Run(role+" away", func(t *testing.T) {
			// Awaiting payment until Stripe's redelivery, however long
			// the outage lasts.
			unpaid := longWindowJob(t, 120, 100)
			order := map[string]string{"Idempotency-Key": "temporal-outage-" + role + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
			body := sampleOrder(140+10*i, 105+10*i) // the order's own image, to count its jobs

			require.NoError(t, stack.TemporalCluster.Kill(role))
			revived := false
			t.Cleanup(func() {
				if !revived {
					_ = stack.TemporalCluster.Revive(context.Background(), role)
				}
			})
			started := time.Now()
			a := send(t, "POST", "/v1/jobs", stack.SiteKey, body, order)
			took := time.Since(started)
			require.Equal(t, http.StatusServiceUnavailable, a.status, "create a job: %s", a.body)
			require.NotEmpty(t, a.header.Get("Retry-After"), "create a job")
			t.Logf("POST /v1/jobs with Temporal's %s away: 503 in %s", role, took.Round(time.Millisecond))

			paid, err := paysim.Pay(context.Background(), paysimOptions(), unpaid.ID)
			require.NoError(t, err)
			require.Equal(t, http.StatusServiceUnavailable, paid.Status, "Stripe's payment webhook: Stripe retries a 503: %s", paid.Body)

			for _, tt := range []struct{ name, path, bearer string }{
				{"the customer reads the job", "/v1/jobs/" + unpaid.ID, unpaid.AccessToken},
				{"an admin lists jobs", "/v1/admin/jobs", admin()},
			} {
				require.Equal(t, http.StatusOK, send(t, "GET", tt.path, tt.bearer, nil, nil).status, tt.name)
			}

			revivedAt := time.Now()
			require.NoError(t, stack.TemporalCluster.Revive(context.Background(), role))
			revived = true
			again := retryCreation(t, body, order, 60*time.Second)
			// One job for the order: the refused attempt left nothing behind.
			db, err := pgx.Connect(context.Background(), stack.Env["DATABASE_URL"])
			require.NoError(t, err)
			defer db.Close(context.Background())
			var n int
			require.NoError(t, db.QueryRow(context.Background(),
				"select count(*) from jobs where image_url = $1 and created_at >= $2", body.ImageURL, started).Scan(&n))
			require.Equal(t, 1, n, "one job for the order")
			_, err = temporal.DescribeWorkflowExecution(context.Background(), jobs.WorkflowID(again.ID), "")
			require.NoError(t, err, "its workflow runs")

			// Stripe redelivers the payment (after minutes: the worker's
			// pollers, backing off up to 10s each while Temporal was away,
			// are back by then): the job completes.
			waitPolling(t, revivedAt)
			require.Eventually(t, func() bool {
				res, err := paysim.Pay(context.Background(), paysimOptions(), unpaid.ID)
				return err == nil && res.Status == http.StatusOK
			}, 60*time.Second, 500*time.Millisecond)
			waitFor(t, unpaid.ID, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
		})
	}
}

// retryCreation repeats a creation refused during an outage until it
// makes the job, and shows that one more try replays that same job.
func retryCreation(t *testing.T, body createReq, order map[string]string, within time.Duration) api.CreateJobResponse {
	t.Helper()
	var created api.CreateJobResponse
	require.Eventually(t, func() bool {
		a := send(t, "POST", "/v1/jobs", stack.SiteKey, body, order)
		if a.status != http.StatusCreated {
			return false
		}
		require.NoError(t, json.Unmarshal(a.body, &created))
		return true
	}, within, 200*time.Millisecond)
	accessTokens.Store(created.AccessToken, true)
	twice := send(t, "POST", "/v1/jobs", stack.SiteKey, body, order)
	require.Equal(t, http.StatusCreated, twice.status)
	require.Equal(t, "true", twice.header.Get("Idempotent-Replayed"))
	var replayed api.CreateJobResponse
	require.NoError(t, json.Unmarshal(twice.body, &replayed))
	require.Equal(t, created.ID, replayed.ID)
	return created
}

// waitPolling waits until the worker polls the task queue for both
// workflow and activity tasks again, with polls begun after since.
func waitPolling(t *testing.T, since time.Time) {
	t.Helper()
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		require.Eventually(t, func() bool {
			tq, err := temporal.DescribeTaskQueue(context.Background(), jobs.TaskQueue, typ)
			if err != nil {
				return false
			}
			for _, p := range tq.GetPollers() {
				if p.GetLastAccessTime().AsTime().After(since) {
					return true
				}
			}
			return false
		}, 60*time.Second, 200*time.Millisecond, "the worker polls for %s tasks again", typ)
	}
}
