//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"hires/api"
	"hires/dev/devstack"
	"hires/dev/upsamplersim"
	"hires/internal/jobs"
	"hires/internal/paysim"
)

// apiProcess is a second `hires api` against the same stack.
type apiProcess struct {
	url  string
	proc *workerProcess // same life cycle as a worker process
}

// startAPI starts it; extra are VAR=value settings on top of the stack's.
func startAPI(t *testing.T, extra ...string) *apiProcess {
	t.Helper()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(hiresBin, "api")
	cmd.Env = os.Environ()
	for k, v := range stack.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Same public URL as the first API: both serve the same jobs.
	cmd.Env = append(cmd.Env, "HTTP_ADDR="+addr, "LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, extra...)
	out := appLogFile()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &apiProcess{url: "http://" + addr, proc: watch(cmd)}
	t.Cleanup(func() { p.proc.kill(syscall.SIGKILL) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := apiClient.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		require.True(t, time.Now().Before(deadline), "second API did not start")
		time.Sleep(100 * time.Millisecond)
	}
}

// longWindowJob creates a w×h job whose payment window outlasts the test
// (the stack's own is paymentTimeout, seconds), through an API of its own,
// for a test that needs the job awaiting payment throughout however slow
// the stack.
func longWindowJob(t *testing.T, w, h int) api.CreateJobResponse {
	t.Helper()
	created, status, err := createSizedAt(startAPI(t, "PAYMENT_TIMEOUT=5m").url, "", w, h)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status)
	return created
}

// createAt creates a job through the API at base, with key as its
// Idempotency-Key if not empty.
func createAt(base, key string) (api.CreateJobResponse, int, error) {
	return createSizedAt(base, key, 120, 100)
}

// createSizedAt is createAt for a w×h image.
func createSizedAt(base, key string, w, h int) (api.CreateJobResponse, int, error) {
	body, _ := json.Marshal(createReq{ImageURL: stack.SampleImageURL(w, h), Resolution: "4x",
		Email: "buyer@example.com", ImageWidth: w, ImageHeight: h})
	req, err := http.NewRequest(http.MethodPost, base+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return api.CreateJobResponse{}, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+stack.SiteKey)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	// A connection per request: a server shutting down closes its idle
	// keep-alive connections, and a POST written on one just then is reset
	// unread, which would pass for a request cut off.
	req.Close = true
	resp, err := apiClient.Do(req)
	if err != nil {
		return api.CreateJobResponse{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return api.CreateJobResponse{}, resp.StatusCode, err
	}
	var out api.CreateJobResponse
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &out); err != nil {
			return out, resp.StatusCode, fmt.Errorf("truncated answer: %w", err)
		}
		accessTokens.Store(out.AccessToken, true)
	}
	return out, resp.StatusCode, nil
}

// Two APIs and two workers side by side on one Temporal and one
// PostgreSQL: jobs created on either are processed by either and all end.
func TestTwoAPIsAndTwoWorkers(t *testing.T) {
	second := startAPI(t)
	w2, err := startWorker(appLogFile(), "WORKER_HTTP_ADDR=127.0.0.1:0") // its own metrics port
	require.NoError(t, err)
	t.Cleanup(func() { w2.kill(syscall.SIGTERM) })

	var ids []string
	for i := 0; i < 8; i++ {
		base := stack.APIURL
		if i%2 == 1 {
			base = second.url
		}
		created, status, err := createAt(base, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, status)
		ids = append(ids, created.ID)
		o := paysimOptions()
		o.APIURL = base
		res, err := paysim.Pay(context.Background(), o, created.ID)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status, res.Body)
	}
	for _, id := range ids {
		waitFor(t, id, 60*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
	}
	tq, err := temporal.DescribeTaskQueue(context.Background(), jobs.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tq.Pollers), 2, "both workers poll the task queue")
}

// SIGTERM to an API under load: it stops taking connections, finishes what
// it accepted, and loses nothing: every request got a whole answer, or none
// (refused, or reset in the listener's queue as it closed), and then the
// site's retry with the same Idempotency-Key at the other API did; every
// job made goes on.
func TestAPIShutdownUnderLoadLosesNothing(t *testing.T) {
	// Its jobs must still be awaiting payment when checked, however long
	// the load and the drain take.
	second := startAPI(t, "PAYMENT_TIMEOUT=5m")
	var (
		mu      sync.Mutex
		created []string
		retried = map[string]bool{} // made by the main API, whose payment window is seconds
		refused int
		bad     []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				key := uuid.NewString()
				job, status, err := createAt(second.url, key)
				if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					// No answer: as a site would, retry the same request
					// elsewhere. It must make the job, or find it made.
					if job, status, err = createAt(stack.APIURL, key); err == nil {
						err = syscall.ECONNREFUSED // the first API is going: stop
						mu.Lock()
						if status == http.StatusCreated {
							created = append(created, job.ID)
							retried[job.ID] = true
						} else {
							bad = append(bad, fmt.Sprintf("retry: HTTP %d", status))
						}
						mu.Unlock()
					}
				}
				mu.Lock()
				switch {
				case err != nil && errors.Is(err, syscall.ECONNREFUSED):
					refused++
				case err != nil:
					bad = append(bad, err.Error())
				case status == http.StatusCreated:
					created = append(created, job.ID)
				default:
					bad = append(bad, fmt.Sprintf("HTTP %d", status))
				}
				stop := refused > 0
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	// Load is running: jobs are being made (slower on a busy cluster).
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(created) >= 4 || len(bad) > 0
	}, 30*time.Second, 50*time.Millisecond, "no job created before the shutdown")
	mu.Lock()
	before := slices.Clone(bad)
	mu.Unlock()
	require.Empty(t, before, "failures before the shutdown")
	require.NoError(t, second.proc.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-second.proc.exited:
		require.NoError(t, second.proc.err, "the API exits cleanly on SIGTERM")
	case <-time.After(40 * time.Second):
		t.Fatal("the API did not stop within its drain time")
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, bad, "no request was cut off or failed")
	require.NotEmpty(t, created)
	for _, id := range created {
		j := adminJob(t, id)
		require.NotNil(t, j.CheckoutSessionID, "job %s has its session", id)
		d, err := temporal.DescribeWorkflowExecution(context.Background(), jobs.WorkflowID(id), "")
		require.NoError(t, err)
		if retried[id] && j.Status == jobs.StatusAbandoned {
			continue // its short window ran out during the drain: it went on, to its end
		}
		require.Equal(t, jobs.StatusAwaitingPayment, j.Status)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.WorkflowExecutionInfo.Status)
	}
	t.Logf("%d jobs created during the shutdown, %d requests refused after it", len(created), refused)
}

// SIGTERM to the worker while jobs are processed: it stops polling, lets
// running activities finish, and a restarted worker completes every job.
func TestWorkerShutdownLosesNoJob(t *testing.T) {
	// Slow enough that the jobs are still processing when the worker stops.
	withBehavior(t, func(b *upsamplersim.Behavior) { b.ProcessingDelay = 5 * time.Second })
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, paidJob(t).ID)
	}
	for _, id := range ids {
		waitFor(t, id, 30*time.Second, "processing", func(j api.AdminJob) bool { return j.Status == jobs.StatusProcessing })
	}
	start := time.Now()
	worker.kill(syscall.SIGTERM)
	require.Less(t, time.Since(start), 30*time.Second, "the worker stopped in time")
	w, err := startWorker(appLogFile())
	require.NoError(t, err)
	worker = w
	for _, id := range ids {
		waitFor(t, id, 90*time.Second, "completed", func(j api.AdminJob) bool { return j.Status == jobs.StatusCompleted })
		require.Equal(t, 0, refundsOf(id))
	}
}
