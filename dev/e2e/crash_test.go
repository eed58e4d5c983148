//go:build integration

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/api"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
)

// The worker is killed with SIGKILL while jobs are being processed, then
// restarted: every job still ends exactly once (one session, one Upsampler
// submission, one completion and token, no refund).
func TestWorkerKilledMidProcessingEndsEachJobOnce(t *testing.T) {
	withBehavior(t, func(b *upsamplersim.Behavior) { b.ProcessingDelay = 4 * time.Second })
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, paidJob(t).ID)
	}
	for _, id := range ids {
		waitFor(t, id, 30*time.Second, "processing", func(j api.AdminJob) bool { return j.Status == jobs.StatusProcessing })
	}
	worker.kill(syscall.SIGKILL)
	time.Sleep(time.Second) // no worker at all for a moment
	w, err := startWorker(appLogFile())
	require.NoError(t, err)
	worker = w

	for _, id := range ids {
		j := waitFor(t, id, 3*time.Minute, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
		var steps []string
		for _, e := range j.Events {
			steps = append(steps, e.ToStatus)
		}
		require.Equal(t, []string{"awaiting_payment", "pending", "processing", "completed"}, steps, "job %s", id)
		require.Equal(t, 1, countKey("POST", "/v1/checkout/sessions", "checkout:"+id))
		require.Equal(t, 0, refundsOf(id))
		submits := 0
		for _, r := range stack.Upsampler.Requests() {
			if r.Submit != nil && strings.Contains(r.Submit.Webhook, "/"+id+"/") {
				submits++
			}
		}
		require.Equal(t, 1, submits, "job %s submitted once", id)
	}
}
