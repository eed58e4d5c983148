//go:build integration

package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	hooks "hires/internal/events"
	"hires/internal/store"
)

func TestWebhookEndpoints(t *testing.T) {
	ctx := t.Context()
	s, _ := newDatabase(t)
	secret := hooks.NewSecret()
	a, err := s.CreateEndpoint(ctx, store.NewEndpoint{URL: "https://a.example/h", Description: "a",
		Types: []hooks.Type{hooks.JobCreated, hooks.JobFailed}, Secret: secret})
	require.NoError(t, err)
	require.True(t, a.Enabled())
	require.Equal(t, secret, a.Secret)
	b, err := s.CreateEndpoint(ctx, store.NewEndpoint{URL: "https://b.example/h", Types: []hooks.Type{hooks.JobCompleted}, Secret: hooks.NewSecret()})
	require.NoError(t, err)

	got, err := s.Endpoint(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.Types, got.Types)
	for _, id := range []string{"nope", "00000000-0000-0000-0000-000000000000"} {
		_, err = s.Endpoint(ctx, id)
		require.ErrorIs(t, err, store.ErrEndpointNotFound)
		_, err = s.UpdateEndpoint(ctx, id, store.EndpointUpdate{})
		require.ErrorIs(t, err, store.ErrEndpointNotFound)
		_, err = s.RotateSecret(ctx, id, hooks.NewSecret(), time.Hour)
		require.ErrorIs(t, err, store.ErrEndpointNotFound)
	}

	// Subscription filtering, and disabled endpoints left out.
	subscribed := func(typ hooks.Type) []string {
		eps, err := s.Endpoints(ctx, typ)
		require.NoError(t, err)
		var ids []string
		for _, e := range eps {
			ids = append(ids, e.ID)
		}
		return ids
	}
	tests := []struct {
		typ  hooks.Type
		want []string
	}{
		{hooks.JobCreated, []string{a.ID}},
		{hooks.JobFailed, []string{a.ID}},
		{hooks.JobCompleted, []string{b.ID}},
		{hooks.PaymentCompleted, nil},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, subscribed(tt.typ), tt.typ)
	}
	all, err := s.Endpoints(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 2)

	on, off := false, true
	desc := "renamed"
	u, err := s.UpdateEndpoint(ctx, a.ID, store.EndpointUpdate{Disabled: &off, Description: &desc, Types: []hooks.Type{hooks.JobCompleted}})
	require.NoError(t, err)
	require.False(t, u.Enabled())
	require.Equal(t, "renamed", u.Description)
	require.Equal(t, "https://a.example/h", u.URL, "left as it was")
	firstOff := *u.DisabledAt
	u, err = s.UpdateEndpoint(ctx, a.ID, store.EndpointUpdate{Disabled: &off})
	require.NoError(t, err)
	require.Equal(t, firstOff, *u.DisabledAt, "disabling again keeps the first time")
	require.Equal(t, []string{b.ID}, subscribed(hooks.JobCompleted))
	u, err = s.UpdateEndpoint(ctx, a.ID, store.EndpointUpdate{Disabled: &on})
	require.NoError(t, err)
	require.True(t, u.Enabled())
	require.Equal(t, []string{a.ID, b.ID}, subscribed(hooks.JobCompleted))
	require.Nil(t, subscribed(hooks.JobCreated), "unsubscribed")
}

func TestWebhookSecretRotation(t *testing.T) {
	ctx := t.Context()
	s, _ := newDatabase(t)
	first := hooks.NewSecret()
	e, err := s.CreateEndpoint(ctx, store.NewEndpoint{URL: "https://a.example/h", Types: hooks.Types, Secret: first})
	require.NoError(t, err)
	require.Equal(t, []string{first}, e.SigningSecrets(time.Now()))

	second := hooks.NewSecret()
	e, err = s.RotateSecret(ctx, e.ID, second, time.Hour)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), *e.PreviousExpiresAt, time.Minute)
	require.Equal(t, []string{second, first}, e.SigningSecrets(time.Now()), "both during the overlap")
	require.Equal(t, []string{second}, e.SigningSecrets(time.Now().Add(2*time.Hour)), "the old one expires")

	third := hooks.NewSecret()
	e, err = s.RotateSecret(ctx, e.ID, third, 0)
	require.NoError(t, err)
	require.Equal(t, second, e.PreviousSecret, "only two secrets are ever kept")
	require.Equal(t, []string{third}, e.SigningSecrets(time.Now().Add(time.Second)), "no overlap")
}

func TestWebhookEventsAndDeliveries(t *testing.T) {
	ctx := t.Context()
	s, _ := newDatabase(t)
	n := newJobInput()
	_, _, err := s.CreateJob(ctx, n)
	require.NoError(t, err)
	ep, err := s.CreateEndpoint(ctx, store.NewEndpoint{URL: "https://a.example/h", Types: hooks.Types, Secret: hooks.NewSecret()})
	require.NoError(t, err)

	id := hooks.NewID(n.ID, hooks.JobCompleted, 0)
	ev, err := s.SaveEvent(ctx, store.StoredEvent{ID: id, Type: hooks.JobCompleted, JobID: n.ID, Payload: []byte(`{"a": 1}`)})
	require.NoError(t, err)
	require.Equal(t, []byte(`{"a": 1}`), ev.Payload, "stored byte for byte")
	ev, err = s.SaveEvent(ctx, store.StoredEvent{ID: id, Type: hooks.JobCompleted, JobID: n.ID, Payload: []byte(`{"a":2}`)})
	require.NoError(t, err)
	require.Equal(t, []byte(`{"a": 1}`), ev.Payload, "a retry sends the first bytes")
	_, err = s.Event(ctx, "evt_missing")
	require.ErrorIs(t, err, store.ErrEventNotFound)

	settled := func() bool {
		ok, err := s.Settled(ctx, ep.ID, id)
		require.NoError(t, err)
		return ok
	}
	log := func(o hooks.Outcome, manual bool) store.Delivery {
		d, err := s.LogDelivery(ctx, store.Delivery{EndpointID: ep.ID, EventID: id, Outcome: o, StatusCode: 503, Error: "busy", DurationMS: 12, Manual: manual})
		require.NoError(t, err)
		return d
	}
	require.False(t, settled())
	require.Equal(t, 1, log(hooks.Failed, false).Attempt)
	require.False(t, settled(), "a retryable failure settles nothing")
	require.Equal(t, 2, log(hooks.Rejected, true).Attempt)
	require.False(t, settled(), "a manual rejection stops no automatic retry")
	require.Equal(t, 3, log(hooks.Delivered, false).Attempt)
	require.True(t, settled())

	page, err := s.Deliveries(ctx, ep.ID, 0, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Equal(t, []int{3, 2}, []int{page[0].Attempt, page[1].Attempt}, "newest first")
	require.Equal(t, hooks.JobCompleted, page[0].EventType)
	require.True(t, page[1].Manual)
	require.Equal(t, 503, page[1].StatusCode)
	rest, err := s.Deliveries(ctx, ep.ID, page[1].ID, 2)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Equal(t, 1, rest[0].Attempt)

	// The log keeps the newest MaxDeliveriesPerEvent attempts per event.
	for range store.MaxDeliveriesPerEvent {
		log(hooks.Failed, false)
	}
	all, err := s.Deliveries(ctx, ep.ID, 0, 1000)
	require.NoError(t, err)
	require.Len(t, all, store.MaxDeliveriesPerEvent)
	require.Equal(t, 3+store.MaxDeliveriesPerEvent, all[0].Attempt, "numbering goes on")
	require.Equal(t, 4, all[len(all)-1].Attempt, "the oldest were dropped")
}
