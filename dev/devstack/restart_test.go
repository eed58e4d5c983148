package devstack

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// A restarted server keeps its data, port and URL; the old process is gone.
func TestPostgresRestart(t *testing.T) {
	skipWithoutPostgres(t)
	ctx := testCtx(t)
	pg, err := StartPostgres(ctx, PostgresOptions{Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	require.NoError(t, exec("create table kept (v int); insert into kept values (42)"))
	oldPID, port, url := pg.PID(), pg.Port, pg.URL

	down := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // inside the outage
		down <- exec("select 1")
	}()
	require.NoError(t, pg.Restart(ctx, time.Second))
	assert.Error(t, <-down, "no server during the outage")
	requireGone(t, oldPID)
	assert.Equal(t, port, pg.Port)
	assert.Equal(t, url, pg.URL)
	assert.NotEqual(t, oldPID, pg.PID())
	require.NoError(t, exec("delete from kept where v = 42"), "the data survived")

	require.NoError(t, pg.Stop())
	assert.ErrorContains(t, pg.Restart(ctx, 0), "after Stop")
}

// Workflows survive a restart on the same DB file, at the same address.
func TestTemporalRestart(t *testing.T) {
	bin := skipWithoutTool(t, "temporal")
	ctx := testCtx(t)
	tp, err := StartTemporal(ctx, TemporalOptions{
		Bin: bin, UIPort: -1, DBFile: filepath.Join(t.TempDir(), "temporal.db"),
		SearchAttributes: []string{"JobStatus=Keyword"}, Output: newLogWriter(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tp.Stop() })
	c, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Logger: quietLogger()})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "kept", TaskQueue: "none"}, "NoSuchWorkflow")
	require.NoError(t, err)
	oldPID, addr := tp.PID(), tp.Address

	require.NoError(t, tp.Restart(ctx, 500*time.Millisecond))
	requireGone(t, oldPID)
	assert.Equal(t, addr, tp.Address)
	// The same client reconnects by itself.
	_, err = c.DescribeWorkflowExecution(ctx, "kept", "")
	require.NoError(t, err, "the workflow survived")

	require.NoError(t, tp.Stop())
	assert.ErrorContains(t, tp.Restart(ctx, 0), "after Stop")
}

func TestTemporalRestartNeedsDBFile(t *testing.T) {
	bin := skipWithoutTool(t, "temporal")
	tp, err := StartTemporal(testCtx(t), TemporalOptions{Bin: bin, UIPort: -1, Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tp.Stop() })
	require.ErrorContains(t, tp.Restart(testCtx(t), 0), "DBFile")
	_, err = client.Dial(client.Options{HostPort: tp.Address, Logger: quietLogger()})
	require.NoError(t, err, "the refused restart left the server running")
}
