package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"hires/internal/jobs"
)

// FindOrphansInput bounds a sweep.
type FindOrphansInput struct {
	Grace time.Duration
	Limit int
}

// Orphan is a job that still owes the customer something while its
// workflow is no longer running.
type Orphan struct {
	JobID           string
	Status          jobs.Status
	PaymentStatus   jobs.PaymentStatus
	PaymentIntentID string
	AmountCents     int64
	FailureReason   string
	WorkflowStatus  string // e.g. Terminated, TimedOut, NotFound
}

// FindOrphans lists jobs that owe something (unfinished, or paid and not
// refunded after failing) whose workflow is not running: terminated, timed
// out, failed, or never started.
func (a *Activities) FindOrphans(ctx context.Context, in FindOrphansInput) ([]Orphan, error) {
	candidates, err := a.Store.ListOwed(ctx, time.Now().Add(-in.Grace), in.Limit)
	if err != nil {
		return nil, err
	}
	var out []Orphan
	for i, j := range candidates {
		activity.RecordHeartbeat(ctx, i)
		status, err := a.workflowStatus(ctx, jobs.WorkflowID(j.ID))
		if err != nil {
			return nil, err
		}
		if status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			continue
		}
		if j.Status == jobs.StatusAbandoned {
			// A late payment is refunded by its own workflow; leave it while that runs.
			late, err := a.workflowStatus(ctx, jobs.LatePaymentWorkflowID(j.ID))
			if err != nil {
				return nil, err
			}
			if late == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				continue
			}
		}
		o := Orphan{JobID: j.ID, Status: j.Status, PaymentStatus: j.PaymentStatus, WorkflowStatus: statusName(status)}
		if j.PaymentIntentID != nil {
			o.PaymentIntentID = *j.PaymentIntentID
		}
		if j.AmountPaidCents != nil {
			o.AmountCents = *j.AmountPaidCents
		}
		if j.FailureReason != nil {
			o.FailureReason = *j.FailureReason
		}
		out = append(out, o)
	}
	return out, nil
}

// workflowStatus is the status of the latest run of workflowID, or
// UNSPECIFIED when there is none.
func (a *Activities) workflowStatus(ctx context.Context, workflowID string) (enumspb.WorkflowExecutionStatus, error) {
	d, err := a.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, nil
	}
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	return d.WorkflowExecutionInfo.Status, nil
}

func statusName(s enumspb.WorkflowExecutionStatus) string {
	if s == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		return "NotFound"
	}
	return s.String()
}
