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

	"hires/api/siteclient"
	"hires/internal/paysim"
)

// bearer adds a credential to the generated client's requests.
func bearer(v string) siteclient.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+v)
		return nil
	}
}

// A site integrates with the client generated from api/openapi.yaml alone:
// it creates a job (and replays it), follows it to completion with its key,
// and its customer reads it and downloads the image with the access token.
func TestSiteIntegratesWithTheGeneratedClient(t *testing.T) {
	ctx := t.Context()
	c, err := siteclient.NewClientWithResponses(stack.APIURL, siteclient.WithHTTPClient(apiClient))
	require.NoError(t, err)
	site := bearer(stack.SiteKey)

	order := "client-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	post := 99
	body := siteclient.CreateJobRequest{ImageUrl: stack.SampleImageURL(160, 120), Resolution: "4x",
		ImageWidth: 160, ImageHeight: 120, PostId: &post}
	created, err := c.CreateJobWithResponse(ctx, &siteclient.CreateJobParams{IdempotencyKey: &order}, body, site)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	job := created.JSON201
	require.NotNil(t, job)
	accessTokens.Store(job.AccessToken, true)
	require.Nil(t, created.Headers201.IdempotentReplayed)

	again, err := c.CreateJobWithResponse(ctx, &siteclient.CreateJobParams{IdempotencyKey: &order}, body, site)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, again.StatusCode())
	require.NotNil(t, again.Headers201.IdempotentReplayed)
	require.Equal(t, "true", *again.Headers201.IdempotentReplayed)
	require.Equal(t, job.Id, again.JSON201.Id)

	unauth, err := c.CreateJobWithResponse(ctx, nil, body)
	require.NoError(t, err)
	require.NotNil(t, unauth.JSON401, "no key: %d", unauth.StatusCode())
	require.Equal(t, "unauthorized", unauth.JSON401.Error.Code)

	res, err := paysim.Pay(ctx, paysimOptions(), job.Id.String())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.Body)

	var seen siteclient.SiteJobView
	require.Eventually(t, func() bool {
		a, err := c.GetJobWithResponse(ctx, job.Id, nil, site)
		require.NoError(t, err)
		require.NotNil(t, a.JSON200, "site view: %d %s", a.StatusCode(), a.Body)
		seen, err = a.JSON200.AsSiteJobView()
		require.NoError(t, err)
		return seen.Status == "completed"
	}, 60*time.Second, 300*time.Millisecond)
	require.Equal(t, post, seen.PostId)

	mine, err := c.GetJobWithResponse(ctx, job.Id, nil, bearer(job.AccessToken))
	require.NoError(t, err)
	require.NotNil(t, mine.JSON200)
	view, err := mine.JSON200.AsJobView()
	require.NoError(t, err)
	require.NotNil(t, view.Download)
	require.NotNil(t, view.Download.Url)
	tok := (*view.Download.Url)[strings.LastIndexByte(*view.Download.Url, '/')+1:]
	file, err := c.DownloadWithResponse(ctx, tok, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, file.StatusCode())
	require.True(t, strings.HasPrefix(string(file.Body), "\x89PNG"), "a PNG")
}
