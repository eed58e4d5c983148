package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	hiresworker "hires/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// of every path (see dev/e2e, HIRES_RECORD_HISTORIES): a change to
// the workflows that would break jobs sleeping in production fails here.
// How to make such a change: docs/contributors.md, "Changing workflow code".
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
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
