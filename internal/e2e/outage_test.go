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

	"github.com/stretchr/testify/require"

	"hires/api"
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
	var again api.CreateJobResponse
	require.Eventually(t, func() bool {
		a := send(t, "POST", "/v1/jobs", stack.SiteKey, body, order)
		if a.status != http.StatusCreated {
			return false
		}
		require.NoError(t, json.Unmarshal(a.body, &again))
		return true
	}, 30*time.Second, 200*time.Millisecond)
	accessTokens.Store(again.AccessToken, true)
	twice := send(t, "POST", "/v1/jobs", stack.SiteKey, body, order)
	require.Equal(t, http.StatusCreated, twice.status)
	require.Equal(t, "true", twice.header.Get("Idempotent-Replayed"))
	require.Equal(t, http.StatusOK, send(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil).status)
}
