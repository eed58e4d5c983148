//go:build integration

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// accessTokens collects every access token the tests were given.
var accessTokens sync.Map

// The API's and the worker's logs, after all the jobs of the tests before
// this one, are JSON and carry no secret: no configured secret, access
// token, download token or Upsampler callback secret.
func TestLogsCarryNoSecrets(t *testing.T) {
	ctx := context.Background()
	secrets := map[string]string{}
	for _, k := range []string{"ADMIN_TOKEN", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "UPSAMPLER_API_KEY"} {
		require.NotEmpty(t, stack.Env[k], k)
		secrets[k] = stack.Env[k]
	}
	accessTokens.Range(func(k, _ any) bool {
		secrets["access token"] = k.(string)
		checkLogs(t, secrets)
		return true
	})
	conn, err := pgx.Connect(ctx, stack.Env["DATABASE_URL"])
	require.NoError(t, err)
	defer conn.Close(ctx)
	// Event endpoints' signing secrets, current and previous.
	var endpointSecrets []string
	require.NoError(t, conn.QueryRow(ctx, `SELECT array_agg(s) FROM webhook_endpoints,
		unnest(ARRAY[secret, previous_secret]) s WHERE s IS NOT NULL`).Scan(&endpointSecrets))
	require.NotEmpty(t, endpointSecrets)
	for i, s := range endpointSecrets {
		secrets[fmt.Sprintf("event endpoint secret %d", i)] = s
	}
	rows, err := conn.Query(ctx, `SELECT callback_secret, COALESCE(download_token, '') FROM jobs`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var callback, download string
		require.NoError(t, rows.Scan(&callback, &download))
		secrets["callback secret"] = callback
		if download != "" {
			secrets["download token"] = download
			n++
		}
		checkLogs(t, secrets)
	}
	require.NoError(t, rows.Err())
	require.Positive(t, n, "some jobs were delivered before this test")
}

// checkLogs fails if an app log line holds a secret or is not JSON. Lines
// of the Upsampler stand-in (an outside service, in the same process here)
// are not ours and are skipped.
func checkLogs(t *testing.T, secrets map[string]string) {
	t.Helper()
	f, err := os.Open(appLogPath)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"component":"upsampler-standin"`) {
			continue
		}
		lines++
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &v), "not JSON: %s", line)
		for name, s := range secrets {
			require.NotContains(t, line, s, "a log line carries the %s", name)
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, lines, 20, "the logs were read")
}
