package devstack

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
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
	"go.yaml.in/yaml/v3"
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

// The generated configuration is what the server reads: every role on its
// own ports (Temporal's standard ones when asked), PostgreSQL for both
// stores, and the dynamic settings given, after the built-in ones.
func TestTemporalClusterConfig(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     TemporalClusterOptions
		frontend int
		history  int
		dynamic  map[string]any
	}{
		{"standard ports", TemporalClusterOptions{Port: 7233, StandardPorts: true, PostgresPort: 5432, HistoryShards: 16},
			7233, 7234, map[string]any{"system.forceSearchAttributesCacheRefreshOnRead": true}},
		{"free ports and tuning", TemporalClusterOptions{PostgresPort: 5433, HistoryShards: 4,
			DynamicConfig: []string{"matching.numTaskqueueReadPartitions=1", `frontend.namespaceRPS={"x":1}`}},
			0, 0, map[string]any{"matching.numTaskqueueReadPartitions": 1, "frontend.namespaceRPS": map[string]any{"x": 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = t.TempDir()
			c := &TemporalCluster{opts: tt.opts}
			require.NoError(t, c.writeConfig())
			var cfg struct {
				Persistence struct {
					NumHistoryShards int `yaml:"numHistoryShards"`
					Datastores       map[string]struct {
						SQL struct {
							PluginName   string `yaml:"pluginName"`
							DatabaseName string `yaml:"databaseName"`
						} `yaml:"sql"`
					} `yaml:"datastores"`
				} `yaml:"persistence"`
				Services map[string]struct {
					RPC struct {
						GRPCPort       int `yaml:"grpcPort"`
						MembershipPort int `yaml:"membershipPort"`
						HTTPPort       int `yaml:"httpPort"`
					} `yaml:"rpc"`
				} `yaml:"services"`
			}
			raw, err := os.ReadFile(filepath.Join(tt.opts.Dir, "config", "cluster.yaml"))
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(raw, &cfg), string(raw))
			assert.Equal(t, tt.opts.HistoryShards, cfg.Persistence.NumHistoryShards)
			assert.Len(t, cfg.Persistence.Datastores, 2)
			dbs := []string{}
			for _, ds := range cfg.Persistence.Datastores {
				assert.Equal(t, "postgres12", ds.SQL.PluginName)
				dbs = append(dbs, ds.SQL.DatabaseName)
			}
			assert.ElementsMatch(t, []string{temporalDB, temporalVisibilityDB}, dbs)
			used := map[int]bool{}
			for _, role := range temporalRoles {
				rpc := cfg.Services[role].RPC
				for _, p := range []int{rpc.GRPCPort, rpc.MembershipPort} {
					require.NotZero(t, p, role)
					require.Less(t, p, 32768, "%s: Temporal keeps ports in a smallint", role)
					require.False(t, used[p], "%s: port %d used twice", role, p)
					used[p] = true
				}
			}
			assert.NotZero(t, cfg.Services["frontend"].RPC.HTTPPort)
			if tt.frontend != 0 {
				assert.Equal(t, tt.frontend, cfg.Services["frontend"].RPC.GRPCPort)
				assert.Equal(t, tt.history, cfg.Services["history"].RPC.GRPCPort)
			}
			assert.Equal(t, "127.0.0.1:"+strconv.Itoa(cfg.Services["frontend"].RPC.GRPCPort), c.Address)

			var dyn map[string][]struct {
				Value any `yaml:"value"`
			}
			raw, err = os.ReadFile(filepath.Join(tt.opts.Dir, "config", "dynamic.yaml"))
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(raw, &dyn), string(raw))
			for k, v := range tt.dynamic {
				require.Contains(t, dyn, k)
				assert.Equal(t, v, dyn[k][0].Value, k)
			}
		})
	}
}

func TestTemporalClusterConfigRefusesBadDynamicConfig(t *testing.T) {
	c := &TemporalCluster{opts: TemporalClusterOptions{Dir: t.TempDir(), PostgresPort: 5432, DynamicConfig: []string{"no-value"}}}
	require.ErrorContains(t, c.writeConfig(), `dynamic config "no-value"`)
}
