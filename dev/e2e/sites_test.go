//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/internal/paysim"
	"hires/internal/sitekey"
)

// newSiteKey makes a key for site through the admin API.
func newSiteKey(t *testing.T, site string, perMinute *int) api.SiteKeyView {
	t.Helper()
	var k api.SiteKeyView
	require.Equal(t, http.StatusCreated, call(t, "POST", "/v1/admin/site-keys", admin(),
		api.CreateSiteKeyRequest{Name: "e2e " + site, Site: site, CreatePerMinute: perMinute}, nil, &k))
	require.True(t, sitekey.Valid(k.Key), "a fresh key %q", k.Key)
	noteSiteKey(k.Key)
	return k
}

func sampleOrder(w, h int) createReq {
	return createReq{ImageURL: stack.SampleImageURL(w, h), Resolution: "4x", Email: "buyer@example.com",
		PostID: 7, ImageWidth: w, ImageHeight: h}
}

// Only a request bearing an active site key creates a job; every other
// one is 401 with the usual error body, and changes nothing.
func TestSiteKeyRequiredToCreateJobs(t *testing.T) {
	k := newSiteKey(t, "auth-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	revoked := newSiteKey(t, "auth-revoked", nil)
	var after api.SiteKeyView
	require.Equal(t, http.StatusOK, call(t, "POST", "/v1/admin/site-keys/"+revoked.ID+"/revoke", admin(), nil, nil, &after))
	require.NotNil(t, after.RevokedAt)

	for _, tt := range []struct{ name, auth string }{
		{"no header", ""},
		{"not bearer", "Basic " + k.Key},
		{"malformed key", "Bearer hires_sk_short"},
		{"unknown key", "Bearer " + sitekey.New()},
		{"revoked key", "Bearer " + revoked.Key},
		{"admin token is not a site key", "Bearer " + admin()},
		{"a customer's access token is not a site key", "Bearer " + mustNewJob(t).AccessToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := take(t)
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			a := send(t, "POST", "/v1/jobs", "", sampleOrder(200, 200), hdr)
			require.Equal(t, http.StatusUnauthorized, a.status, string(a.body))
			var e errorAnswer
			require.NoError(t, json.Unmarshal(a.body, &e))
			require.Equal(t, "unauthorized", e.Error.Code)
			require.NotEmpty(t, a.header.Get("WWW-Authenticate"))
			require.Equal(t, before, take(t), "nothing changed")
		})
	}
	a := send(t, "POST", "/v1/jobs", k.Key, sampleOrder(200, 200), nil)
	require.Equal(t, http.StatusCreated, a.status, string(a.body))
}

func mustNewJob(t *testing.T) api.CreateJobResponse {
	t.Helper()
	created, status := newJob(t, 120, 100, "4x", "")
	require.Equal(t, http.StatusCreated, status)
	return created
}

// A site rotates without downtime: two keys work at once, and revoking the
// old one leaves the new one working. Keys are made and revoked with the
// hires command, as an operator would.
func TestSiteKeyRotationWithTheCommand(t *testing.T) {
	site := "rotate-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	hires := func(args ...string) string {
		cmd := exec.Command(hiresBin, append([]string{"keys", args[0], "-api", stack.APIURL}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "ADMIN_TOKEN="+admin())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	keyIn := regexp.MustCompile(`hires_sk_[A-Za-z0-9]{43}`)
	idIn := regexp.MustCompile(`Created key (sk_[0-9a-f-]+)`)
	out := hires("create", "--name", "old server", "--site", site)
	oldKey, oldID := keyIn.FindString(out), idIn.FindStringSubmatch(out)
	require.NotEmpty(t, oldKey, out)
	require.Len(t, oldID, 2, out)
	newKey := keyIn.FindString(hires("create", "--name", "new server", "--site", site))
	require.NotEmpty(t, newKey)
	noteSiteKey(oldKey)
	noteSiteKey(newKey)

	order := sampleOrder(150, 150)
	first := send(t, "POST", "/v1/jobs", oldKey, order, map[string]string{"Idempotency-Key": "rotating"})
	require.Equal(t, http.StatusCreated, first.status, string(first.body))
	// The site's other key replays the same job: idempotency is the site's.
	second := send(t, "POST", "/v1/jobs", newKey, order, map[string]string{"Idempotency-Key": "rotating"})
	require.Equal(t, http.StatusCreated, second.status)
	require.Equal(t, "true", second.header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.body), string(second.body))

	list := hires("list")
	require.Contains(t, list, oldID[1])
	require.NotContains(t, list, oldKey, "lists never show a whole key")
	require.Contains(t, list, oldKey[:len(sitekey.Prefix)+6], "but show its start")

	require.Contains(t, hires("revoke", oldID[1]), "Revoked key "+oldID[1])
	require.Equal(t, http.StatusUnauthorized, send(t, "POST", "/v1/jobs", oldKey, sampleOrder(150, 150), nil).status)
	require.Equal(t, http.StatusCreated, send(t, "POST", "/v1/jobs", newKey, sampleOrder(150, 150), nil).status)
}

// Idempotency as Stripe has it: the first answer replayed with
// Idempotent-Replayed, a different body refused, keys scoped per site, and
// a duplicate that arrives while the first request is in flight refused
// with 409; one job in every case.
func TestIdempotencyPerSite(t *testing.T) {
	siteA := newSiteKey(t, "idem-a-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	siteB := newSiteKey(t, "idem-b-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	key := map[string]string{"Idempotency-Key": "order-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	order := sampleOrder(180, 120)

	first := send(t, "POST", "/v1/jobs", siteA.Key, order, key)
	require.Equal(t, http.StatusCreated, first.status, string(first.body))
	require.Empty(t, first.header.Get("Idempotent-Replayed"))
	var created api.CreateJobResponse
	require.NoError(t, json.Unmarshal(first.body, &created))

	// The job moves on (paid); the replay is still the first answer.
	res, err := paysim.Pay(context.Background(), paysimOptions(), created.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	waitFor(t, created.ID, 30*time.Second, "paid", func(j api.AdminJob) bool { return j.PaidAt != nil })
	replay := send(t, "POST", "/v1/jobs", siteA.Key, order, key)
	require.Equal(t, http.StatusCreated, replay.status)
	require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
	require.JSONEq(t, string(first.body), string(replay.body), "the same body, access token included")

	other := order
	other.Resolution = "8x"
	a := send(t, "POST", "/v1/jobs", siteA.Key, other, key)
	require.Equal(t, http.StatusUnprocessableEntity, a.status)
	require.Contains(t, string(a.body), "idempotency_key_reused")

	// Another site's identical key and body is its own job, with its own token.
	b := send(t, "POST", "/v1/jobs", siteB.Key, order, key)
	require.Equal(t, http.StatusCreated, b.status)
	require.Empty(t, b.header.Get("Idempotent-Replayed"))
	var createdB api.CreateJobResponse
	require.NoError(t, json.Unmarshal(b.body, &createdB))
	require.NotEqual(t, created.ID, createdB.ID)
	require.NotEqual(t, created.AccessToken, createdB.AccessToken)

	// Concurrent duplicates: one creates, the others are refused while it
	// is in flight (or, arriving after, replayed).
	race := map[string]string{"Idempotency-Key": "race-" + strconv.FormatInt(time.Now().UnixNano(), 10)}
	const n = 8
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = send(t, "POST", "/v1/jobs", siteA.Key, order, race)
		})
	}
	close(start)
	wg.Wait()
	fresh, conflicts, ids := 0, 0, map[string]bool{}
	for _, a := range answers {
		switch {
		case a.status == http.StatusCreated:
			var r api.CreateJobResponse
			require.NoError(t, json.Unmarshal(a.body, &r))
			ids[r.ID] = true
			if a.header.Get("Idempotent-Replayed") == "" {
				fresh++
			}
		case a.status == http.StatusConflict:
			require.Contains(t, string(a.body), "idempotency_key_in_use")
			conflicts++
		default:
			t.Fatalf("concurrent duplicate: %d %s", a.status, a.body)
		}
	}
	require.Equal(t, 1, fresh, "exactly one request created the job")
	require.Len(t, ids, 1)
	require.Positive(t, conflicts, "duplicates in flight are refused")
}

// Each party sees its own: the customer and the site never see the
// shop's cost or markup; the site sees its references; admins see it all.
func TestEachPartySeesItsOwn(t *testing.T) {
	site := newSiteKey(t, "views-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	stranger := newSiteKey(t, "views-stranger", nil)
	a := send(t, "POST", "/v1/jobs", site.Key, sampleOrder(200, 100), nil)
	require.Equal(t, http.StatusCreated, a.status)
	var created api.CreateJobResponse
	require.NoError(t, json.Unmarshal(a.body, &created))
	accessTokens.Store(created.AccessToken, true)

	secret := []string{`"credits"`, `"cost_cents"`, `"markup_percent"`, `"margin_cents"`, `"email"`, `"customer_email"`}
	for _, v := range []struct {
		who, bearer string
		body        []byte
	}{
		{"creation answer", "", a.body},
		{"customer", created.AccessToken, nil},
		{"site", site.Key, nil},
	} {
		body := v.body
		if body == nil {
			got := send(t, "GET", "/v1/jobs/"+created.ID, v.bearer, nil, nil)
			require.Equal(t, http.StatusOK, got.status, v.who)
			body = got.body
		}
		for _, field := range secret {
			require.NotContains(t, string(body), field, "%s sees %s", v.who, field)
		}
		require.Contains(t, string(body), `"amount_cents":50`, v.who)
	}
	siteView := send(t, "GET", "/v1/jobs/"+created.ID, site.Key, nil, nil)
	require.Contains(t, string(siteView.body), `"post_id":7`)
	require.Contains(t, string(siteView.body), `"image_url"`)
	customer := send(t, "GET", "/v1/jobs/"+created.ID, created.AccessToken, nil, nil)
	require.NotContains(t, string(customer.body), `"image_url"`)

	require.Equal(t, http.StatusNotFound, send(t, "GET", "/v1/jobs/"+created.ID, stranger.Key, nil, nil).status,
		"another site's key does not see the job")
	require.Equal(t, http.StatusUnauthorized, send(t, "GET", "/v1/jobs/"+created.ID, sitekey.New(), nil, nil).status)

	adm := send(t, "GET", "/v1/admin/jobs/"+created.ID, admin(), nil, nil)
	for _, field := range []string{`"credits"`, `"cost_cents"`, `"markup_percent"`, `"email"`, `"site"`} {
		require.Contains(t, string(adm.body), field)
	}
}

// Creation is limited per site key, with the key's own limit when it has
// one; requests over it are 429 with Retry-After and another key is not
// affected.
func TestCreationLimitedPerKey(t *testing.T) {
	two := 2
	limited := newSiteKey(t, "limited-"+strconv.FormatInt(time.Now().UnixNano(), 36), &two)
	free := newSiteKey(t, "unlimited-"+strconv.FormatInt(time.Now().UnixNano(), 36), nil)
	bad := createReq{Resolution: "4x"} // refused after the limit is taken: no job is made
	var statuses []int
	var last answer
	for range 3 {
		last = send(t, "POST", "/v1/jobs", limited.Key, bad, nil)
		statuses = append(statuses, last.status)
	}
	require.Equal(t, []int{422, 422, 429}, statuses, "a burst of two, then limited")
	require.Contains(t, string(last.body), "rate_limited")
	wait, err := strconv.Atoi(last.header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, wait >= 1 && wait <= 31, "Retry-After %d s at 2 a minute", wait)
	require.Equal(t, http.StatusUnprocessableEntity, send(t, "POST", "/v1/jobs", free.Key, bad, nil).status)
}

// noteSiteKey has the history scan look for a key the tests made.
func noteSiteKey(k string) { noteSecret(k) }
