package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DatabaseName is the database StartPostgres creates and points URL at.
const DatabaseName = "hires"

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir holds the cluster's data and its unix socket. Empty means a fresh
	// temporary directory that Stop removes. An existing cluster in Dir is
	// reused (no initdb), which lets `make run` keep data across restarts.
	Dir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Output receives initdb's and the server's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds initdb plus start-up; default 60s. ctx may end it
	// earlier.
	StartTimeout time.Duration
}

// Postgres is a running PostgreSQL server started by StartPostgres.
type Postgres struct {
	// URL of database "hires" as user postgres (trust auth, no TLS).
	URL  string
	Port int
	// Dir is the data directory, which also holds the unix socket.
	Dir string

	proc      *process
	removeDir bool
	stopOnce  sync.Once
	stopErr   error
	stopped   bool

	// What Restart needs to start the same server again.
	bin          string
	cred         *syscall.Credential
	output       io.Writer
	startTimeout time.Duration
}

// errNoPostgres is returned when no server binaries can be found.
var errNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; install PostgreSQL 15 or set DATABASE_URL")

// PostgresBinaries returns the paths of initdb and postgres, taken from the
// same installation so that their versions match.
func PostgresBinaries() (initdb, postgres string, err error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	// Debian/Ubuntu keep server binaries off PATH; prefer the newest.
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(found)))
	dirs = append(dirs, found...)
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	return "", "", errNoPostgres
}

// StartPostgres initialises (if needed) and starts a throw-away PostgreSQL
// server on 127.0.0.1 with durability turned off for speed, and creates the
// database "hires".
func StartPostgres(ctx context.Context, opts PostgresOptions) (_ *Postgres, err error) {
	initdbBin, postgresBin, err := PostgresBinaries()
	if err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}

	pg := &Postgres{Dir: opts.Dir, bin: postgresBin, cred: cred, output: opts.Output, startTimeout: opts.StartTimeout}
	if pg.Dir == "" {
		if pg.Dir, err = os.MkdirTemp("", "hires-pg-"); err != nil {
			return nil, fmt.Errorf("postgres: create data dir: %w", err)
		}
		pg.removeDir = true
	} else {
		if pg.Dir, err = filepath.Abs(pg.Dir); err != nil {
			return nil, fmt.Errorf("postgres: data dir: %w", err)
		}
		if err := os.MkdirAll(pg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("postgres: create data dir: %w", err)
		}
	}
	defer func() {
		if err != nil && pg.removeDir {
			_ = os.RemoveAll(pg.Dir)
		}
	}()
	if cred != nil {
		if err := handOver(pg.Dir, cred); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}

	if _, statErr := os.Stat(filepath.Join(pg.Dir, "PG_VERSION")); statErr != nil {
		if err := runInitdb(ctx, initdbBin, pg.Dir, cred, opts.Output); err != nil {
			return nil, err
		}
	}

	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, fmt.Errorf("postgres: %w", err)
			}
		}
		pg.Port = port
		pg.proc, err = startPostgresServer(ctx, postgresBin, pg.Dir, port, cred, opts.Output)
		if err == nil {
			break
		}
		// Lost the race for a port picked by FreePort: try another one.
		if opts.Port == 0 && attempt < portAttempts && pg.proc != nil && pg.proc.out.Contains("Address already in use") {
			continue
		}
		return nil, err
	}

	if err := createDatabase(ctx, pg.adminURL(), DatabaseName); err != nil {
		pg.proc.kill()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pg.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, DatabaseName)
	return pg, nil
}

// adminURL points at the always-present "postgres" database.
func (pg *Postgres) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", pg.Port)
}

// PID is the postmaster's process id.
func (pg *Postgres) PID() int { return pg.proc.pid() }

// Stop shuts the server down (fast shutdown, then SIGKILL of the process
// group after 15s) and removes a temporary data directory. Idempotent.
func (pg *Postgres) Stop() error {
	pg.stopOnce.Do(func() {
		pg.stopped = true
		pg.stopErr = pg.proc.stop(syscall.SIGINT, 15*time.Second)
		if pg.removeDir {
			if err := os.RemoveAll(pg.Dir); err != nil && pg.stopErr == nil {
				pg.stopErr = fmt.Errorf("postgres: remove data dir: %w", err)
			}
		}
	})
	return pg.stopErr
}

// Restart stops the server (fast shutdown), waits down, and starts it
// again on the same data directory and port: an outage that keeps every
// committed row, for fault-injection runs. Connections are cut; clients
// must reconnect. It must not run concurrently with Stop or PID.
func (pg *Postgres) Restart(ctx context.Context, down time.Duration) error {
	if pg.stopped {
		return errors.New("postgres: restart after Stop")
	}
	if err := pg.proc.stop(syscall.SIGINT, 15*time.Second); err != nil {
		return fmt.Errorf("postgres: restart: %w", err)
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return fmt.Errorf("postgres: restart: %w", ctx.Err())
	}
	ctx, cancel := context.WithTimeout(ctx, pg.startTimeout)
	defer cancel()
	p, err := startPostgresServer(ctx, pg.bin, pg.Dir, pg.Port, pg.cred, pg.output)
	if err != nil {
		return fmt.Errorf("postgres: restart on port %d: %w", pg.Port, err)
	}
	pg.proc = p
	return nil
}

func runInitdb(ctx context.Context, bin, dir string, cred *syscall.Credential, out io.Writer) error {
	cmd := exec.Command(bin,
		"-D", dir,
		"-U", "postgres",
		"--auth=trust",
		"--encoding=UTF8",
		"--no-locale", // C collation: fast and independent of installed locales
		"--no-sync",
	)
	p, err := startProcess("initdb", withCredential(cmd, dir, cred), out, nil)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	select {
	case <-p.done:
		if p.waitErr != nil {
			return p.failure("failed to initialise %s", dir)
		}
		return nil
	case <-ctx.Done():
		p.kill()
		return p.failure("did not finish initialising %s: %v", dir, ctx.Err())
	}
}

// startPostgresServer runs postgres as a direct child (rather than via
// pg_ctl) so that its output and lifetime stay under our control.
func startPostgresServer(ctx context.Context, bin, dir string, port int, cred *syscall.Credential, out io.Writer) (*process, error) {
	cmd := exec.Command(bin,
		"-D", dir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		// Throw-away data: trade durability for speed.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	)
	p, err := startProcess("postgres", withCredential(cmd, dir, cred), out, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	err = pollUntil(ctx, p, 50*time.Millisecond, func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(cctx)
		// Make sure it is our server, not another one that owns the port.
		var dataDir string
		if err := conn.QueryRow(cctx, "show data_directory").Scan(&dataDir); err != nil {
			return err
		}
		if dataDir != dir {
			return fmt.Errorf("port %d is served by another PostgreSQL (data directory %s)", port, dataDir)
		}
		return nil
	})
	if err != nil {
		p.kill()
		return p, p.failure("not accepting connections on 127.0.0.1:%d: %v", port, err)
	}
	return p, nil
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "select exists(select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// withCredential runs cmd inside dir, as cred's user when set.
func withCredential(cmd *exec.Cmd, dir string, cred *syscall.Credential) *exec.Cmd {
	// The caller's working directory may be unreadable for the server user.
	cmd.Dir = dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// serverUsers are tried in order when running as root (a variable so that
// tests can exercise the fallback).
var serverUsers = []string{"postgres", "nobody"}

// postgresCredential returns nil when not root. initdb and postgres refuse
// to run as root, so as root they run as user "postgres", or "nobody" when
// that does not exist.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var lastErr error
	for _, name := range serverUsers {
		u, err := user.Lookup(name)
		if err != nil {
			lastErr = err
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			lastErr = fmt.Errorf("unusable user %s (uid %s, gid %s)", name, u.Uid, u.Gid)
			continue
		}
		// Empty Groups drops root's supplementary groups.
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("postgres: running as root and no unprivileged user (%s) to run the server as: %w", strings.Join(serverUsers, ", "), lastErr)
}

// handOver makes dir usable by the unprivileged server user: it must be able
// to reach dir and must own everything in it.
func handOver(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if !canTraverse(d, cred) {
			return fmt.Errorf("data dir %s is not reachable for uid %d: %s is not searchable; choose a Dir (or TMPDIR) under a world-searchable path such as /tmp", dir, cred.Uid, d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("chown data dir %s to uid %d: %w", dir, cred.Uid, err)
	}
	return nil
}

// canTraverse checks the execute bit that applies to cred on directory d.
func canTraverse(d string, cred *syscall.Credential) bool {
	var st syscall.Stat_t
	if err := syscall.Stat(d, &st); err != nil {
		return false
	}
	switch {
	case st.Uid == cred.Uid:
		return st.Mode&0o100 != 0
	case st.Gid == cred.Gid:
		return st.Mode&0o010 != 0
	default:
		return st.Mode&0o001 != 0
	}
}
