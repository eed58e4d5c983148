// Package devstack starts and stops the real components the service depends
// on (PostgreSQL, the Temporal dev server and stripe-mock) as child processes
// bound to loopback, for tests and `make run`. Nothing here downloads
// anything: binaries come from the machine or from the pinned tools directory.
package devstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ToolPath returns the path of a pinned tool binary. If HIRES_TOOLS_DIR is
// set it is the only place looked at (an explicit setting should never be
// silently bypassed); otherwise <repo root>/.tools/bin is used.
func ToolPath(name string) (string, error) {
	return toolEntry(name, isExecutable)
}

// ToolDir returns the path of a directory the tools' build installs next to
// them (Temporal's SQL schema), looked up as ToolPath looks up binaries.
func ToolDir(name string) (string, error) {
	return toolEntry(name, func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.IsDir()
	})
}

func toolEntry(name string, ok func(string) bool) (string, error) {
	if dir := os.Getenv("HIRES_TOOLS_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if ok(p) {
			return p, nil
		}
		return "", fmt.Errorf("tool %q not installed in HIRES_TOOLS_DIR=%s: run `make tools`", name, dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("tool %q not installed: %w: run `make tools`", name, err)
	}
	p := filepath.Join(root, ".tools", "bin", name)
	if !ok(p) {
		return "", fmt.Errorf("tool %q not installed at %s: run `make tools`", name, p)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// repoRoot walks up from the working directory to the directory whose go.mod
// declares `module hires`.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for range 128 { // bounded: no real path is this deep
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(data, "hires") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("repository root (go.mod with `module hires`) not found above the working directory")
}

func declaresModule(gomod []byte, module string) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == module {
			return true
		}
	}
	return false
}

// binOrTool returns bin, or the pinned tool name when bin is empty.
func binOrTool(bin, name string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	p, err := ToolPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// FreePort asks the kernel for a currently unused TCP port on 127.0.0.1.
// Another process may grab it before it is used; starters that rely on it
// retry with a new port when the child reports the address is in use.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portAttempts bounds the retries after losing a FreePort race.
const portAttempts = 3

// process is a started child running in its own process group so that it
// and everything it forks can be killed together.
type process struct {
	name    string
	cmd     *exec.Cmd
	out     *tailWriter
	done    chan struct{} // closed once the child has been reaped
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts cmd with its output going to w (nil = discard) and to
// an in-memory tail used in error messages. onLine, if set, sees every
// complete output line.
func startProcess(name string, cmd *exec.Cmd, w io.Writer, onLine func(string)) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// Without this a dying parent test binary would leave orphans behind.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	tail := newTailWriter(w, 20, onLine)
	cmd.Stdout, cmd.Stderr = tail, tail
	// Output is copied by goroutines that end at EOF; do not let a stray
	// grandchild holding the pipe block Wait forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	p := &process{name: name, cmd: cmd, out: tail, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the child is gone, with its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends sig to the child and waits up to grace for it to exit, then
// kills the whole process group. It is idempotent and returns nil when the
// child exited (for whatever reason) and was reaped.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	p.stopOnce.Do(func() {
		if done, _ := p.exited(); done {
			return
		}
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		// Negative pid = the whole group; the leader is not reaped yet, so
		// the group id cannot have been reused.
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.stopErr = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid())
		}
	})
	return p.stopErr
}

// kill is for start-up failures: no grace period.
func (p *process) kill() { _ = p.stop(syscall.SIGKILL, 0) }

// failure builds a start-up error that names the component and shows what
// it printed last.
func (p *process) failure(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if done, err := p.exited(); done {
		msg += fmt.Sprintf(" (process exited: %v)", err)
	}
	if tail := p.out.Tail(); tail != "" {
		msg += "\n--- last output of " + p.name + " ---\n" + tail
	}
	return errors.New(p.name + ": " + msg)
}

// tailWriter forwards output to an optional writer and remembers the last
// lines. Errors of the downstream writer are ignored so that a broken log
// sink never breaks the child.
type tailWriter struct {
	mu      sync.Mutex
	w       io.Writer
	onLine  func(string)
	max     int
	lines   []string
	partial []byte
}

func newTailWriter(w io.Writer, max int, onLine func(string)) *tailWriter {
	return &tailWriter{w: w, onLine: onLine, max: max}
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		_, _ = t.w.Write(b)
	}
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.addLine(string(bytes.TrimRight(t.partial[:i], "\r")))
		t.partial = t.partial[i+1:]
	}
	// A child that never prints a newline must not grow memory unboundedly.
	if len(t.partial) > 64<<10 {
		t.addLine(string(t.partial))
		t.partial = nil
	}
	return len(b), nil
}

func (t *tailWriter) addLine(l string) {
	if t.onLine != nil {
		t.onLine(l)
	}
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// Tail returns the remembered last lines, including an unterminated one.
func (t *tailWriter) Tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		lines = append(lines, string(t.partial))
	}
	return strings.Join(lines, "\n")
}

// Contains reports whether the remembered output mentions s.
func (t *tailWriter) Contains(s string) bool { return strings.Contains(t.Tail(), s) }

// pollUntil calls check every interval until it returns nil, the deadline
// passes, ctx ends, or the process exits. It returns the last check error.
func pollUntil(ctx context.Context, p *process, interval time.Duration, check func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-p.done:
			return fmt.Errorf("exited before becoming ready (last error: %v)", err)
		case <-t.C:
		}
	}
}
