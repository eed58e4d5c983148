package activities_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"hires/activities"
	"hires/internal/jobs"
	"hires/internal/store"
)

// owedRows pages the owed jobs, as the record does, pageSize at a time.
type owedRows struct {
	activities.Records
	rows []store.OwedJob
}

func (o *owedRows) EachOwed(_ context.Context, _ time.Time, pageSize int, fn func([]store.OwedJob) error) error {
	for rows := o.rows; len(rows) > 0; {
		n := min(pageSize, len(rows))
		if err := fn(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// visibility is Temporal as the sweep sees it: listed lists the running
// workflows (visibility, which can lag), described the status of each
// workflow ID (strongly consistent); a workflow it does not know is NotFound.
type visibility struct {
	client.Client
	listed    []string
	described map[string]enumspb.WorkflowExecutionStatus
	pages     int
}

func (v *visibility) ListWorkflow(_ context.Context, r *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	v.pages++
	from, _ := strconv.Atoi(string(r.GetNextPageToken()))
	to := min(from+int(r.GetPageSize()), len(v.listed))
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for _, id := range v.listed[from:to] {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{Execution: &commonpb.WorkflowExecution{WorkflowId: id}})
	}
	if to < len(v.listed) {
		resp.NextPageToken = []byte(strconv.Itoa(to))
	}
	return resp, nil
}

func (v *visibility) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	s, ok := v.described[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: s}}, nil
}

// The sweep's candidate search: every owed job is looked at, however many
// workflows run; a job whose workflow is listed, still running though
// visibility lags, or whose refund runs in a workflow of its own is left;
// so is one whose creation was cut off while its Checkout is open. The
// others are returned, oldest change first, at most Limit.
func TestSweepFindsEveryOrphanAndOnlyThem(t *testing.T) {
	now := time.Now()
	const (
		running    = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		terminated = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
		completed  = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	)
	at := func(minutesAgo int) time.Time { return now.Add(-time.Duration(minutesAgo) * time.Minute) }
	open, closed := now.Add(time.Hour), now.Add(-time.Hour)
	pi := "pi_1"
	rows := []store.OwedJob{
		{ID: "listed", Status: jobs.StatusProcessing, PaymentStatus: jobs.PaymentPaid, UpdatedAt: at(50)},
		{ID: "terminated", Status: jobs.StatusProcessing, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: &pi, UpdatedAt: at(40)},
		{ID: "lagging", Status: jobs.StatusPending, PaymentStatus: jobs.PaymentPaid, UpdatedAt: at(45)},
		{ID: "late-refund-runs", Status: jobs.StatusAbandoned, PaymentStatus: jobs.PaymentPaid, UpdatedAt: at(44)},
		{ID: "owed-refund-runs", Status: jobs.StatusFailed, PaymentStatus: jobs.PaymentRefundFailed, UpdatedAt: at(43)},
		{ID: "cut-off-open", Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending, CheckoutExpiresAt: &open, UpdatedAt: at(42)},
		{ID: "cut-off-closed", Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending, CheckoutExpiresAt: &closed, UpdatedAt: at(60)},
		{ID: "failed-unrefunded", Status: jobs.StatusFailed, PaymentStatus: jobs.PaymentPaid, UpdatedAt: at(30)},
	}
	temporal := &visibility{
		listed: []string{"job:listed", "job:other-1", "job:other-2", "job:other-3", "job:other-4"},
		described: map[string]enumspb.WorkflowExecutionStatus{
			jobs.WorkflowID("listed"):                      running,
			jobs.WorkflowID("terminated"):                  terminated,
			jobs.WorkflowID("lagging"):                     running,
			jobs.WorkflowID("late-refund-runs"):            completed,
			jobs.LatePaymentWorkflowID("late-refund-runs"): running,
			jobs.WorkflowID("owed-refund-runs"):            completed,
			jobs.OwedRefundWorkflowID("owed-refund-runs"):  running,
			jobs.WorkflowID("failed-unrefunded"):           completed,
			jobs.OwedRefundWorkflowID("failed-unrefunded"): completed,
		},
	}
	find := func(limit int) []string {
		a := &activities.Activities{Store: &owedRows{rows: rows}, Temporal: temporal}
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		v, err := env.ExecuteActivity(a.FindOrphans, activities.FindOrphansInput{Limit: limit, PageSize: 2})
		require.NoError(t, err)
		var orphans []activities.Orphan
		require.NoError(t, v.Get(&orphans))
		var ids []string
		for _, o := range orphans {
			ids = append(ids, o.JobID)
		}
		return ids
	}
	require.Equal(t, []string{"cut-off-closed", "terminated", "failed-unrefunded"}, find(0))
	require.GreaterOrEqual(t, temporal.pages, 3, "every page of running workflows is read")
	require.Equal(t, []string{"cut-off-closed", "terminated"}, find(2), "the oldest first, at most Limit")
}
