//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"

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

// logHistory logs a workflow's events, one line each with its time and any
// failure, to explain a test that failed.
func logHistory(t *testing.T, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Logf("history of %s: %v", workflowID, err)
			return
		}
		line := fmt.Sprintf("%s %3d %s", e.GetEventTime().AsTime().Format("15:04:05.000"), e.GetEventId(), e.GetEventType())
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			line += " " + a.GetActivityType().GetName()
		}
		if a := e.GetMarkerRecordedEventAttributes(); a != nil && a.GetFailure() != nil {
			line += " failure: " + a.GetFailure().GetMessage()
		}
		if a := e.GetActivityTaskFailedEventAttributes(); a != nil {
			line += " failure: " + a.GetFailure().GetMessage()
		}
		if a := e.GetActivityTaskTimedOutEventAttributes(); a != nil {
			line += " failure: " + a.GetFailure().GetMessage()
		}
		t.Log(line)
	}
	logTaskQueue(ctx, t)
}

// logTaskQueue logs who polls the job task queue and its backlog: a task
// scheduled but never started is a matching problem, not the workflow's.
func logTaskQueue(ctx context.Context, t *testing.T) {
	t.Helper()
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		resp, err := temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: jobs.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: typ, ReportStats: true,
		})
		if err != nil {
			t.Logf("task queue %s (%s): %v", jobs.TaskQueue, typ, err)
			continue
		}
		var pollers []string
		for _, p := range resp.GetPollers() {
			pollers = append(pollers, fmt.Sprintf("%s last %s", p.GetIdentity(), p.GetLastAccessTime().AsTime().Format("15:04:05.000")))
		}
		t.Logf("task queue %s (%s): backlog %d, pollers %v", jobs.TaskQueue, typ, resp.GetStats().GetApproximateBacklogCount(), pollers)
	}
}
