package devstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StripeMockAPIKey is a key stripe-mock accepts (it requires exactly the
// sk_test_XXX shape).
const StripeMockAPIKey = "sk_test_123"

// StripeMockOptions configures StartStripeMock.
type StripeMockOptions struct {
	// Bin is the stripe-mock binary; default ToolPath("stripe-mock").
	Bin string
	// Addr to serve plain HTTP on; default "127.0.0.1:0" (a free port).
	Addr string
	// Output receives stripe-mock's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds start-up; default 30s. ctx may end it earlier.
	StartTimeout time.Duration
}

// StripeMock is a running stripe-mock.
type StripeMock struct {
	// URL is the HTTP base URL, e.g. "http://127.0.0.1:12111", for
	// stripe.BackendConfig.URL.
	URL string

	proc     *process
	stopOnce sync.Once
	stopErr  error
}

const stripeMockListenPrefix = "Listening for HTTP at address: "

// StartStripeMock runs stripe-mock and waits until it answers API calls.
func StartStripeMock(ctx context.Context, opts StripeMockOptions) (*StripeMock, error) {
	bin, err := binOrTool(opts.Bin, "stripe-mock")
	if err != nil {
		return nil, err
	}
	opts.Bin = bin
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	// stripe-mock binds port 0 itself and prints the address, so there is no
	// port race. Its HTTPS listener defaults to [::]:12112, which would
	// leave loopback and collide between instances: move it too.
	listening := make(chan string, 1)
	onLine := func(line string) {
		if addr, ok := strings.CutPrefix(line, stripeMockListenPrefix); ok {
			select {
			case listening <- strings.TrimSpace(addr):
			default:
			}
		}
	}
	cmd := exec.Command(opts.Bin, "-http-addr", opts.Addr, "-https-addr", "127.0.0.1:0")
	proc, err := startProcess("stripe-mock", cmd, opts.Output, onLine)
	if err != nil {
		return nil, fmt.Errorf("stripe-mock: %w", err)
	}

	var addr string
	select {
	case addr = <-listening:
	case <-proc.done:
		return nil, proc.failure("exited before listening on %s", opts.Addr)
	case <-ctx.Done():
		proc.kill()
		return nil, proc.failure("did not report its HTTP address for %s: %v", opts.Addr, ctx.Err())
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "::" || host == "0.0.0.0") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	sm := &StripeMock{URL: "http://" + addr, proc: proc}

	hc := &http.Client{Timeout: 2 * time.Second}
	err = pollUntil(ctx, proc, 50*time.Millisecond, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sm.URL+"/v1/charges", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+StripeMockAPIKey)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v1/charges: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		proc.kill()
		return nil, proc.failure("not answering at %s: %v", sm.URL, err)
	}
	return sm, nil
}

// PID is stripe-mock's process id.
func (s *StripeMock) PID() int { return s.proc.pid() }

// Stop terminates stripe-mock (it holds no state worth a graceful stop).
// Idempotent.
func (s *StripeMock) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.proc.stop(syscall.SIGTERM, 5*time.Second) })
	return s.stopErr
}
