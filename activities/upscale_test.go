//go:build integration

package activities_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/internal/upsampler"
)

// fakeUpsampler answers submissions with err, or accepts them as up_<n>.
type fakeUpsampler struct {
	mu       sync.Mutex
	err      error
	webhooks []string
}

func (f *fakeUpsampler) Submit(_ context.Context, r upsampler.SubmitRequest) (upsampler.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.webhooks = append(f.webhooks, r.WebhookURL)
	if f.err != nil {
		return upsampler.Job{}, f.err
	}
	return upsampler.Job{ID: "up_" + string(rune('0'+len(f.webhooks))), Status: upsampler.StatusInQueue}, nil
}

func (f *fakeUpsampler) Status(context.Context, string) (upsampler.Job, error) {
	return upsampler.Job{}, errors.New("not used")
}

func (f *fakeUpsampler) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.webhooks...)
}

func submit(t *testing.T, up *fakeUpsampler, in activities.SubmitUpscaleInput) (activities.UpscaleStatus, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(&activities.Activities{Store: refundStore, Upsampler: up, PublicBaseURL: "https://hires.example.com"})
	v, err := env.ExecuteActivity((&activities.Activities{}).SubmitUpscale, in)
	var st activities.UpscaleStatus
	if err == nil {
		require.NoError(t, v.Get(&st))
	}
	return st, err
}

// Upsampler is never sent the same submission twice: an answer that was
// lost leaves the job possibly at Upsampler, and a retry of that submission
// is told so instead of sending the image again.
func TestSubmitUpscaleNeverSendsASubmissionTwice(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		ambiguous bool
	}{
		{"gateway timeout after sending", &upsampler.APIError{StatusCode: http.StatusGatewayTimeout, Message: "upstream timed out"}, true},
		{"connection lost after sending", &url.Error{Op: "Post", URL: "https://upsampler.com/api/v1/precise-upscale", Err: errors.New("EOF")}, true},
		{"rate limited: nothing was done", &upsampler.APIError{StatusCode: http.StatusTooManyRequests, Message: "slow down"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newRefundJob(t)
			in := activities.SubmitUpscaleInput{JobID: job, ImageURL: "https://images.example.com/a.png", Factor: 4, Submission: 1}
			up := &fakeUpsampler{err: tt.err}
			_, err := submit(t, up, in)
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			if tt.ambiguous {
				require.True(t, errors.As(err, &appErr), "%v", err)
				assert.Equal(t, activities.ErrTypeUpsamplerAmbiguous, appErr.Type())
				assert.True(t, appErr.NonRetryable())
			} else if errors.As(err, &appErr) {
				assert.False(t, appErr.NonRetryable())
			}

			// The same submission again (a retry, or after a crash).
			up.mu.Lock()
			up.err = nil
			up.mu.Unlock()
			st, err := submit(t, up, in)
			if tt.ambiguous {
				require.True(t, errors.As(err, &appErr), "%v", err)
				assert.Equal(t, activities.ErrTypeUpsamplerAmbiguous, appErr.Type())
				assert.Len(t, up.sent(), 1, "not sent again")
			} else {
				require.NoError(t, err)
				assert.Equal(t, "up_2", st.UpsamplerJobID)
				assert.Len(t, up.sent(), 2, "Upsampler took nothing the first time")
			}

			if !tt.ambiguous {
				return
			}
			// The next submission is sent, with its own callback URL.
			in.Submission = 2
			up.webhooks = nil
			st, err = submit(t, up, in)
			require.NoError(t, err)
			require.Len(t, up.sent(), 1)
			assert.Equal(t, "https://hires.example.com/v1/webhooks/upsampler/"+job+"/secret-"+job+"?s=2", up.sent()[0])
			got, err := refundStore.Get(t.Context(), job)
			require.NoError(t, err)
			require.NotNil(t, got.UpsamplerJobID)
			assert.Equal(t, st.UpsamplerJobID, *got.UpsamplerJobID, "recorded at once")
		})
	}
}
