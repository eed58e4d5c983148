package bench

import (
	"context"
	"fmt"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hires/dev/devstack"
)

// Process groups whose CPU time a scale run reports.
const (
	groupTemporal = "Temporal"
	groupWorkers  = "workers"
	groupAPI      = "API"
	groupPostgres = "PostgreSQL"
)

// cpuGroups are the stack's processes by group; on a cluster each Temporal
// role is also a part of its own.
func (s *stack) cpuGroups() cpuGroups {
	var temporal []int
	var parts cpuGroups
	if s.cluster != nil {
		for _, role := range s.cluster.Roles() {
			if pid := s.cluster.PID(role); pid > 0 {
				temporal = append(temporal, pid)
				parts = append(parts, cpuGroup{name: "Temporal " + role, pids: []int{pid}, part: true})
			}
		}
	} else if s.temporal != nil {
		temporal = []int{s.temporal.PID()}
	}
	var workers []int
	for _, w := range s.workers() {
		workers = append(workers, w.Process.Pid)
	}
	g := cpuGroups{
		{name: groupTemporal, pids: temporal},
		{name: groupWorkers, pids: workers},
		{name: groupAPI, pids: pidOf(s.api)},
		{name: groupPostgres, pids: []int{s.pg.PID()}},
	}
	return append(g, parts...)
}

func pidOf(c *exec.Cmd) []int {
	if c == nil || c.Process == nil {
		return nil
	}
	return []int{c.Process.Pid}
}

// processMemory is the resident memory of Temporal's processes (each role
// on a cluster), each worker, the API and PostgreSQL (PSS).
func (s *stack) processMemory() []ProcMem {
	var out []ProcMem
	add := func(name string, pid int) {
		cur, peak := rss(pid)
		out = append(out, ProcMem{Name: name, RSS: cur, Peak: peak})
	}
	if s.cluster != nil {
		for _, role := range s.cluster.Roles() {
			add("Temporal "+role, s.cluster.PID(role))
		}
	} else if s.temporal != nil {
		add("Temporal dev server", s.temporal.PID())
	}
	for i, w := range s.workers() {
		add(fmt.Sprintf("worker %d", i+1), w.Process.Pid)
	}
	if s.api != nil {
		add("API", s.api.Process.Pid)
	}
	out = append(out, ProcMem{Name: "PostgreSQL", PSS: round2(treePSS(s.pg.PID()))})
	return out
}

// databases reads pg_database_size of Temporal's two databases and the
// app's, and how many connections the server holds.
func (s *stack) databases(ctx context.Context) (DBSizes, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.pg.URL)
	if err != nil {
		return DBSizes{}, 0, err
	}
	defer conn.Close(ctx)
	var d DBSizes
	for _, db := range []struct {
		name string
		into *float64
	}{{"temporal", &d.Temporal}, {"temporal_visibility", &d.Visibility}, {devstack.DatabaseName, &d.App}} {
		var bytes int64
		// A database that does not exist (the dev server keeps Temporal's
		// in memory) counts as empty.
		if err := conn.QueryRow(ctx, `SELECT COALESCE((SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1), 0)`, db.name).Scan(&bytes); err != nil {
			return DBSizes{}, 0, err
		}
		*db.into = mib(bytes)
		d.Total += float64(bytes)
	}
	d.Total = mib(int64(d.Total))
	var conns int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'`).Scan(&conns); err != nil {
		return DBSizes{}, 0, err
	}
	return d, conns, nil
}

func mib(bytes int64) float64 { return round2(float64(bytes) / (1 << 20)) }

// postgresVersion is the server's version and max_connections.
func postgresVersion(ctx context.Context, s *stack) (string, int) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.pg.URL)
	if err != nil {
		return "", 0
	}
	defer conn.Close(ctx)
	var v string
	var maxConns int
	_ = conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('max_connections')::int").Scan(&v, &maxConns)
	return v, maxConns
}

// versions names what ran: the pinned tools (read from their binaries'
// build information), the libraries the service is built with and the
// service's own commit.
func versions(ctx context.Context) map[string]string {
	v := map[string]string{}
	for _, t := range []struct{ tool, key, module string }{
		{"temporal", "temporal CLI (dev server)", "github.com/temporalio/cli"},
		{"temporal", "Temporal server in the dev server", "go.temporal.io/server"},
		{"temporal-server", "Temporal server (cluster)", "go.temporal.io/server"},
		{"stripe-mock", "stripe-mock", "github.com/stripe/stripe-mock"},
	} {
		if p, err := devstack.ToolPath(t.tool); err == nil {
			v[t.key] = binaryModule(ctx, p, t.module)
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			switch dep.Path {
			case "go.temporal.io/sdk", "github.com/stripe/stripe-go/v76", "github.com/jackc/pgx/v5", "github.com/labstack/echo/v4":
				v[dep.Path] = dep.Version
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit := strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			commit += " (with uncommitted changes)"
		}
		v["hires"] = commit
	}
	return v
}

// binaryModule is a module's version in a Go binary (`go version -m`),
// whether the main module or a dependency.
func binaryModule(ctx context.Context, bin, module string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	return moduleVersion(string(out), module)
}

// moduleVersion finds a module in `go version -m` output: its "mod" or
// "dep" line, or the "=>" line that replaces it.
func moduleVersion(out, module string) string {
	found := ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == module:
			found = f[2]
		case len(f) >= 3 && f[0] == "=>" && found != "":
			return found + " => " + f[1] + " " + f[2]
		case found != "":
			return found
		}
	}
	return found
}
