package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	hiresworker "hires/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (see internal/e2e, HIRES_RECORD_HISTORIES): a change to the workflow that
// is not made safe with workflow.GetVersion fails here, before it can break
// jobs that are sleeping in production.
func TestReplayRecordedHistories(t *testing.T) {
	// testdata/*.json were recorded before notifications existed (version
	// DefaultVersion of "notifications"); testdata/v1/ after; testdata/v2/
	// once the API made the Checkout Session and the submission went with
	// the payment ("submit-with-payment", "early-callback"); testdata/v3/
	// with the sweep's OwedRefund ("owed-refund-workflow") and notifications
	// that survive a cancellation ("notifications-survive-cancel"), refunds
	// that end, bank debits and numbered Upsampler submissions; testdata/v4/
	// with workflows started without customer data (no email, page links,
	// Checkout URL or CustomerEmail search attribute).
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"testdata/v1", "testdata/v2", "testdata/v3", "testdata/v4"} {
		newer, err := filepath.Glob(dir + "/*.json")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, newer...)
	}
	if len(files) < 60 {
		t.Fatalf("want the recorded histories in testdata, found %d", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			hiresworker.RegisterWorkflows(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay of %s: %v", f, err)
			}
		})
	}
}
