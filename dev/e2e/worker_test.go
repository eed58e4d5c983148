//go:build integration

package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// buildHires compiles the service's binary for the worker process.
func buildHires(dir string) (string, error) {
	bin := filepath.Join(dir, "hires")
	out, err := exec.Command("go", "build", "-o", bin, "hires/cmd/hires").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build hires: %v: %s", err, out)
	}
	return bin, nil
}

// workerProcess is a `hires` process running against the stack.
type workerProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited
}

// watch records the process's exit.
func watch(cmd *exec.Cmd) *workerProcess {
	w := &workerProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	return w
}

// startWorker starts a worker; extra are VAR=value settings on top of the stack's.
func startWorker(logs io.Writer, extra ...string) (*workerProcess, error) {
	cmd := exec.Command(hiresBin, "worker")
	cmd.Env = os.Environ()
	for k, v := range stack.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the tests
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return watch(cmd), nil
}

// kill stops the worker with sig and waits for it to exit.
func (w *workerProcess) kill(sig syscall.Signal) {
	if w == nil {
		return
	}
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(sig)
	select {
	case <-w.exited:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

func (w *workerProcess) stop() { w.kill(syscall.SIGTERM) }
