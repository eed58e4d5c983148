//go:build integration

package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/sitekey"
	"hires/internal/store"
)

func newSiteKey(t *testing.T, site string, perMinute *int) (string, store.SiteKey) {
	t.Helper()
	k := sitekey.New()
	rec, created, err := st.CreateSiteKey(t.Context(), store.NewSiteKey{Site: site, Name: "test " + site,
		Shown: sitekey.Shown(k), Hash: sitekey.Hash(k), CreatePerMinute: perMinute})
	require.NoError(t, err)
	require.True(t, created)
	return k, rec
}

func TestSiteKeys(t *testing.T) {
	ctx := t.Context()
	site := "shop-" + uuid.NewString()
	k1, rec1 := newSiteKey(t, site, nil)
	k2, rec2 := newSiteKey(t, site, ptr(5))

	// Both keys of the site authenticate at once (rotation without downtime).
	for _, k := range []string{k1, k2} {
		got, err := st.Authenticate(ctx, sitekey.Hash(k))
		require.NoError(t, err)
		assert.Equal(t, site, got.Site)
		require.NotNil(t, got.LastUsedAt, "Authenticate notes the use")
	}
	got, err := st.Authenticate(ctx, sitekey.Hash(k2))
	require.NoError(t, err)
	assert.Equal(t, ptr(5), got.CreatePerMinute)

	_, err = st.Authenticate(ctx, sitekey.Hash(sitekey.New()))
	assert.ErrorIs(t, err, store.ErrSiteKeyNotFound, "an unknown key")

	// Re-registering a key (make run's LOCAL_SITE_KEY) returns it unchanged.
	again, created, err := st.CreateSiteKey(ctx, store.NewSiteKey{Site: "other", Name: "again", Shown: sitekey.Shown(k1), Hash: sitekey.Hash(k1)})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, rec1.ID, again.ID)
	assert.Equal(t, site, again.Site)

	revoked, err := st.RevokeSiteKey(ctx, rec1.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	_, err = st.Authenticate(ctx, sitekey.Hash(k1))
	assert.ErrorIs(t, err, store.ErrSiteKeyNotFound, "a revoked key")
	_, err = st.Authenticate(ctx, sitekey.Hash(k2))
	assert.NoError(t, err, "the site's other key still works")

	twice, err := st.RevokeSiteKey(ctx, rec1.ID)
	require.NoError(t, err)
	assert.True(t, revoked.RevokedAt.Equal(*twice.RevokedAt), "revoking again keeps the first time")
	_, err = st.RevokeSiteKey(ctx, "sk_"+uuid.NewString())
	assert.ErrorIs(t, err, store.ErrSiteKeyNotFound)

	all, err := st.SiteKeys(ctx)
	require.NoError(t, err)
	var ids []string
	for _, k := range all {
		ids = append(ids, k.ID)
		assert.NotContains(t, k.Shown, k1[len(sitekey.Prefix)+6:], "lists never show a whole key")
	}
	assert.Contains(t, ids, rec1.ID)
	assert.Contains(t, ids, rec2.ID)
	assert.Equal(t, 0, countRows(t, `SELECT count(*) FROM site_keys WHERE key_hash = $1`, []byte(k1)), "the key itself is never stored")
}

func TestIdempotency(t *testing.T) {
	ctx := t.Context()
	const lease, ttl = time.Minute, 24 * time.Hour
	site := "shop-" + uuid.NewString()
	key, req := hash("key:"+site), hash("request:"+site)
	job1 := uuid.NewString()

	r, err := st.ReserveIdempotency(ctx, site, key, req, job1, lease, ttl)
	require.NoError(t, err)
	assert.Equal(t, store.Idempotency{JobID: job1}, r, "first use: the offered job")

	r, err = st.ReserveIdempotency(ctx, site, key, req, uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	assert.ErrorIs(t, r.Conflict, store.ErrIdempotencyInFlight, "a duplicate while the first is in flight")

	r, err = st.ReserveIdempotency(ctx, site, key, hash("another body"), uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	assert.ErrorIs(t, r.Conflict, store.ErrIdempotencyMismatch, "the same key with another body")

	// Another site's identical key is its own.
	job2 := uuid.NewString()
	r, err = st.ReserveIdempotency(ctx, "other-"+site, key, req, job2, lease, ttl)
	require.NoError(t, err)
	assert.Equal(t, store.Idempotency{JobID: job2}, r)

	// A released attempt (it failed in a way a retry can fix) is resumed with its job.
	require.NoError(t, st.ReleaseIdempotency(ctx, site, key))
	r, err = st.ReserveIdempotency(ctx, site, key, req, uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	assert.Equal(t, store.Idempotency{JobID: job1}, r, "resumes the first attempt's job")

	// Once answered, the answer is replayed, refusals included.
	require.NoError(t, st.CompleteIdempotency(ctx, site, key, 201, []byte(`{"id":"`+job1+`"}`)))
	r, err = st.ReserveIdempotency(ctx, site, key, req, uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	require.NotNil(t, r.Replay)
	assert.Equal(t, 201, r.Replay.Status)
	assert.JSONEq(t, `{"id":"`+job1+`"}`, string(r.Replay.Body))
	require.NoError(t, st.ReleaseIdempotency(ctx, site, key), "releasing an answered key changes nothing")
	r, err = st.ReserveIdempotency(ctx, site, key, req, uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	require.NotNil(t, r.Replay)

	// A lapsed lease (the API died mid-request) is taken over.
	crashed := hash("crashed:" + site)
	_, err = st.ReserveIdempotency(ctx, site, crashed, req, job1, time.Millisecond, ttl)
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	r, err = st.ReserveIdempotency(ctx, site, crashed, req, uuid.NewString(), lease, ttl)
	require.NoError(t, err)
	assert.Equal(t, store.Idempotency{JobID: job1}, r)

	// After the TTL the key is forgotten: a new request, a new job.
	_, err = pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE site = $1 AND key_hash = $2`, site, key)
	require.NoError(t, err)
	fresh := uuid.NewString()
	r, err = st.ReserveIdempotency(ctx, site, key, hash("new body"), fresh, lease, ttl)
	require.NoError(t, err)
	assert.Equal(t, store.Idempotency{JobID: fresh}, r)

	_, err = pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE site = $1`, site)
	require.NoError(t, err)
	n, err := st.ForgetIdempotencyKeys(ctx, ttl, 1000)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(2))
	assert.Equal(t, 0, countRows(t, `SELECT count(*) FROM idempotency_keys WHERE site = $1`, site))
}

// Many concurrent requests with one key: exactly one proceeds.
func TestIdempotencyConcurrentDuplicates(t *testing.T) {
	ctx := t.Context()
	site, key, req := "shop-"+uuid.NewString(), hash("key"), hash("req")
	const n = 12
	results := make([]store.Idempotency, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = st.ReserveIdempotency(ctx, site, key, req, uuid.NewString(), time.Minute, 24*time.Hour)
		})
	}
	close(start)
	wg.Wait()
	proceeded := 0
	for i, r := range results {
		require.NoError(t, errs[i])
		if r.Conflict == nil && r.Replay == nil {
			proceeded++
		} else {
			assert.ErrorIs(t, r.Conflict, store.ErrIdempotencyInFlight)
		}
	}
	assert.Equal(t, 1, proceeded)
}

// The limit is one shared allowance: two stores (two API replicas) on
// one database draw from the same bucket.
func TestAllowIsShared(t *testing.T) {
	ctx := t.Context()
	other, err := store.Open(ctx, pool.Config().ConnString())
	require.NoError(t, err)
	defer other.Close()
	bucket := "create:" + uuid.NewString()
	const perMinute, burst = 60, 4
	allowed := 0
	for i := range 10 {
		s := st
		if i%2 == 1 {
			s = other
		}
		ok, wait, err := s.Allow(ctx, bucket, perMinute, burst)
		require.NoError(t, err)
		if ok {
			allowed++
			assert.Zero(t, wait)
		} else {
			assert.GreaterOrEqual(t, wait, time.Second)
			assert.LessOrEqual(t, wait, 2*time.Second, "one request a second refills")
		}
	}
	// The burst, and perhaps one more if a second passed.
	assert.GreaterOrEqual(t, allowed, burst)
	assert.LessOrEqual(t, allowed, burst+1)

	ok, _, err := st.Allow(ctx, "create:"+uuid.NewString(), perMinute, burst)
	require.NoError(t, err)
	assert.True(t, ok, "another key has its own allowance")
	_, _, err = st.Allow(ctx, bucket, 0, 1)
	assert.Error(t, err)
}

// What the selling site's contract costs each request in the database:
// go test -tags integration -run '^$' -bench 'SiteKey|Allow|Idempotency' ./internal/store/
func BenchmarkSiteKeyAuthenticate(b *testing.B) {
	k := sitekey.New()
	_, _, err := st.CreateSiteKey(b.Context(), store.NewSiteKey{Site: "bench", Name: "bench", Shown: sitekey.Shown(k), Hash: sitekey.Hash(k)})
	require.NoError(b, err)
	for b.Loop() {
		if _, err := st.Authenticate(b.Context(), sitekey.Hash(k)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	bucket := "bench:" + uuid.NewString()
	for b.Loop() {
		if _, _, err := st.Allow(b.Context(), bucket, 1_000_000_000, 1_000_000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdempotency is a request's reservation and its kept answer.
func BenchmarkIdempotency(b *testing.B) {
	site, req, body := "bench-"+uuid.NewString(), hash("request"), []byte(`{"id":"x","status":"awaiting_payment"}`)
	for b.Loop() {
		key := hash(uuid.NewString())
		if _, err := st.ReserveIdempotency(b.Context(), site, key, req, uuid.NewString(), time.Minute, 24*time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := st.CompleteIdempotency(b.Context(), site, key, 201, body); err != nil {
			b.Fatal(err)
		}
	}
}
