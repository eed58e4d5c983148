package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"hires/internal/jobs"
	"hires/internal/store"
)

// Sweep sizes used when FindOrphansInput leaves them at zero.
const (
	// DefaultOrphanLimit bounds the orphans one sweep returns.
	DefaultOrphanLimit = 200
	// DefaultSweepPage is how many running workflows, and how many owed
	// rows, the sweep reads per request.
	DefaultSweepPage = 1000
)

// FindOrphansInput bounds a sweep.
type FindOrphansInput struct {
	// Grace: jobs changed more recently than this are left alone.
	Grace time.Duration
	// Limit bounds the orphans returned, oldest change first
	// (0: DefaultOrphanLimit). It does not bound the jobs looked at: every
	// owed job is checked on every sweep.
	Limit int
	// PageSize is how many running workflows, and how many owed rows, are
	// read per request (0: DefaultSweepPage).
	PageSize int
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
	// CheckoutSessionID is the job's Stripe Checkout Session ("" if it has
	// none), so that the sweep can expire the session of a job that
	// awaited payment.
	CheckoutSessionID string
	// Attempt is the job's processing attempt (0 before any retry).
	Attempt int
	// RefundAttempt is the number of the refund's next idempotency key, and
	// RefundRefusedAt when Stripe first refused it (zero if never): a refund
	// taken over goes on from there.
	RefundAttempt   int
	RefundRefusedAt time.Time
}

// SweepStats is what one sweep saw and how long each part took.
type SweepStats struct {
	// Running is the number of running workflows (jobs, late-payment and
	// owed refunds) that Temporal's visibility listed.
	Running int
	// Owed is the number of owed jobs changed before the grace cutoff.
	Owed int
	// Candidates are the owed jobs none of whose workflows was listed as running.
	Candidates int
	// Described are the candidates checked with DescribeWorkflowExecution
	// (fewer than Candidates when Limit orphans were found first).
	Described int
	// Orphans is the number of orphans returned.
	Orphans int

	ListRunning time.Duration // listing the running workflows
	ReadOwed    time.Duration // reading the owed jobs
	Describe    time.Duration // describing the candidates' workflows
	Total       time.Duration
}

// FindOrphans lists jobs that owe something (unfinished, or paid and not
// refunded after failing) whose workflow is not running: terminated, timed
// out, failed, or never started.
//
// It lists every running workflow from Temporal's visibility, then reads
// every owed job; a job none of whose workflows (the job's, its late
// payment's, its owed refund's) is listed is a candidate, which
// DescribeWorkflowExecution, strongly consistent where visibility is not,
// confirms. So running jobs, however many, cannot hide an orphan: a job
// whose workflow visibility still shows running just after it ended is
// found by the next sweep.
func (a *Activities) FindOrphans(ctx context.Context, in FindOrphansInput) ([]Orphan, error) {
	out, st, err := findOrphans(ctx, a.Temporal, a.Store, in, func(details ...any) {
		activity.RecordHeartbeat(ctx, details...)
	})
	if err != nil {
		return nil, err
	}
	activity.GetLogger(ctx).Info("Reconciliation sweep",
		"running", st.Running, "owed", st.Owed, "candidates", st.Candidates, "described", st.Described,
		"orphans", st.Orphans, "list_running", st.ListRunning, "read_owed", st.ReadOwed,
		"describe", st.Describe, "took", st.Total)
	return out, nil
}

// FindOrphansTimed is FindOrphans outside an activity (no heartbeat, no
// log line), reporting what the sweep saw and how long each part took: for
// measurements.
func FindOrphansTimed(ctx context.Context, c client.Client, s *store.Store, in FindOrphansInput) ([]Orphan, SweepStats, error) {
	return findOrphans(ctx, c, s, in, func(...any) {})
}

// runningQuery selects the running workflows that settle a job.
var runningQuery = fmt.Sprintf("ExecutionStatus = 'Running' AND WorkflowType IN ('%s', '%s', '%s')",
	jobs.WorkflowName, jobs.LatePaymentWorkflow, jobs.OwedRefundWorkflow)

func findOrphans(ctx context.Context, c client.Client, s SweepRecords, in FindOrphansInput,
	heartbeat func(details ...any)) ([]Orphan, SweepStats, error) {
	limit := cmp.Or(max(in.Limit, 0), DefaultOrphanLimit)
	pageSize := cmp.Or(max(in.PageSize, 0), DefaultSweepPage)
	var st SweepStats
	start := time.Now()
	// Rows changed once the listing has begun are left to the next sweep.
	cutoff := start.Add(-in.Grace)

	// Running workflows first, then the rows: a workflow that ends after
	// the listing has written its job's row by then, so that row is read
	// as it ended (usually no longer owed).
	running, err := runningWorkflows(ctx, c, pageSize, heartbeat)
	if err != nil {
		return nil, st, err
	}
	st.Running = len(running)
	st.ListRunning = time.Since(start)

	t := time.Now()
	var candidates []store.OwedJob
	err = s.EachOwed(ctx, cutoff, pageSize, func(page []store.OwedJob) error {
		st.Owed += len(page)
		for _, j := range page {
			if !anyRunning(running, j.ID) {
				candidates = append(candidates, j)
			}
		}
		heartbeat("owed", st.Owed)
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	st.Candidates = len(candidates)
	st.ReadOwed = time.Since(t)

	t = time.Now()
	slices.SortFunc(candidates, func(a, b store.OwedJob) int {
		return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	var out []Orphan
	for _, j := range candidates {
		if len(out) == limit {
			break
		}
		heartbeat("describe", st.Described)
		st.Described++
		o, orphaned, err := confirmOrphan(ctx, c, j)
		if err != nil {
			return nil, st, err
		}
		if orphaned {
			out = append(out, o)
		}
	}
	st.Orphans = len(out)
	st.Describe = time.Since(t)
	st.Total = time.Since(start)
	return out, st, nil
}

// runningWorkflows returns the IDs of the running workflows that settle a
// job, read from Temporal's visibility a page at a time.
func runningWorkflows(ctx context.Context, c client.Client, pageSize int, heartbeat func(details ...any)) (map[string]struct{}, error) {
	running := map[string]struct{}{}
	req := &workflowservice.ListWorkflowExecutionsRequest{PageSize: int32(pageSize), Query: runningQuery}
	for {
		resp, err := c.ListWorkflow(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list running workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			running[e.GetExecution().GetWorkflowId()] = struct{}{}
		}
		heartbeat("running", len(running))
		if len(resp.GetNextPageToken()) == 0 {
			return running, nil
		}
		req.NextPageToken = resp.GetNextPageToken()
	}
}

// anyRunning reports whether visibility listed one of the job's workflows.
func anyRunning(running map[string]struct{}, jobID string) bool {
	for _, id := range []string{jobs.WorkflowID(jobID), jobs.LatePaymentWorkflowID(jobID), jobs.OwedRefundWorkflowID(jobID)} {
		if _, ok := running[id]; ok {
			return true
		}
	}
	return false
}

// confirmOrphan asks Temporal, strongly consistent, whether a candidate's
// workflows have really stopped.
func confirmOrphan(ctx context.Context, c client.Client, j store.OwedJob) (Orphan, bool, error) {
	status, err := workflowStatus(ctx, c, jobs.WorkflowID(j.ID))
	if err != nil || isRunning(status) {
		return Orphan{}, false, err
	}
	if resumable(j, status, time.Now()) {
		return Orphan{}, false, nil
	}
	if j.Status == jobs.StatusAbandoned {
		// A late payment is refunded by its own workflow; leave it while that runs.
		late, err := workflowStatus(ctx, c, jobs.LatePaymentWorkflowID(j.ID))
		if err != nil || isRunning(late) {
			return Orphan{}, false, err
		}
	}
	if j.PaymentStatus.OwedBack() {
		// An earlier sweep handed the refund to its own workflow.
		refund, err := workflowStatus(ctx, c, jobs.OwedRefundWorkflowID(j.ID))
		if err != nil || isRunning(refund) {
			return Orphan{}, false, err
		}
	}
	o := Orphan{JobID: j.ID, Status: j.Status, PaymentStatus: j.PaymentStatus,
		WorkflowStatus: statusName(status), Attempt: j.Attempt, RefundAttempt: j.RefundAttempt}
	if j.RefundRefusedAt != nil {
		o.RefundRefusedAt = *j.RefundRefusedAt
	}
	if j.PaymentIntentID != nil {
		o.PaymentIntentID = *j.PaymentIntentID
	}
	if j.AmountPaidCents != nil {
		o.AmountCents = *j.AmountPaidCents
	}
	if j.FailureReason != nil {
		o.FailureReason = *j.FailureReason
	}
	if j.CheckoutSessionID != nil {
		o.CheckoutSessionID = *j.CheckoutSessionID
	}
	return o, true, nil
}

// resumable reports whether a job is one whose creation was cut off before
// its workflow started (the API stopped, Temporal was away) while its
// Checkout Session is still open: the site's retry with the same
// Idempotency-Key starts the workflow and the job goes on, so the sweep
// leaves it until the session expires.
func resumable(j store.OwedJob, workflow enumspb.WorkflowExecutionStatus, now time.Time) bool {
	return j.Status == jobs.StatusAwaitingPayment && workflow == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED &&
		j.CheckoutExpiresAt != nil && now.Before(*j.CheckoutExpiresAt)
}

func isRunning(s enumspb.WorkflowExecutionStatus) bool {
	return s == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || s == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
}

// workflowStatus is the status of the latest run of workflowID, or
// UNSPECIFIED when there is none.
func workflowStatus(ctx context.Context, c client.Client, workflowID string) (enumspb.WorkflowExecutionStatus, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
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
