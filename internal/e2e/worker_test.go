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

// workerProcess is `hires worker` running against the stack.
type workerProcess struct {
	cmd  *exec.Cmd
	done chan error
}

func startWorker(logs io.Writer) (*workerProcess, error) {
	cmd := exec.Command(hiresBin, "worker")
	cmd.Env = os.Environ()
	for k, v := range stack.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "LOG_FORMAT=json")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the tests
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &workerProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait() }()
	return w, nil
}

// kill stops the worker with sig and waits for it to exit.
func (w *workerProcess) kill(sig syscall.Signal) {
	if w == nil {
		return
	}
	_ = w.cmd.Process.Signal(sig)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

func (w *workerProcess) stop() { w.kill(syscall.SIGTERM) }
