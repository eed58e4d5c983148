//go:build integration

package temporalclient_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"hires/dev/devstack"
	"hires/internal/config"
	"hires/internal/temporalclient"
)

// Connect dials the server and namespace that Temporal's standard
// configuration names: here a profile of TEMPORAL_CONFIG_FILE, while the
// process's own configuration holds the defaults.
func TestConnectWithTemporalProfile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := devstack.ToolPath("temporal")
	require.NoError(t, err, "the Temporal CLI is needed: run `make tools`")
	const ns = "hires-envconfig"
	temporal, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{Bin: bin, UIPort: -1, Namespace: ns})
	require.NoError(t, err)
	t.Cleanup(func() { _ = temporal.Stop() })

	profiles := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(profiles, []byte(`
[profile.local]
address = "`+temporal.Address+`"
namespace = "`+ns+`"
`), 0o600))
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", profiles)
	t.Setenv("TEMPORAL_PROFILE", "local")

	cfg := config.Config{TemporalAddress: "127.0.0.1:1", TemporalNamespace: "default", ServiceName: "hires-test"}
	c, closeClient, err := temporalclient.Connect(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NoError(t, err)
	defer closeClient()

	// A start with no worker is accepted; it lands in the profile's namespace.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "envconfig-probe", TaskQueue: "nobody"}, "Probe")
	require.NoError(t, err)
	_, err = c.WorkflowService().DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
		Namespace: ns, Execution: &common.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
	})
	require.NoError(t, err)
}
