package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Temporal's server roles, in the order they start. Frontend comes last so
// that a client never reaches a frontend whose history or matching peers
// have not joined the ring yet.
var temporalRoles = []string{"history", "matching", "frontend", "worker"}

// Temporal's two databases, as its schema tool and config name them.
const (
	temporalDB           = "temporal"
	temporalVisibilityDB = "temporal_visibility"
)

// TemporalClusterOptions configures StartTemporalCluster.
type TemporalClusterOptions struct {
	// ServerBin, SQLToolBin and UIBin default to the pinned tools
	// temporal-server, temporal-sql-tool and temporal-ui-server; SchemaDir
	// to temporal-schema (the server module's schema/ folder).
	ServerBin, SQLToolBin, UIBin, SchemaDir string
	// PostgresPort is the PostgreSQL server on 127.0.0.1 (user postgres,
	// trust auth) that holds Temporal's databases; they are created and
	// their schemas set up or upgraded by Temporal's SQL tool.
	PostgresPort int
	// Port of the frontend's gRPC service; 0 picks a free one.
	Port int
	// StandardPorts uses Temporal's own ports for the other roles (history
	// 7234, matching 7235, worker 7239, membership 6933-6939, frontend
	// HTTP 7243), as its development configuration does; otherwise free
	// ones.
	StandardPorts bool
	// UIPort of the standalone Web UI; 0 picks a free one, -1 runs none.
	UIPort int
	// Namespace to register; default "default".
	Namespace string
	// SearchAttributes to register on it, as "Name=Type".
	SearchAttributes []string
	// DynamicConfig are extra server settings, as "key=JSON value" (the
	// dev server's --dynamic-config-value form), e.g.
	// "matching.numTaskqueueReadPartitions=1".
	DynamicConfig []string
	// HistoryShards is fixed when the databases are first set up; default 16.
	HistoryShards int
	// Dir holds the generated configuration; empty means a temporary
	// directory that Stop removes.
	Dir string
	// Output receives every process's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds start-up; default 120s. ctx may end it earlier.
	StartTimeout time.Duration
}

// TemporalCluster is Temporal in its production shape: frontend, history,
// matching and worker as separate processes on PostgreSQL with SQL
// visibility, and the standalone Web UI.
type TemporalCluster struct {
	// Address is the frontend's host:port, for client.Options.HostPort.
	Address   string
	Namespace string
	// UIURL is the Web UI's base URL, "" when none runs.
	UIURL string

	ports     map[string]int
	mu        sync.Mutex
	procs     map[string]*process // by role, and "ui"
	cmds      map[string]func() *exec.Cmd
	opts      TemporalClusterOptions
	wantAttrs []string
	ownDir    bool
	stopped   bool
}

// StartTemporalCluster sets up Temporal's schemas, starts the four server
// roles and the Web UI, registers the namespace and its search attributes,
// and returns once a workflow can be started and its task queue described.
func StartTemporalCluster(ctx context.Context, opts TemporalClusterOptions) (_ *TemporalCluster, err error) {
	for _, t := range []struct {
		bin  *string
		name string
	}{{&opts.ServerBin, "temporal-server"}, {&opts.SQLToolBin, "temporal-sql-tool"}, {&opts.UIBin, "temporal-ui-server"}} {
		if opts.UIPort < 0 && t.name == "temporal-ui-server" {
			continue
		}
		if *t.bin, err = binOrTool(*t.bin, t.name); err != nil {
			return nil, fmt.Errorf("temporal cluster: %w (make cluster-tools)", err)
		}
	}
	if opts.SchemaDir == "" {
		if opts.SchemaDir, err = ToolDir("temporal-schema"); err != nil {
			return nil, fmt.Errorf("temporal cluster: %w (make cluster-tools)", err)
		}
	}
	if opts.PostgresPort == 0 {
		return nil, errors.New("temporal cluster: PostgresPort is required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.HistoryShards == 0 {
		opts.HistoryShards = 16
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 120 * time.Second
	}
	wantAttrs, err := parseSearchAttributes(opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal cluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	c := &TemporalCluster{Namespace: opts.Namespace, procs: map[string]*process{}, cmds: map[string]func() *exec.Cmd{}, wantAttrs: wantAttrs}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "hires-temporal-"); err != nil {
			return nil, fmt.Errorf("temporal cluster: %w", err)
		}
		c.ownDir = true
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("temporal cluster: %w", err)
	}
	c.opts = opts
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	for _, db := range []struct{ name, schema string }{
		{temporalDB, "temporal"}, {temporalVisibilityDB, "visibility"},
	} {
		if err := c.setUpSchema(ctx, db.name, db.schema); err != nil {
			return nil, err
		}
	}
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	for _, role := range temporalRoles {
		c.cmds[role] = func() *exec.Cmd {
			return exec.Command(opts.ServerBin, "--root", opts.Dir, "--config", "config", "--env", "cluster",
				"--allow-no-auth", "start", "--service", role)
		}
	}
	if opts.UIPort >= 0 {
		c.cmds["ui"] = func() *exec.Cmd {
			return exec.Command(opts.UIBin, "--root", opts.Dir, "--config", "ui", "--env", "cluster", "start")
		}
	}
	for i, name := range c.processNames() {
		if err := c.start(name); err != nil {
			return nil, err
		}
		// The first role to start writes the cluster's metadata; the others
		// would race it for the same row and exit.
		if i == 0 {
			if err := c.waitListening(ctx, name); err != nil {
				return nil, err
			}
		}
	}
	if err := c.register(ctx); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, "frontend"); err != nil {
		return nil, err
	}
	if c.UIURL != "" {
		if err := c.waitUI(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// processNames lists the processes in start order.
func (c *TemporalCluster) processNames() []string {
	names := append([]string(nil), temporalRoles...)
	if c.cmds["ui"] != nil {
		names = append(names, "ui")
	}
	return names
}

// setUpSchema creates db if needed, initialises its schema version once,
// and applies every newer versioned schema (a no-op when up to date), as
// an operator does with temporal-sql-tool before starting or upgrading.
func (c *TemporalCluster) setUpSchema(ctx context.Context, db, schema string) error {
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.opts.PostgresPort)
	if err := createDatabase(ctx, admin, db); err != nil {
		return fmt.Errorf("temporal cluster: %w", err)
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", c.opts.PostgresPort, db))
	if err != nil {
		return fmt.Errorf("temporal cluster: connect to %s: %w", db, err)
	}
	var initialised bool
	err = conn.QueryRow(ctx, "select to_regclass('schema_version') is not null").Scan(&initialised)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("temporal cluster: inspect %s: %w", db, err)
	}
	tool := func(args ...string) error {
		base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "--port", strconv.Itoa(c.opts.PostgresPort),
			"--user", "postgres", "--db", db}
		cmd := exec.CommandContext(ctx, c.opts.SQLToolBin, append(base, args...)...)
		out, err := cmd.CombinedOutput()
		if c.opts.Output != nil {
			_, _ = c.opts.Output.Write(out)
		}
		if err != nil {
			return fmt.Errorf("temporal cluster: temporal-sql-tool %v on %s: %w\n%s", args, db, err, out)
		}
		return nil
	}
	if !initialised {
		if err := tool("setup-schema", "-v", "0.0"); err != nil {
			return err
		}
	}
	return tool("update-schema", "-d", filepath.Join(c.opts.SchemaDir, "postgresql", "v12", schema, "versioned"))
}

// writeConfig renders the server's and the UI's configuration with free
// ports for every role (gRPC and membership), all on loopback.
func (c *TemporalCluster) writeConfig() error {
	ports := map[string]int{}
	standard := map[string]int{
		"frontend": 7233, "frontendHTTP": 7243, "frontendRing": 6933, "history": 7234, "historyRing": 6934,
		"matching": 7235, "matchingRing": 6935, "worker": 7239, "workerRing": 6939,
	}
	for _, name := range []string{"frontend", "frontendHTTP", "frontendRing", "history", "historyRing", "matching", "matchingRing", "worker", "workerRing"} {
		switch {
		case name == "frontend" && c.opts.Port > 0:
			ports[name] = c.opts.Port
		case c.opts.StandardPorts:
			ports[name] = standard[name]
		default:
			p, err := freeSmallPort()
			if err != nil {
				return fmt.Errorf("temporal cluster: %w", err)
			}
			ports[name] = p
		}
	}
	c.ports = ports
	var dynamic [][2]string
	for _, kv := range c.opts.DynamicConfig {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("temporal cluster: dynamic config %q: want key=value", kv)
		}
		dynamic = append(dynamic, [2]string{k, v})
	}
	c.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports["frontend"]))
	data := map[string]any{
		"Ports": ports, "PostgresAddr": net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.PostgresPort)),
		"Shards": c.opts.HistoryShards, "Dir": c.opts.Dir, "Address": c.Address, "Namespace": c.opts.Namespace,
		"Dynamic": dynamic, "Roles": roleConfigs(ports),
	}
	files := map[string]*template.Template{
		filepath.Join("config", "cluster.yaml"): serverConfig,
		filepath.Join("config", "dynamic.yaml"): dynamicConfig,
	}
	if c.opts.UIPort >= 0 {
		files[filepath.Join("ui", "cluster.yaml")] = uiConfig
		ports["ui"] = c.opts.UIPort
		if ports["ui"] == 0 {
			p, err := FreePort()
			if err != nil {
				return err
			}
			ports["ui"] = p
		}
		c.UIURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports["ui"]))
	}
	for name, tpl := range files {
		p := filepath.Join(c.opts.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("temporal cluster: %w", err)
		}
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("temporal cluster: %w", err)
		}
		err = tpl.Execute(f, data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("temporal cluster: write %s: %w", name, err)
		}
	}
	return nil
}

// roleConfig is one role's entry under services: in the server's config.
type roleConfig struct {
	Name             string
	GRPC, Ring, HTTP int
}

func roleConfigs(ports map[string]int) []roleConfig {
	out := make([]roleConfig, 0, len(temporalRoles))
	for _, role := range temporalRoles {
		rc := roleConfig{Name: role, GRPC: ports[role], Ring: ports[role+"Ring"]}
		if role == "frontend" {
			rc.HTTP = ports["frontendHTTP"]
		}
		out = append(out, rc)
	}
	return out
}

// freeSmallPort finds a free loopback port below 32768: Temporal keeps its
// roles' ports in a smallint column (cluster_membership.rpc_port), out of
// reach of the kernel's ephemeral range FreePort draws from.
func freeSmallPort() (int, error) {
	for range 100 {
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port found in 20000-31999")
}

// start runs one process (a role, or "ui").
func (c *TemporalCluster) start(name string) error {
	p, err := startProcess("temporal-"+name, c.cmds[name](), c.opts.Output, nil)
	if err != nil {
		return fmt.Errorf("temporal cluster: %w", err)
	}
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return nil
}

// waitListening waits until a role accepts connections on its gRPC port.
func (c *TemporalCluster) waitListening(ctx context.Context, role string) error {
	p := c.process(role)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ports[role]))
	err := pollUntil(ctx, p, 100*time.Millisecond, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	if err != nil {
		return p.failure("not listening on %s: %v", addr, err)
	}
	return nil
}

// register creates the namespace and its search attributes, as an
// operator does once with `temporal operator`; both survive restarts.
func (c *TemporalCluster) register(ctx context.Context) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	frontend := c.process("frontend")
	err = pollUntil(ctx, frontend, 200*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cl.WorkflowService().RegisterNamespace(cctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        c.Namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("register namespace %s: %w", c.Namespace, err)
		}
		return nil
	})
	if err != nil {
		return frontend.failure("%v", err)
	}
	if len(c.opts.SearchAttributes) == 0 {
		return nil
	}
	want := map[string]enumspb.IndexedValueType{}
	for _, pair := range c.opts.SearchAttributes {
		name, typ, _ := strings.Cut(pair, "=")
		v, ok := enumspb.IndexedValueType_shorthandValue[typ]
		if !ok {
			return fmt.Errorf("temporal cluster: search attribute %s: unknown type %q", name, typ)
		}
		want[name] = enumspb.IndexedValueType(v)
	}
	err = pollUntil(ctx, frontend, 200*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		have, err := cl.OperatorService().ListSearchAttributes(cctx, &operatorservice.ListSearchAttributesRequest{Namespace: c.Namespace})
		if err != nil {
			return fmt.Errorf("list search attributes: %w", err)
		}
		missing := map[string]enumspb.IndexedValueType{}
		for name, typ := range want {
			if _, ok := have.GetCustomAttributes()[name]; !ok {
				missing[name] = typ
			}
		}
		if len(missing) == 0 {
			return nil
		}
		_, err = cl.OperatorService().AddSearchAttributes(cctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: c.Namespace, SearchAttributes: missing,
		})
		if err != nil {
			return fmt.Errorf("add search attributes: %w", err)
		}
		return errors.New("search attributes added; checking again")
	})
	if err != nil {
		return frontend.failure("%v", err)
	}
	return nil
}

// readyProbeQueue is a task queue no worker polls: the probe's workflows
// never run and are terminated at once.
const readyProbeQueue = "hires-cluster-ready-probe"

// waitReady polls until the whole request path works through the
// frontend: a workflow starts (history), its task queue is described
// (matching), and the namespace and search attributes are visible.
// watched names the process whose exit ends the wait early.
func (c *TemporalCluster) waitReady(ctx context.Context, watched string) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	p := c.process(watched)
	probe := 0
	err = pollUntil(ctx, p, 200*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := cl.CheckHealth(cctx, &client.CheckHealthRequest{}); err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		if len(c.wantAttrs) > 0 {
			resp, err := cl.OperatorService().ListSearchAttributes(cctx, &operatorservice.ListSearchAttributesRequest{Namespace: c.Namespace})
			if err != nil {
				return fmt.Errorf("list search attributes: %w", err)
			}
			for _, name := range c.wantAttrs {
				if _, ok := resp.GetCustomAttributes()[name]; !ok {
					return fmt.Errorf("search attribute %s not registered yet", name)
				}
			}
		}
		probe++
		id := fmt.Sprintf("hires-cluster-ready-probe-%d-%d", os.Getpid(), probe)
		run, err := cl.ExecuteWorkflow(cctx, client.StartWorkflowOptions{ID: id, TaskQueue: readyProbeQueue}, "ReadyProbe")
		if err != nil {
			return fmt.Errorf("start a workflow: %w", err)
		}
		if err := cl.TerminateWorkflow(cctx, id, run.GetRunID(), "readiness probe"); err != nil {
			return fmt.Errorf("terminate the probe: %w", err)
		}
		_, err = cl.WorkflowService().DescribeTaskQueue(cctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: c.Namespace, TaskQueue: &taskqueuepb.TaskQueue{Name: readyProbeQueue},
		})
		if err != nil {
			return fmt.Errorf("describe a task queue: %w", err)
		}
		return nil
	})
	if err != nil {
		return p.failure("cluster not ready at %s: %v", c.Address, err)
	}
	return nil
}

func (c *TemporalCluster) waitUI(ctx context.Context) error {
	p := c.process("ui")
	err := pollUntil(ctx, p, 200*time.Millisecond, func() error {
		resp, err := httpGet(ctx, c.UIURL+"/api/v1/namespaces/"+c.Namespace)
		if err != nil {
			return err
		}
		if resp != 200 {
			return fmt.Errorf("GET /api/v1/namespaces/%s: status %d", c.Namespace, resp)
		}
		return nil
	})
	if err != nil {
		return p.failure("Web UI not ready at %s: %v", c.UIURL, err)
	}
	return nil
}

func (c *TemporalCluster) dial(ctx context.Context) (client.Client, error) {
	cl, err := client.NewLazyClient(client.Options{HostPort: c.Address, Namespace: c.Namespace, Logger: quietLogger()})
	if err != nil {
		return nil, fmt.Errorf("temporal cluster: client: %w", err)
	}
	return cl, nil
}

func (c *TemporalCluster) process(name string) *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// Roles are the server's processes a fault can kill.
func (c *TemporalCluster) Roles() []string { return append([]string(nil), temporalRoles...) }

// PID is the process id of a role (or "ui"); 0 if it is not running.
func (c *TemporalCluster) PID(name string) int {
	p := c.process(name)
	if p == nil {
		return 0
	}
	if done, _ := p.exited(); done {
		return 0
	}
	return p.pid()
}

// Crash SIGKILLs a role, waits down, starts it again on the same ports and
// waits until the cluster serves requests again: the outage of one
// process, as a node failure would cause. It must not run concurrently
// with Stop.
func (c *TemporalCluster) Crash(ctx context.Context, role string, down time.Duration) error {
	if err := c.Kill(role); err != nil {
		return err
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return fmt.Errorf("temporal cluster: crash %s: %w", role, ctx.Err())
	}
	return c.Revive(ctx, role)
}

// Kill SIGKILLs a role (or "ui") and leaves it down until Revive.
func (c *TemporalCluster) Kill(role string) error {
	c.mu.Lock()
	p, stopped := c.procs[role], c.stopped
	c.mu.Unlock()
	switch {
	case stopped:
		return errors.New("temporal cluster: kill after Stop")
	case p == nil:
		return fmt.Errorf("temporal cluster: no process %q", role)
	}
	p.kill()
	return nil
}

// Revive starts a killed role again on the same ports and waits until the
// cluster serves requests again (within the start timeout).
func (c *TemporalCluster) Revive(ctx context.Context, role string) error {
	c.mu.Lock()
	p, stopped := c.procs[role], c.stopped
	c.mu.Unlock()
	if stopped {
		return errors.New("temporal cluster: revive after Stop")
	}
	if p != nil {
		if done, _ := p.exited(); !done {
			return fmt.Errorf("temporal cluster: %s is running", role)
		}
	}
	if err := c.start(role); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	defer cancel()
	if role == "ui" {
		return c.waitUI(ctx)
	}
	return c.waitReady(ctx, role)
}

// Stop stops every process at once (SIGTERM, then SIGKILL of the process
// group after 15s) and removes a temporary config directory. Idempotent.
func (c *TemporalCluster) Stop() error {
	c.mu.Lock()
	c.stopped = true
	procs := make([]*process, 0, len(c.procs))
	for _, name := range c.processNames() {
		if p := c.procs[name]; p != nil {
			procs = append(procs, p)
		}
	}
	c.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.stop(syscall.SIGTERM, 15*time.Second)
		}()
	}
	wg.Wait()
	if c.ownDir {
		errs = append(errs, os.RemoveAll(c.opts.Dir))
	}
	return errors.Join(errs...)
}

// serverConfig follows the server module's config/development-postgres12.yaml:
// every role on loopback with its own ports, PostgreSQL for both stores,
// no archival, no metrics endpoint (figures come from the processes).
var serverConfig = template.Must(template.New("cluster.yaml").Parse(`# Generated by hires for the local Temporal cluster.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.PostgresAddr}}"
        connectProtocol: tcp
        user: postgres
        password: ""
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.PostgresAddr}}"
        connectProtocol: tcp
        user: postgres
        password: ""
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
{{- range .Roles}}
  {{.Name}}:
    rpc:
      grpcPort: {{.GRPC}}
      membershipPort: {{.Ring}}
{{- if .HTTP}}
      httpPort: {{.HTTP}}
{{- end}}
      bindOnLocalHost: true
{{- end}}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "{{.Address}}"
dcRedirectionPolicy:
  policy: noop
archival:
  history:
    state: disabled
  visibility:
    state: disabled
namespaceDefaults:
  archival:
    history:
      state: disabled
    visibility:
      state: disabled
dynamicConfigClient:
  filepath: "{{.Dir}}/config/dynamic.yaml"
  pollInterval: 10s
`))

// OnePartition runs each task queue on one partition, as a deployment
// with a few workers should: with Temporal's default four, a task can wait
// in a partition none of the few pollers is on (seen as a job's first
// workflow task unstarted for 45 s).
var OnePartition = []string{"matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1"}

// dynamicConfig: search attributes a workflow upserts are queryable at once
// (as on the dev server), and a new namespace reaches every role quickly.
var dynamicConfig = template.Must(template.New("dynamic.yaml").Parse(`# Generated by hires.
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
system.namespaceCacheRefreshInterval:
  - value: 2s
{{range .Dynamic}}{{index . 0}}:
  - value: {{index . 1}}
{{end}}`))

// uiConfig is the standalone Web UI's, after ui-server's config/development.yaml.
var uiConfig = template.Must(template.New("ui.yaml").Parse(`# Generated by hires.
temporalGrpcAddress: "{{.Address}}"
host: 127.0.0.1
port: {{.Ports.ui}}
enableUi: true
defaultNamespace: "{{.Namespace}}"
refreshInterval: 1m
notifyOnNewVersion: false
cors:
  cookieInsecure: true
`))

// httpGet returns the status of a GET, for readiness checks.
func httpGet(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
