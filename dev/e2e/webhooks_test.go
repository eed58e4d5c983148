//go:build integration

package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/internal/adminclient"
	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/store"
)

// An endpoint registered through the admin API gets only the types it
// subscribed to, signed per Standard Webhooks; after a rotation each
// delivery verifies with either secret; the log shows every attempt; a
// manual redelivery repeats the event byte for byte under its webhook-id.
func TestWebhookEndpointLifecycle(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(hooks.schemas, false)
	defer r.srv.Close()
	var ep api.WebhookEndpoint
	require.Equal(t, http.StatusCreated, call(t, "POST", "/v1/admin/webhooks", admin(), map[string]any{
		"url": r.srv.URL + "/money", "description": "accounting", "event_types": []string{"payment.completed", "job.completed"},
	}, nil, &ep))
	require.NoError(t, r.trust(ep.Secret))
	require.Equal(t, []events.Type{events.PaymentCompleted, events.JobCompleted}, ep.EventTypes)

	created := paidJob(t)
	waitFor(t, created.ID, 30*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	// The suite's receiver, subscribed to everything, sees job.created;
	// once it has all three, this one has had its chance at all of them.
	waitEvents(t, created.ID, 3)
	deadline := time.Now().Add(30 * time.Second)
	for len(r.of(created.ID)) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	got := r.of(created.ID)
	require.Len(t, got, 2, "payment.completed and job.completed only")
	types := map[events.Type]events.Event{}
	for _, e := range got {
		types[e.Type] = e
		require.Equal(t, events.NewID(created.ID, e.Type, 0), e.ID)
	}
	require.Contains(t, types, events.PaymentCompleted)
	require.Contains(t, types, events.JobCompleted)
	require.Empty(t, r.invalidRequests())
	completed := types[events.JobCompleted]
	first := r.deliveriesOf(completed.ID)
	require.Len(t, first, 1)
	require.NotContains(t, first[0].signature, " ", "one secret, one signature")

	// Rotate: the receiver now checks each delivery against the old and
	// the new secret alone, so both signatures must be there and valid.
	c := adminclient.Client{BaseURL: stack.APIURL, Token: admin()}
	rotated, err := c.Rotate(ctx, ep.ID)
	require.NoError(t, err)
	require.NotEqual(t, ep.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt)
	require.NoError(t, r.trust(ep.Secret, rotated.Secret))

	var manual store.Delivery
	require.Equal(t, http.StatusOK, call(t, "POST", "/v1/admin/webhooks/"+ep.ID+"/redeliver", admin(),
		map[string]string{"event_id": completed.ID}, nil, &manual))
	require.Equal(t, events.Delivered, manual.Outcome, manual.Error)
	require.True(t, manual.Manual)
	require.Equal(t, 2, manual.Attempt)
	again := r.deliveriesOf(completed.ID)
	require.Len(t, again, 2, "the same webhook-id arrived again")
	require.Equal(t, first[0].body, again[1].body, "byte for byte")
	require.Len(t, strings.Split(again[1].signature, " "), 2, "one signature per valid secret")
	require.Empty(t, r.invalidRequests())

	// The log, newest first: the manual redelivery, then the automatic ones.
	// (Other tests' jobs complete meanwhile: their events are logged too.)
	var page api.WebhookDeliveries
	require.Equal(t, http.StatusOK, call(t, "GET", "/v1/admin/webhooks/"+ep.ID+"/deliveries?limit=100", admin(), nil, nil, &page))
	mine := map[string]bool{completed.ID: true, types[events.PaymentCompleted].ID: true}
	var log []store.Delivery
	for _, d := range page.Deliveries {
		if mine[d.EventID] {
			log = append(log, d)
		}
	}
	require.Len(t, log, 3)
	require.Equal(t, manual.ID, log[0].ID)
	require.True(t, log[0].Manual)
	for _, d := range log[1:] {
		require.False(t, d.Manual)
		require.Equal(t, events.Delivered, d.Outcome)
		require.Equal(t, http.StatusNoContent, d.StatusCode)
		require.Equal(t, 1, d.Attempt)
	}
	require.Greater(t, log[0].ID, log[1].ID)
	// Pages of two, each continuing before the last, walk the same log.
	var walked []int64
	before := ""
	for range 100 {
		var p api.WebhookDeliveries
		require.Equal(t, http.StatusOK, call(t, "GET", "/v1/admin/webhooks/"+ep.ID+"/deliveries?limit=2"+before, admin(), nil, nil, &p))
		require.LessOrEqual(t, len(p.Deliveries), 2)
		for _, d := range p.Deliveries {
			walked = append(walked, d.ID)
		}
		if p.NextBefore == 0 {
			break
		}
		before = "&before=" + strconv.FormatInt(p.NextBefore, 10)
	}
	for i := 1; i < len(walked); i++ {
		require.Greater(t, walked[i-1], walked[i], "newest first, no repeats")
	}
	for _, d := range page.Deliveries {
		require.Contains(t, walked, d.ID, "pages continue where the last one ended")
	}

	// Disabled: no more events for it.
	var off api.WebhookEndpoint
	require.Equal(t, http.StatusOK, call(t, "PATCH", "/v1/admin/webhooks/"+ep.ID, admin(), map[string]any{"disabled": true}, nil, &off))
	require.True(t, off.Disabled)

	// Bad input answers 422 with the field.
	var bad errorAnswer
	require.Equal(t, http.StatusUnprocessableEntity, call(t, "POST", "/v1/admin/webhooks", admin(),
		map[string]any{"url": "https://user:pw@example.com/h", "event_types": []string{"job.created"}}, nil, &bad))
	require.Equal(t, "invalid_url", bad.Error.Code)
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", "/v1/admin/webhooks", "", nil, nil, &bad))
}
