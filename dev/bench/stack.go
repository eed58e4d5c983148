package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hires/api"
	"hires/dev/devstack"
	"hires/dev/localstack"
	"hires/internal/adminclient"
	"hires/internal/jobs"
)

// stack is the local deployment under test: PostgreSQL and Temporal started
// here (so their processes can be measured), the other components by
// localstack, and the API and the worker as processes of the real binary.
type stack struct {
	*localstack.Stack
	temporal *devstack.Temporal        // the dev server, or
	cluster  *devstack.TemporalCluster // Temporal's four roles on pg
	pg       *devstack.Postgres
	bin      string
	log      io.Writer
	api      *exec.Cmd
	worker   *exec.Cmd
	// extra are the workers after the first, all polling the same task
	// queue, each with its own WORKER_HTTP_ADDR.
	extra []*exec.Cmd
}

// serverTuning: one partition per task queue, as a small deployment would
// run (the default four make every task hop between partitions), and
// activities started eagerly on the worker that schedules them.
var serverTuning = append(slices.Clone(devstack.OnePartition), "system.enableActivityEagerExecution=true")

// startStack brings everything up with env as the service's settings, on
// the Temporal dev server.
func startStack(ctx context.Context, dir string, env map[string]string, log io.Writer) (_ *stack, err error) {
	return startStackOn(ctx, dir, env, log, false)
}

// startStackOn brings everything up on the Temporal dev server, or with
// cluster on Temporal's four roles keeping their databases on the stack's
// PostgreSQL. Both get the same server tuning.
func startStackOn(ctx context.Context, dir string, env map[string]string, log io.Writer, cluster bool) (_ *stack, err error) {
	s := &stack{log: log}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{Output: log}); err != nil {
		return nil, err
	}
	var address string
	if cluster {
		if s.cluster, err = devstack.StartTemporalCluster(ctx, devstack.TemporalClusterOptions{
			PostgresPort: s.pg.Port, UIPort: -1, SearchAttributes: jobs.SearchAttributes,
			Dir: filepath.Join(dir, "temporal"), Output: log, DynamicConfig: serverTuning,
			StartTimeout: 5 * time.Minute, // a loaded machine sets up the schemas slowly
		}); err != nil {
			return nil, err
		}
		address = s.cluster.Address
	} else {
		if s.temporal, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{
			UIPort: -1, SearchAttributes: jobs.SearchAttributes, Output: log, DynamicConfig: serverTuning,
		}); err != nil {
			return nil, err
		}
		address = s.temporal.Address
	}
	environ := map[string]string{"DATABASE_URL": s.pg.URL, "TEMPORAL_ADDRESS": address}
	for k, v := range env {
		environ[k] = v
	}
	if s.Stack, err = localstack.Start(ctx, localstack.Options{
		Environ: environ, DataDir: filepath.Join(dir, "data"), Output: log,
		NoWorker: true, NoAPI: true, UpsamplerDelay: -1, // the stand-in answers at once
	}); err != nil {
		return nil, err
	}
	s.bin = filepath.Join(dir, "hires")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", s.bin, "hires/cmd/hires").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build hires: %v: %s", err, out)
	}
	return s, s.restart(ctx, nil)
}

// restart (re)starts the API and the worker with extra settings on top of
// the stack's, and waits until both answer /readyz.
func (s *stack) restart(ctx context.Context, extra map[string]string) error {
	return s.restartWith(ctx, extra, 1)
}

// restartWith (re)starts the API and workers worker processes, and waits
// until every one answers /readyz.
func (s *stack) restartWith(ctx context.Context, extra map[string]string, workers int) error {
	s.stopServices()
	var err error
	if s.worker, err = s.start("worker", extra); err != nil {
		return err
	}
	readyURLs := []string{s.WorkerHTTPURL + "/readyz"}
	for i := 1; i < workers; i++ {
		port, err := devstack.FreePort()
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		own := map[string]string{"WORKER_HTTP_ADDR": addr}
		for k, v := range extra {
			own[k] = v
		}
		w, err := s.start("worker", own)
		if err != nil {
			return err
		}
		s.extra = append(s.extra, w)
		readyURLs = append(readyURLs, "http://"+addr+"/readyz")
	}
	if s.api, err = s.start("api", extra); err != nil {
		return err
	}
	for i, u := range readyURLs {
		if err := waitReady(ctx, u); err != nil {
			return fmt.Errorf("worker %d: %w", i+1, err)
		}
	}
	if err := waitReady(ctx, s.APIURL+"/readyz"); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.SiteKey == "" { // the site's key, made once through the admin API
		k, err := adminclient.Client{BaseURL: s.APIURL, Token: s.Env["ADMIN_TOKEN"]}.CreateSiteKey(ctx, api.CreateSiteKeyRequest{Name: "bench"})
		if err != nil {
			return fmt.Errorf("site key: %w", err)
		}
		s.SiteKey = k.Key
	}
	return nil
}

func (s *stack) start(role string, extra map[string]string) (*exec.Cmd, error) {
	cmd := exec.Command(s.bin, role)
	cmd.Env = os.Environ()
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	return cmd, nil
}

func (s *stack) stopServices() {
	for _, c := range append([]*exec.Cmd{s.api, s.worker}, s.extra...) {
		if c == nil || c.Process == nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	s.api, s.worker, s.extra = nil, nil, nil
}

// workers are the worker processes running now.
func (s *stack) workers() []*exec.Cmd {
	if s.worker == nil {
		return nil
	}
	return append([]*exec.Cmd{s.worker}, s.extra...)
}

func (s *stack) stop() {
	s.stopServices()
	if s.Stack != nil {
		s.Stack.Stop()
	}
	if s.temporal != nil {
		_ = s.temporal.Stop()
	}
	if s.cluster != nil {
		_ = s.cluster.Stop()
	}
	if s.pg != nil {
		_ = s.pg.Stop()
	}
}

// Memory is the resident memory of the processes, in MiB.
type Memory struct {
	WorkerRSS     float64 `json:"worker_rss_mib"`
	WorkerPeak    float64 `json:"worker_peak_mib"`
	APIRSS        float64 `json:"api_rss_mib"`
	APIPeak       float64 `json:"api_peak_mib"`
	TemporalRSS   float64 `json:"temporal_rss_mib"`
	PostgresTotal float64 `json:"postgres_pss_mib"` // the server and its backends, shared pages split
}

func (s *stack) memory() Memory {
	var m Memory
	m.WorkerRSS, m.WorkerPeak = rss(s.worker.Process.Pid)
	m.APIRSS, m.APIPeak = rss(s.api.Process.Pid)
	m.TemporalRSS, _ = rss(s.temporal.PID())
	m.PostgresTotal = treePSS(s.pg.PID())
	return m
}

// rss reads VmRSS and VmHWM (peak) of a process, in MiB.
func rss(pid int) (cur, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			cur = kib(v)
		case "VmHWM":
			peak = kib(v)
		}
	}
	return cur, peak
}

// treePSS sums the proportional set size of a process and its children.
func treePSS(pid int) float64 {
	total := pss(pid)
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, k := range strings.Fields(string(kids)) {
		if c, err := strconv.Atoi(k); err == nil {
			total += pss(c)
		}
	}
	return total
}

func pss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return kib(v)
		}
	}
	return 0
}

func kib(v string) float64 {
	n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
	return float64(int(n/1024*10+0.5)) / 10
}

func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("not ready within 90s: " + url)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
