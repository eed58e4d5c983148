//go:build integration

package activities_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"hires/activities"
	"hires/dev/devstack"
	"hires/internal/jobs"
	"hires/internal/store"
)

const (
	sweepQueue = "sweep-test"
	// sweepFinish ends a parked test workflow.
	sweepFinish = "finish"
	// sweepUnlisted is a workflow type the sweep's visibility query does
	// not select: a job workflow under it stands for one that visibility
	// has not indexed yet.
	sweepUnlisted = "NotListed"
)

// parkedWorkflow stands for every workflow of a job: it runs until signalled.
func parkedWorkflow(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, sweepFinish).Receive(ctx, nil)
	return nil
}

// sweepEnv is a Temporal dev server with a worker running parkedWorkflow
// under the job workflows' names, and a job record of its own (so that
// only this test's jobs are owed).
type sweepEnv struct {
	temporal client.Client
	store    *store.Store
	raw      *pgxpool.Pool
}

func startSweepEnv(t *testing.T) *sweepEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var (
		wg     sync.WaitGroup
		pg     *devstack.Postgres
		tp     *devstack.Temporal
		pgErr  error
		tmpErr error
	)
	wg.Go(func() { pg, pgErr = devstack.StartPostgres(ctx, devstack.PostgresOptions{}) })
	wg.Go(func() { tp, tmpErr = devstack.StartTemporal(ctx, devstack.TemporalOptions{UIPort: -1}) })
	wg.Wait()
	if pg != nil {
		t.Cleanup(func() { assert.NoError(t, pg.Stop()) })
	}
	if tp != nil {
		t.Cleanup(func() { assert.NoError(t, tp.Stop()) })
	}
	require.NoError(t, pgErr, "start PostgreSQL")
	require.NoError(t, tmpErr, "start Temporal")

	e := &sweepEnv{}
	var err error
	e.store, err = store.OpenMigrated(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(e.store.Close)
	e.raw, err = pgxpool.New(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(e.raw.Close)
	e.temporal, err = client.Dial(client.Options{HostPort: tp.Address, Namespace: tp.Namespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	t.Cleanup(e.temporal.Close)

	w := worker.New(e.temporal, sweepQueue, worker.Options{})
	for _, name := range []string{jobs.WorkflowName, jobs.LatePaymentWorkflow, jobs.OwedRefundWorkflow, sweepUnlisted} {
		w.RegisterWorkflowWithOptions(parkedWorkflow, workflow.RegisterOptions{Name: name})
	}
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return e
}

// job stores a job, then sets its row as given (updated_at included).
func (e *sweepEnv) job(t *testing.T, status jobs.Status, ps jobs.PaymentStatus, updated time.Time, attempt int) string {
	t.Helper()
	ctx := t.Context()
	id := uuid.NewString()
	_, created, err := e.store.CreateJob(ctx, store.NewJob{
		ID: id, ImageURL: "https://images.example.com/" + id + ".png", Resolution: jobs.Resolution4x,
		Email: "buyer@example.com", PostID: 42, ImageWidth: 640, ImageHeight: 480, OutputWidth: 2560,
		OutputHeight: 1920, AccessTokenHash: sweepHash("access:" + id),
		RequestHash: sweepHash("request:" + id), CallbackSecret: "secret-" + id, Currency: "usd", PriceCents: 499,
		MarkupPercent: 30, EstimatedCredits: 16, EstimatedCostCents: 64, CheckoutExpiresAt: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)
	require.True(t, created)
	var intent, reason any
	if ps != jobs.PaymentPending {
		intent = "pi_" + id
	}
	if status == jobs.StatusFailed {
		reason = jobs.ReasonUpsamplerFailed
	}
	_, err = e.raw.Exec(ctx, `UPDATE jobs SET status = $2, payment_status = $3, updated_at = $4, attempt = $5,
		checkout_session_id = $6, payment_intent_id = $7, amount_paid_cents = CASE WHEN $7::text IS NULL THEN NULL ELSE 437 END,
		failure_reason = $8 WHERE id = $1`, id, status, ps, updated, attempt, "cs_"+id, intent, reason)
	require.NoError(t, err)
	return id
}

func sweepHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// start starts a parked workflow of type typ with ID workflowID.
func (e *sweepEnv) start(t *testing.T, typ, workflowID string) client.WorkflowRun {
	t.Helper()
	run, err := e.temporal.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: workflowID, TaskQueue: sweepQueue}, typ)
	require.NoError(t, err)
	return run
}

// finish signals a parked workflow to complete and waits until it has.
func (e *sweepEnv) finish(t *testing.T, run client.WorkflowRun) {
	t.Helper()
	require.NoError(t, e.temporal.SignalWorkflow(t.Context(), run.GetID(), run.GetRunID(), sweepFinish, nil))
	require.NoError(t, run.Get(t.Context(), nil))
}

// waitListed waits until visibility lists n running job workflows, so
// that the counts the sweep reports are known.
func (e *sweepEnv) waitListed(t *testing.T, n int64) {
	t.Helper()
	query := fmt.Sprintf("ExecutionStatus = 'Running' AND WorkflowType IN ('%s', '%s', '%s')",
		jobs.WorkflowName, jobs.LatePaymentWorkflow, jobs.OwedRefundWorkflow)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := e.temporal.CountWorkflow(t.Context(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		require.NoError(c, err)
		require.Equal(c, n, resp.GetCount())
	}, 30*time.Second, 100*time.Millisecond)
}

// Every orphan is found in one sweep, however many running jobs are owed
// and older: 300 jobs awaiting payment with running workflows, all changed
// before the orphans, used to fill the sweep's 200-row window.
func TestFindOrphansBeyondRunningJobs(t *testing.T) {
	e := startSweepEnv(t)
	const parked = 300
	base := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Microsecond)
	at := func(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

	for i := range parked {
		id := e.job(t, jobs.StatusAwaitingPayment, jobs.PaymentPending, at(i), 0)
		e.start(t, jobs.WorkflowName, jobs.WorkflowID(id))
	}
	later := parked + 10 // every row below changed after all the parked ones

	// Orphans.
	terminated := e.job(t, jobs.StatusProcessing, jobs.PaymentPaid, at(later+4), 1)
	run := e.start(t, jobs.WorkflowName, jobs.WorkflowID(terminated))
	require.NoError(t, e.temporal.TerminateWorkflow(t.Context(), run.GetID(), run.GetRunID(), "from the Web UI"))
	neverStarted := e.job(t, jobs.StatusAwaitingPayment, jobs.PaymentPending, at(later+1), 0)
	// Its creation was cut off and its Checkout Session has expired since:
	// no retry can resume it.
	_, err := e.raw.Exec(t.Context(), `UPDATE jobs SET checkout_expires_at = now() - interval '1 minute' WHERE id = $1`, neverStarted)
	require.NoError(t, err)
	failedPaid := e.job(t, jobs.StatusFailed, jobs.PaymentPaid, at(later+3), 2)
	e.finish(t, e.start(t, jobs.WorkflowName, jobs.WorkflowID(failedPaid)))
	latePaid := e.job(t, jobs.StatusAbandoned, jobs.PaymentPaid, at(later+2), 0) // its late-payment workflow ended too
	e.finish(t, e.start(t, jobs.LatePaymentWorkflow, jobs.LatePaymentWorkflowID(latePaid)))

	// Not orphans.
	lateRefunding := e.job(t, jobs.StatusAbandoned, jobs.PaymentPaid, at(later), 0)
	e.finish(t, e.start(t, jobs.WorkflowName, jobs.WorkflowID(lateRefunding)))
	e.start(t, jobs.LatePaymentWorkflow, jobs.LatePaymentWorkflowID(lateRefunding))
	owedRefunding := e.job(t, jobs.StatusFailed, jobs.PaymentRefundFailed, at(later+5), 0)
	e.start(t, jobs.OwedRefundWorkflow, jobs.OwedRefundWorkflowID(owedRefunding))
	notIndexed := e.job(t, jobs.StatusProcessing, jobs.PaymentPaid, at(later+6), 0)
	e.start(t, sweepUnlisted, jobs.WorkflowID(notIndexed)) // running, but not listed: the describe catches it
	e.job(t, jobs.StatusFailed, jobs.PaymentRefundNeedsAttention, at(later+7), 0)
	e.job(t, jobs.StatusCompleted, jobs.PaymentPaid, at(later+8), 0)
	e.job(t, jobs.StatusProcessing, jobs.PaymentPaid, time.Now(), 0) // within the grace
	// Cut off before its workflow started, its session open: the site's
	// retry with the same Idempotency-Key resumes it.
	e.job(t, jobs.StatusAwaitingPayment, jobs.PaymentPending, at(later+10), 0)

	e.waitListed(t, parked+2)
	acts := &activities.Activities{Store: e.store, Temporal: e.temporal}
	want := []activities.Orphan{
		{JobID: neverStarted, Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending,
			WorkflowStatus: "NotFound", CheckoutSessionID: "cs_" + neverStarted},
		{JobID: latePaid, Status: jobs.StatusAbandoned, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_" + latePaid,
			AmountCents: 437, WorkflowStatus: "NotFound", CheckoutSessionID: "cs_" + latePaid},
		{JobID: failedPaid, Status: jobs.StatusFailed, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_" + failedPaid,
			AmountCents: 437, FailureReason: jobs.ReasonUpsamplerFailed, WorkflowStatus: "Completed",
			CheckoutSessionID: "cs_" + failedPaid, Attempt: 2},
		{JobID: terminated, Status: jobs.StatusProcessing, PaymentStatus: jobs.PaymentPaid, PaymentIntentID: "pi_" + terminated,
			AmountCents: 437, WorkflowStatus: "Terminated", CheckoutSessionID: "cs_" + terminated, Attempt: 1},
	}

	t.Run("one activity call, oldest change first", func(t *testing.T) {
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(acts)
		val, err := env.ExecuteActivity(acts.FindOrphans, activities.FindOrphansInput{Grace: time.Hour, Limit: 200})
		require.NoError(t, err)
		var got []activities.Orphan
		require.NoError(t, val.Get(&got))
		assert.Equal(t, want, got)
	})

	t.Run("across pages, with what it saw", func(t *testing.T) {
		got, st, err := activities.FindOrphansTimed(t.Context(), e.temporal, e.store,
			activities.FindOrphansInput{Grace: time.Hour, Limit: 200, PageSize: 100})
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.Equal(t, parked+2, st.Running, "the parked jobs, one late payment, one owed refund")
		assert.Equal(t, parked+len(want)+4, st.Owed)
		assert.Equal(t, len(want)+2, st.Candidates, "the orphans, the unlisted one and the one to resume")
		assert.Equal(t, len(want)+2, st.Described)
		assert.Equal(t, len(want), st.Orphans)
		assert.Positive(t, st.ListRunning)
		assert.Positive(t, st.ReadOwed)
		assert.Positive(t, st.Describe)
		assert.GreaterOrEqual(t, st.Total, st.ListRunning+st.ReadOwed+st.Describe)
	})

	t.Run("the limit keeps the oldest", func(t *testing.T) {
		got, st, err := activities.FindOrphansTimed(t.Context(), e.temporal, e.store,
			activities.FindOrphansInput{Grace: time.Hour, Limit: 2})
		require.NoError(t, err)
		assert.Equal(t, want[:2], got)
		assert.Equal(t, 2, st.Described, "no describe past the limit")
	})

	t.Run("the unlisted job once its workflow stops", func(t *testing.T) {
		_, err := e.raw.Exec(t.Context(), `UPDATE jobs SET updated_at = $2 WHERE id = $1`, notIndexed, at(later+9))
		require.NoError(t, err)
		require.NoError(t, e.temporal.TerminateWorkflow(t.Context(), jobs.WorkflowID(notIndexed), "", "test"))
		got, _, err := activities.FindOrphansTimed(t.Context(), e.temporal, e.store,
			activities.FindOrphansInput{Grace: time.Hour, Limit: 200})
		require.NoError(t, err)
		require.Len(t, got, len(want)+1)
		assert.Equal(t, want, got[:len(want)])
		assert.Equal(t, notIndexed, got[len(want)].JobID)
		assert.Equal(t, "Terminated", got[len(want)].WorkflowStatus)
	})
}
