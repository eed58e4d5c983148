package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// TemporalOptions configures StartTemporal.
type TemporalOptions struct {
	// Bin is the temporal CLI; default ToolPath("temporal").
	Bin string
	// IP to bind the frontend (and UI) to; default 127.0.0.1.
	IP string
	// Port of the frontend gRPC service; 0 picks a free one.
	Port int
	// UIPort of the web UI; 0 picks a free one, -1 runs headless.
	UIPort int
	// Namespace to create and wait for; default "default".
	Namespace string
	// SearchAttributes to register, as "Name=Type" (e.g. "JobStatus=Keyword").
	SearchAttributes []string
	// DBFile persists state in this SQLite file across restarts; empty
	// keeps everything in memory.
	DBFile string
	// DynamicConfig are extra server settings, as "key=value".
	DynamicConfig []string
	// Output receives the server's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds start-up; default 60s. ctx may end it earlier.
	StartTimeout time.Duration
}

// Temporal is a running `temporal server start-dev`.
type Temporal struct {
	// Address is the frontend's host:port, for client.Options.HostPort.
	Address   string
	Namespace string
	// UIURL is the web UI's base URL, "" when headless.
	UIURL string

	proc     *process
	stopOnce sync.Once
	stopErr  error
	stopped  bool

	// What Restart needs: the options with the ports actually used.
	opts      TemporalOptions
	wantAttrs []string
}

// StartTemporal runs the Temporal dev server and waits until the namespace
// and the requested search attributes are usable.
//
// go.temporal.io/sdk/testsuite.StartDevServer is not used: it does not kill
// the server when readiness fails, does not use a process group, cannot
// pass an exact UI port together with other flags, and its errors do not
// show the server's output.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	bin, err := binOrTool(opts.Bin, "temporal")
	if err != nil {
		return nil, err
	}
	opts.Bin = bin
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	wantAttrs, err := parseSearchAttributes(opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		t, err := startTemporalOnce(ctx, opts, wantAttrs)
		if err == nil {
			return t, nil
		}
		// Lost the race for a port picked by FreePort: try other ones.
		autoPorts := opts.Port == 0 || opts.UIPort == 0
		if autoPorts && attempt < portAttempts && t != nil && t.proc.out.Contains("address already in use") {
			continue
		}
		return nil, err
	}
}

// startTemporalOnce returns the (stopped) handle along with an error so
// that the caller can inspect the output.
func startTemporalOnce(ctx context.Context, opts TemporalOptions, wantAttrs []string) (*Temporal, error) {
	port, uiPort := opts.Port, opts.UIPort
	var err error
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("temporal: %w", err)
		}
	}
	if uiPort == 0 {
		if uiPort, err = FreePort(); err != nil {
			return nil, fmt.Errorf("temporal: %w", err)
		}
	}
	t := &Temporal{
		Address:   net.JoinHostPort(opts.IP, strconv.Itoa(port)),
		Namespace: opts.Namespace,
		opts:      opts,
		wantAttrs: wantAttrs,
	}
	t.opts.Port, t.opts.UIPort = port, uiPort
	args := []string{
		"server", "start-dev",
		"--ip", opts.IP,
		"--port", strconv.Itoa(port),
		"--namespace", opts.Namespace,
		"--log-level", "warn",
		// Attributes upserted by a workflow must be queryable at once.
		"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=true",
	}
	if uiPort < 0 {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
		t.UIURL = "http://" + net.JoinHostPort(opts.IP, strconv.Itoa(uiPort))
	}
	for _, sa := range opts.SearchAttributes {
		args = append(args, "--search-attribute", sa)
	}
	if opts.DBFile != "" {
		args = append(args, "--db-filename", opts.DBFile)
	}
	for _, kv := range opts.DynamicConfig {
		args = append(args, "--dynamic-config-value", kv)
	}

	t.proc, err = startProcess("temporal", exec.Command(opts.Bin, args...), opts.Output, nil)
	if err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	err = waitTemporalReady(ctx, t, wantAttrs)
	if exited, _ := t.proc.exited(); err == nil && exited {
		// Whoever answered was not our server (it failed to bind the port).
		err = fmt.Errorf("server exited; %s is served by another process", t.Address)
	}
	if err != nil {
		t.proc.kill()
		return t, t.proc.failure("not ready at %s: %v", t.Address, err)
	}
	return t, nil
}

// waitTemporalReady polls until the frontend answers health checks, the
// namespace exists and every wanted search attribute is registered on it.
func waitTemporalReady(ctx context.Context, t *Temporal, wantAttrs []string) error {
	var c client.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	return pollUntil(ctx, t.proc, 100*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if c == nil {
			var err error
			c, err = client.DialContext(cctx, client.Options{
				HostPort:  t.Address,
				Namespace: t.Namespace,
				Logger:    quietLogger(),
			})
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
		}
		if _, err := c.CheckHealth(cctx, &client.CheckHealthRequest{}); err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		if _, err := c.WorkflowService().DescribeNamespace(cctx, &workflowservice.DescribeNamespaceRequest{Namespace: t.Namespace}); err != nil {
			return fmt.Errorf("describe namespace %s: %w", t.Namespace, err)
		}
		if len(wantAttrs) == 0 {
			return nil
		}
		resp, err := c.OperatorService().ListSearchAttributes(cctx, &operatorservice.ListSearchAttributesRequest{Namespace: t.Namespace})
		if err != nil {
			return fmt.Errorf("list search attributes: %w", err)
		}
		for _, name := range wantAttrs {
			if _, ok := resp.GetCustomAttributes()[name]; !ok {
				return fmt.Errorf("search attribute %s not registered yet", name)
			}
		}
		return nil
	})
}

// PID is the server's process id.
func (t *Temporal) PID() int { return t.proc.pid() }

// Stop shuts the server down (SIGTERM, then SIGKILL of the process group
// after 15s). Idempotent.
func (t *Temporal) Stop() error {
	t.stopOnce.Do(func() {
		t.stopped = true
		t.stopErr = t.proc.stop(syscall.SIGTERM, 15*time.Second)
	})
	return t.stopErr
}

// Restart stops the server, waits down, and starts it again on the same
// ports and database file, so that workflows, timers and schedules carry
// on: an outage for fault-injection runs. It needs DBFile (an in-memory
// server would come back empty) and must not run concurrently with Stop
// or PID.
func (t *Temporal) Restart(ctx context.Context, down time.Duration) error {
	switch {
	case t.stopped:
		return errors.New("temporal: restart after Stop")
	case t.opts.DBFile == "":
		return errors.New("temporal: restart needs TemporalOptions.DBFile, or every workflow would be lost")
	}
	if err := t.proc.stop(syscall.SIGTERM, 15*time.Second); err != nil {
		return fmt.Errorf("temporal: restart: %w", err)
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return fmt.Errorf("temporal: restart: %w", ctx.Err())
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.StartTimeout)
	defer cancel()
	fresh, err := startTemporalOnce(ctx, t.opts, t.wantAttrs)
	if err != nil {
		return fmt.Errorf("temporal: restart at %s: %w", t.Address, err)
	}
	t.proc = fresh.proc
	return nil
}

// parseSearchAttributes validates "Name=Type" pairs and returns the names.
func parseSearchAttributes(pairs []string) ([]string, error) {
	names := make([]string, 0, len(pairs))
	for _, p := range pairs {
		name, typ, ok := strings.Cut(p, "=")
		if !ok || name == "" || typ == "" {
			return nil, fmt.Errorf("search attribute %q: want Name=Type", p)
		}
		names = append(names, name)
	}
	return names, nil
}

// quietLogger keeps the SDK's retry chatter out of test output.
func quietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
