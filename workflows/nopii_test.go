package workflows

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"hires/internal/jobs"
)

// customerData matches what must not reach Temporal: an email address, a
// link with a token, a Checkout URL, or a field that carried one of them.
var customerData = regexp.MustCompile(`[\w.+-]+@[\w-]+\.[\w.]+|token=|checkout\.stripe\.com|"(Email|CustomerEmail|PageURL|SuccessURL|CancelURL|URL)"`)

// A job as the API starts it now, paid and delivered with an admin resend:
// no activity input, update result or query result holds customer data,
// and no search attribute holds any.
func TestNoCustomerDataInMessages(t *testing.T) {
	h := newHarness(t)
	h.upsampler(queued, success)
	h.stripe(time.Minute, paid("evt_1"))
	var found []string
	note := func(where string, v any) {
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		if m := customerData.FindString(string(raw)); m != "" {
			found = append(found, where+": "+m+" in "+string(raw))
		}
	}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in map[string]any
		require.NoError(t, args.Get(&in))
		note("input of "+info.ActivityType.Name, in)
	})
	h.at(2*time.Hour, func() {
		v, err := h.env.QueryWorkflow(jobs.QueryState)
		require.NoError(t, err)
		var st jobs.State
		require.NoError(t, v.Get(&st))
		note("state query", st)
		h.env.UpdateWorkflow(jobs.UpdateResendDownload, "resend", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { t.Errorf("rejected: %v", err) },
			OnComplete: func(v any, err error) { require.NoError(t, err); note("resend result", v) },
		}, jobs.DownloadRequest{RequestedBy: "alice"})
	})
	in := input()
	note("workflow input", in)
	h.env.ExecuteWorkflow(ImageJob, in)
	require.NoError(t, h.env.GetWorkflowError())
	var st jobs.State
	require.NoError(t, h.env.GetWorkflowResult(&st))
	require.Equal(t, jobs.StatusCompleted, st.Status)
	note("workflow result", st)
	for _, sa := range h.upserts {
		note("search attributes", sa)
	}
	require.NotEmpty(t, h.upserts)
	require.Empty(t, found)
}
