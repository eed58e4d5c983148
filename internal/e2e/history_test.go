//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"hires/internal/jobs"
)

// recordHistory saves a finished job's workflow history for the replay
// tests in workflows/testdata when HIRES_RECORD_HISTORIES names a folder:
//
//	HIRES_RECORD_HISTORIES=$PWD/workflows/testdata make test
func recordHistory(t *testing.T, jobID, name string) {
	t.Helper()
	recordWorkflowHistory(t, jobs.WorkflowID(jobID), name)
}

// recordWorkflowHistory saves the history of any workflow.
func recordWorkflowHistory(t *testing.T, workflowID, name string) {
	t.Helper()
	dir := os.Getenv("HIRES_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	it := temporal.GetWorkflowHistory(context.Background(), workflowID, "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644))
}
