package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// service is one `hires` process (api or worker) that faults kill and
// restart. A supervisor restarts it, as systemd or Kubernetes would, when
// it exits on its own (say, it could not reach PostgreSQL at start-up);
// those exits are counted.
type service struct {
	name      string
	bin       string
	env       []string
	logs      io.Writer
	healthURL string

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when the current process has exited
	killing    bool          // the exit in progress is ours
	closed     bool          // no more restarts
	starts     int
	selfExits  int // exits we did not cause
	lastExitAt time.Time
}

func newService(name, bin string, env map[string]string, logs io.Writer, healthURL string) *service {
	s := &service{name: name, bin: bin, logs: logs, healthURL: healthURL}
	s.env = os.Environ()
	for k, v := range env {
		s.env = append(s.env, k+"="+v) // later entries win
	}
	return s
}

// start runs a new process unless one is running already.
func (s *service) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: closed", s.name)
	}
	if s.done != nil && !isDone(s.done) {
		return nil
	}
	cmd := exec.Command(s.bin, s.name)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	// Never outlive the run, even if it is killed itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	done := make(chan struct{})
	s.cmd, s.done, s.killing = cmd, done, false
	s.starts++
	go s.watch(cmd, done)
	return nil
}

// watch reaps the process and restarts it if it exited on its own.
func (s *service) watch(cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Wait()
	s.mu.Lock()
	ours, closed := s.killing, s.closed
	if !ours {
		s.selfExits++
		s.lastExitAt = time.Now()
	}
	s.mu.Unlock()
	close(done)
	if ours || closed {
		return
	}
	time.Sleep(time.Second)
	s.mu.Lock()
	// A fault may have killed (and will restart) it meanwhile.
	mine := !s.closed && !s.killing && s.cmd == cmd
	s.mu.Unlock()
	if !mine {
		return
	}
	if err := s.start(); err != nil {
		fmt.Fprintf(s.logs, "chaos: restarting %s after it exited: %v\n", s.name, err)
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *service) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.killing = true
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the service for good: SIGTERM, then SIGKILL after grace.
func (s *service) stop(grace time.Duration) {
	s.mu.Lock()
	s.closed, s.killing = true, true
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// counts reports how often the service was started and exited by itself.
func (s *service) counts() (starts, selfExits int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, s.selfExits
}

// waitHealthy polls the health URL until it answers 200.
func (s *service) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if err := probe(ctx, hc, s.healthURL); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("%s not healthy at %s within %s: %w", s.name, s.healthURL, timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
