package devstack

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	stripeclient "github.com/stripe/stripe-go/v76/client"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// logWriter sends child output to the test log (shown on failure or with
// -v), one complete line per entry. Several processes may share one.
type logWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf []byte
}

func newLogWriter(t testing.TB) *logWriter { return &logWriter{t: t} }

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// requireGone asserts that neither pid nor anything in its process group
// (e.g. postgres backends) is still running.
func requireGone(t *testing.T, pid int) {
	t.Helper()
	err := syscall.Kill(pid, 0)
	require.ErrorIs(t, err, syscall.ESRCH, "process %d still exists", pid)
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 2 && f[2] == strconv.Itoa(pid) {
			t.Errorf("process %s of group %d still running", e.Name(), pid)
		}
	}
}

func skipWithoutTool(t *testing.T, name string) string {
	t.Helper()
	p, err := ToolPath(name)
	if err != nil {
		t.Skipf("%s binary absent (%v)", name, err)
	}
	return p
}

func skipWithoutPostgres(t *testing.T) {
	t.Helper()
	if _, _, err := PostgresBinaries(); err != nil {
		t.Skipf("PostgreSQL binaries absent: %v", err)
	}
}

func TestToolPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool-x")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "not-exec"), nil, 0o644))

	tests := []struct {
		name    string
		env     string
		tool    string
		want    string
		wantErr string
	}{
		{name: "env dir", env: dir, tool: "tool-x", want: exe},
		{name: "env dir missing tool", env: dir, tool: "nope", wantErr: "run `make tools`"},
		{name: "env dir not executable", env: dir, tool: "not-exec", wantErr: "HIRES_TOOLS_DIR"},
		{name: "repo tools missing tool", tool: "definitely-not-a-tool", wantErr: "run `make tools`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HIRES_TOOLS_DIR", tt.env)
			got, err := ToolPath(tt.tool)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	require.NoError(t, err)
	wd, _ := os.Getwd()
	assert.Equal(t, root, filepath.Dir(filepath.Dir(wd)), "package lives in <root>/dev/devstack")
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	require.NoError(t, err)
	assert.Greater(t, p, 0)
}

func TestStartPostgres(t *testing.T) {
	skipWithoutPostgres(t)
	ctx := testCtx(t)

	start := time.Now()
	pg, err := StartPostgres(ctx, PostgresOptions{Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	t.Logf("postgres ready in %v at %s", time.Since(start), pg.URL)

	assert.True(t, strings.HasPrefix(pg.URL, "postgres://postgres@127.0.0.1:"), pg.URL)
	assert.True(t, strings.HasSuffix(pg.URL, "/hires?sslmode=disable"), pg.URL)
	_, err = os.Stat(filepath.Join(pg.Dir, ".s.PGSQL."+strconv.Itoa(pg.Port)))
	assert.NoError(t, err, "unix socket lives in Dir")

	conn, err := pgx.Connect(ctx, pg.URL)
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "select 1").Scan(&one))
	assert.Equal(t, 1, one)
	var fsync string
	require.NoError(t, conn.QueryRow(ctx, "show fsync").Scan(&fsync))
	assert.Equal(t, "off", fsync)
	// An open connection must not hold up Stop.

	pid := pg.PID()
	require.NoError(t, pg.Stop())
	require.NoError(t, pg.Stop(), "Stop is idempotent")
	requireGone(t, pid)
	_, err = os.Stat(pg.Dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "temporary Dir removed, got %v", err)
	_ = conn.Close(context.Background())
}

// A caller-supplied Dir keeps its data across restarts and is not removed.
func TestStartPostgresPersistentDir(t *testing.T) {
	skipWithoutPostgres(t)
	ctx := testCtx(t)
	// As root the server runs unprivileged and must be able to reach Dir,
	// which t.TempDir's 0700 parent would forbid.
	base, err := os.MkdirTemp("", "devstack-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	dir := filepath.Join(base, "pg")

	run := func(sql string) {
		pg, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Output: newLogWriter(t)})
		require.NoError(t, err)
		defer func() { require.NoError(t, pg.Stop()) }()
		conn, err := pgx.Connect(ctx, pg.URL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	run("create table kept (v int); insert into kept values (42)")
	run("select v from kept where v = 42") // fails if the table is gone
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	assert.NoError(t, err, "caller's Dir is kept")
}

// As root without a "postgres" account the server runs as "nobody".
func TestStartPostgresAsNobody(t *testing.T) {
	skipWithoutPostgres(t)
	if os.Geteuid() != 0 {
		t.Skip("only root switches users")
	}
	saved := serverUsers
	serverUsers = []string{"no-such-user-hires", "nobody"}
	t.Cleanup(func() { serverUsers = saved })

	ctx := testCtx(t)
	pg, err := StartPostgres(ctx, PostgresOptions{Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(pg.Dir, &st))
	assert.Equal(t, nobody.Uid, strconv.Itoa(int(st.Uid)), "data dir owned by nobody")
	conn, err := pgx.Connect(ctx, pg.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "select 1").Scan(&one))
}

func TestStartPostgresUnreachableDirAsRoot(t *testing.T) {
	skipWithoutPostgres(t)
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data dir to another user")
	}
	// t.TempDir's parent is 0700 root: the postgres user cannot enter it.
	_, err := StartPostgres(testCtx(t), PostgresOptions{Dir: filepath.Join(t.TempDir(), "pg")})
	require.ErrorContains(t, err, "not reachable")
}

func TestStartTemporal(t *testing.T) {
	bin := skipWithoutTool(t, "temporal")
	ctx := testCtx(t)

	start := time.Now()
	tp, err := StartTemporal(ctx, TemporalOptions{
		Bin:              bin,
		Namespace:        "devstack-test",
		SearchAttributes: []string{"JobStatus=Keyword", "Attempts=Int"},
		Output:           newLogWriter(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tp.Stop() })
	t.Logf("temporal ready in %v at %s, UI %s", time.Since(start), tp.Address, tp.UIURL)
	assert.True(t, strings.HasPrefix(tp.Address, "127.0.0.1:"), tp.Address)
	assert.True(t, strings.HasPrefix(tp.UIURL, "http://127.0.0.1:"), tp.UIURL)

	c, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Namespace: tp.Namespace, Logger: quietLogger()})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	require.NoError(t, err)
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: tp.Namespace})
	require.NoError(t, err)
	assert.Contains(t, attrs.GetCustomAttributes(), "JobStatus")
	assert.Contains(t, attrs.GetCustomAttributes(), "Attempts")

	resp, err := http.Get(tp.UIURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "web UI answers")

	pid := tp.PID()
	stopStart := time.Now()
	require.NoError(t, tp.Stop())
	t.Logf("temporal stopped in %v", time.Since(stopStart))
	require.NoError(t, tp.Stop(), "Stop is idempotent")
	requireGone(t, pid)
}

// Headless with a DB file: a started workflow survives a restart.
func TestStartTemporalPersistent(t *testing.T) {
	bin := skipWithoutTool(t, "temporal")
	ctx := testCtx(t)
	opts := TemporalOptions{
		Bin:    bin,
		UIPort: -1,
		DBFile: filepath.Join(t.TempDir(), "temporal.db"),
		// Re-registering existing attributes on restart must work.
		SearchAttributes: []string{"JobStatus=Keyword"},
		Output:           newLogWriter(t),
	}

	withClient := func(f func(client.Client)) {
		tp, err := StartTemporal(ctx, opts)
		require.NoError(t, err)
		defer func() { require.NoError(t, tp.Stop()) }()
		assert.Empty(t, tp.UIURL, "headless")
		c, err := client.DialContext(ctx, client.Options{HostPort: tp.Address, Logger: quietLogger()})
		require.NoError(t, err)
		defer c.Close()
		f(c)
	}
	withClient(func(c client.Client) {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "persisted", TaskQueue: "none"}, "NoSuchWorkflow")
		require.NoError(t, err)
	})
	withClient(func(c client.Client) {
		_, err := c.DescribeWorkflowExecution(ctx, "persisted", "")
		require.NoError(t, err)
	})
}

func TestStartTemporalFailureShowsOutput(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	fake := filepath.Join(dir, "temporal")
	script := "#!/bin/sh\necho fake-temporal-says-hello\necho $$ > " + pidFile + "\nexec sleep 60\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))

	_, err := StartTemporal(testCtx(t), TemporalOptions{Bin: fake, StartTimeout: 700 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "temporal: not ready")
	assert.Contains(t, err.Error(), "fake-temporal-says-hello", "error shows the last output")

	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	requireGone(t, pid)
}

func TestStartStripeMock(t *testing.T) {
	bin := skipWithoutTool(t, "stripe-mock")
	ctx := testCtx(t)
	port, err := FreePort()
	require.NoError(t, err)

	tests := []struct {
		name, addr, wantURL string
	}{
		{name: "free port", wantURL: "http://127.0.0.1:"},
		{name: "fixed addr", addr: "127.0.0.1:" + strconv.Itoa(port), wantURL: "http://127.0.0.1:" + strconv.Itoa(port)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			sm, err := StartStripeMock(ctx, StripeMockOptions{Bin: bin, Addr: tt.addr, Output: newLogWriter(t)})
			require.NoError(t, err)
			t.Cleanup(func() { _ = sm.Stop() })
			t.Logf("stripe-mock ready in %v at %s", time.Since(start), sm.URL)
			assert.True(t, strings.HasPrefix(sm.URL, tt.wantURL), sm.URL)

			sc := stripeClient(sm.URL)
			s, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
				Mode:       stripe.String(string(stripe.CheckoutSessionModePayment)),
				SuccessURL: stripe.String("http://127.0.0.1/ok"),
				LineItems: []*stripe.CheckoutSessionLineItemParams{{
					Quantity: stripe.Int64(1),
					PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
						Currency:    stripe.String("usd"),
						UnitAmount:  stripe.Int64(499),
						ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("4x")},
					},
				}},
			})
			require.NoError(t, err)
			assert.NotEmpty(t, s.ID)

			pid := sm.PID()
			require.NoError(t, sm.Stop())
			require.NoError(t, sm.Stop(), "Stop is idempotent")
			requireGone(t, pid)
		})
	}
}

func stripeClient(url string) *stripeclient.API {
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:           stripe.String(url),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return stripeclient.New(StripeMockAPIKey, &stripe.Backends{API: b, Connect: b, Uploads: b})
}
