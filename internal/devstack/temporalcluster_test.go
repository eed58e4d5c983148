package devstack

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// clusterTestWorkflow sleeps through a durable timer, so that a role can
// crash while it waits.
func clusterTestWorkflow(ctx workflow.Context, d time.Duration) (string, error) {
	if err := workflow.Sleep(ctx, d); err != nil {
		return "", err
	}
	return "woke", nil
}

// The cluster is the production shape: four roles as their own processes
// on PostgreSQL, the schemas the SQL tool set up, the namespace and search
// attributes registered, the standalone UI. A workflow outlives the crash
// of history and of matching, and a second start on the same databases
// keeps everything.
func TestTemporalCluster(t *testing.T) {
	skipWithoutPostgres(t)
	for _, tool := range []string{"temporal-server", "temporal-sql-tool", "temporal-ui-server"} {
		skipWithoutTool(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	dir := t.TempDir()
	opts := TemporalClusterOptions{
		PostgresPort: pg.Port, Dir: dir, Output: newLogWriter(t),
		SearchAttributes: []string{"JobStatus=Keyword", "Amount=Int"},
		DynamicConfig:    []string{"matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1"},
	}
	started := time.Now()
	c, err := StartTemporalCluster(ctx, opts)
	require.NoError(t, err)
	t.Logf("cluster up in %s", time.Since(started).Round(time.Millisecond))
	t.Cleanup(func() { _ = c.Stop() })

	pids := map[int]string{}
	for _, role := range c.Roles() {
		pid := c.PID(role)
		require.NotZero(t, pid, role)
		require.NotContains(t, pids, pid, "each role is its own process")
		pids[pid] = role
	}
	for _, db := range []string{temporalDB, temporalVisibilityDB} {
		conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(pg.Port)+"/"+db+"?sslmode=disable")
		require.NoError(t, err)
		var version string
		require.NoError(t, conn.QueryRow(ctx, "select curr_version from schema_version").Scan(&version))
		conn.Close(ctx)
		assert.NotEqual(t, "0.0", version, "%s: the versioned schemas were applied", db)
	}
	resp, err := http.Get(c.UIURL + "/api/v1/namespaces/default")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the Web UI reaches the frontend")

	cl, err := client.Dial(client.Options{HostPort: c.Address, Logger: quietLogger()})
	require.NoError(t, err)
	defer cl.Close()
	attrs, err := cl.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	assert.Contains(t, attrs.GetCustomAttributes(), "JobStatus")
	assert.Contains(t, attrs.GetCustomAttributes(), "Amount")

	w := worker.New(cl, "cluster-test", worker.Options{})
	w.RegisterWorkflow(clusterTestWorkflow)
	require.NoError(t, w.Start())
	defer w.Stop()
	for _, role := range []string{"history", "matching"} {
		run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "outlives-" + role, TaskQueue: "cluster-test"}, clusterTestWorkflow, 3*time.Second)
		require.NoError(t, err)
		old := c.PID(role)
		crashed := time.Now()
		require.NoError(t, c.Crash(ctx, role, time.Second), role)
		t.Logf("%s crashed and serving again in %s", role, time.Since(crashed).Round(time.Millisecond))
		require.NotEqual(t, old, c.PID(role), "%s is a new process", role)
		var got string
		require.NoError(t, run.Get(ctx, &got), "the workflow outlives the crash of %s", role)
		assert.Equal(t, "woke", got)
	}
	w.Stop()
	cl.Close()
	require.NoError(t, c.Stop())
	for pid := range pids {
		requireGone(t, pid)
	}

	// Started again on the same databases: setup is skipped, the upgrade is
	// a no-op, and the workflows are still there.
	c2, err := StartTemporalCluster(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Stop() })
	cl2, err := client.Dial(client.Options{HostPort: c2.Address, Logger: quietLogger()})
	require.NoError(t, err)
	defer cl2.Close()
	d, err := cl2.DescribeWorkflowExecution(ctx, "outlives-history", "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.GetWorkflowExecutionInfo().GetStatus())
}
