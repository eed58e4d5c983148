// Package localstack runs the whole service on one machine, on loopback:
// PostgreSQL, the Temporal dev server (with its Web UI), stripe-mock, the
// Upsampler stand-in, a sample image host, the worker and the API. `make
// run` and the end-to-end tests both use it. A setting given in the
// environment always wins: a component is only started when its address
// was not given.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"hires/api"
	"hires/dev/devstack"
	"hires/dev/samplesite"
	"hires/dev/upsamplersim"
	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/sitekey"
	"hires/internal/store"
	"hires/worker"
)

// Well-known local ports, as README documents them.
const (
	PortAPI        = 8080
	PortTemporal   = 7233
	PortTemporalUI = 8233
	PortStripeMock = 12111
	PortUpsampler  = 8099
	PortSamples    = 8098
	PortMailSMTP   = 1025
	PortMailWeb    = 8025
	PortWorkerHTTP = 9090 // the worker's /metrics, /healthz, /readyz
)

// Local secrets: fine on loopback, never in production.
const (
	LocalWebhookSecret = "whsec_local_development_only"
	LocalAdminToken    = "local-admin-token-0123456789"
	// LocalAccessTokenSecret derives access tokens on local stacks only.
	LocalAccessTokenSecret = "local-access-token-secret-development-only"
	LocalUpsamplerAPIKey   = "local-upsampler-key"
)

// Options configure a stack.
type Options struct {
	// Environ holds settings (usually the process environment). Anything
	// set here is used as is.
	Environ map[string]string
	// WellKnownPorts uses the documented ports; otherwise free ones.
	WellKnownPorts bool
	// DataDir holds PostgreSQL's cluster, Temporal's database and results;
	// empty means a temporary directory removed by Stop.
	DataDir string
	// Output receives the child processes' output; nil discards it.
	Output io.Writer
	Logger *slog.Logger
	// WrapStripe, if set, is given stripe-mock's URL and returns the URL the
	// service should use instead (tests put a recording proxy there).
	WrapStripe func(stripeMockURL string) string
	// UpsamplerDelay is how long the stand-in takes per job (default 2s;
	// negative: it answers at once).
	UpsamplerDelay time.Duration
	// NoWorker leaves the worker out, for callers that run it as a process.
	NoWorker bool
	// NoAPI, with NoWorker, leaves the API out too, for callers that run
	// both as processes: Start returns once the other components are up.
	NoAPI bool
	// Cluster runs Temporal in its production shape instead of the dev
	// server: frontend, history, matching and worker processes on the
	// stack's PostgreSQL, with the standalone Web UI; results go to an S3
	// store (versitygw) instead of files.
	Cluster bool
	// Replicas is how many APIs and workers run (default 1). With more than
	// one, the APIs sit behind a round-robin proxy on the API's address,
	// the only proxy their X-Forwarded-For is trusted from.
	Replicas int
}

// Stack is a running local deployment.
type Stack struct {
	APIURL          string
	TemporalAddress string
	TemporalUIURL   string // "" when Temporal was not started here
	StripeURL       string
	UpsamplerURL    string // the stand-in's base URL, when started here
	SamplesURL      string // the sample image host, when started here
	WorkerHTTPURL   string // the worker's /metrics, /healthz, /readyz
	MailWebURL      string // the mail catcher's inbox, when started here
	// Mailpit is the mail catcher, when started here.
	Mailpit *devstack.Mailpit
	// Postgres is the database server, when started here (tests restart it).
	Postgres *devstack.Postgres
	// TemporalCluster is Temporal's processes, with Options.Cluster.
	TemporalCluster *devstack.TemporalCluster
	// S3 is the object store, with Options.Cluster.
	S3 *devstack.Versitygw
	// APIURLs are the API replicas' own addresses (APIURL is the proxy in
	// front of them when there are several); WorkerHTTPURLs the workers'.
	APIURLs        []string
	WorkerHTTPURLs []string
	// Env is the complete set of settings the API and worker run with.
	Env map[string]string
	// Upsampler is the stand-in, when started here.
	Upsampler *upsamplersim.Server
	// SiteKey is the local selling site's key (LOCAL_SITE_KEY when set,
	// else a fresh one), registered once the API is up.
	SiteKey string

	stops []func()
	errc  chan error
}

// Start brings the stack up; on error everything started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	s := &Stack{errc: make(chan error, 2*max(o.Replicas, 1))}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	env := map[string]string{}
	for k, v := range o.Environ {
		env[k] = v
	}
	has := func(k string) bool { return env[k] != "" }
	setDefault := func(k, v string) {
		if !has(k) {
			env[k] = v
		}
	}
	port := func(wellKnown int) (int, error) {
		if o.WellKnownPorts {
			return wellKnown, nil
		}
		return devstack.FreePort()
	}

	dataDir := o.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "hires-local-"); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { os.RemoveAll(dataDir) })
	}
	setDefault("DATA_DIR", filepath.Join(dataDir, "files"))

	if !has("DATABASE_URL") {
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Output: o.Output})
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { pg.Stop() })
		env["DATABASE_URL"], s.Postgres = pg.URL, pg
	}

	if !has("TEMPORAL_ADDRESS") {
		p, err := port(PortTemporal)
		if err != nil {
			return nil, err
		}
		ui, err := port(PortTemporalUI)
		if err != nil {
			return nil, err
		}
		if o.Cluster {
			if s.Postgres == nil {
				return nil, errors.New("localstack: a cluster keeps Temporal's databases on the PostgreSQL it starts: unset DATABASE_URL, or set TEMPORAL_ADDRESS")
			}
			c, err := devstack.StartTemporalCluster(ctx, devstack.TemporalClusterOptions{
				PostgresPort: s.Postgres.Port, Port: p, UIPort: ui, Namespace: env["TEMPORAL_NAMESPACE"],
				SearchAttributes: jobs.SearchAttributes, Dir: filepath.Join(dataDir, "temporal"), Output: o.Output,
				DynamicConfig: devstack.OnePartition,
			})
			if err != nil {
				return nil, err
			}
			s.stops = append(s.stops, func() { c.Stop() })
			env["TEMPORAL_ADDRESS"], s.TemporalUIURL, s.TemporalCluster = c.Address, c.UIURL, c
		} else {
			t, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
				Port: p, UIPort: ui, Namespace: env["TEMPORAL_NAMESPACE"],
				SearchAttributes: jobs.SearchAttributes, Output: o.Output,
			})
			if err != nil {
				return nil, err
			}
			s.stops = append(s.stops, func() { t.Stop() })
			env["TEMPORAL_ADDRESS"], s.TemporalUIURL = t.Address, t.UIURL
		}
	}
	if o.Cluster && !has("S3_BUCKET") {
		v, err := devstack.StartVersitygw(ctx, devstack.VersitygwOptions{
			Dir: filepath.Join(dataDir, "s3"), Buckets: []string{localBucket}, Output: o.Output,
		})
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { v.Stop() })
		s.S3 = v
		env["S3_ENDPOINT"], env["S3_BUCKET"], env["S3_REGION"] = v.Endpoint, localBucket, v.Region
		env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"] = v.AccessKey, v.SecretKey
	}
	s.TemporalAddress = env["TEMPORAL_ADDRESS"]

	if !has("STRIPE_API_BASE") {
		p, err := port(PortStripeMock)
		if err != nil {
			return nil, err
		}
		sm, err := devstack.StartStripeMock(ctx, devstack.StripeMockOptions{Addr: "127.0.0.1:" + strconv.Itoa(p), Output: o.Output})
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { sm.Stop() })
		env["STRIPE_API_BASE"] = sm.URL
		if o.WrapStripe != nil {
			env["STRIPE_API_BASE"] = o.WrapStripe(sm.URL)
		}
		setDefault("STRIPE_SECRET_KEY", devstack.StripeMockAPIKey)
	}
	s.StripeURL = env["STRIPE_API_BASE"]
	setDefault("STRIPE_WEBHOOK_SECRET", LocalWebhookSecret)

	if !has("UPSAMPLER_BASE_URL") {
		setDefault("UPSAMPLER_API_KEY", LocalUpsamplerAPIKey)
		ln, err := listen(port, PortUpsampler)
		if err != nil {
			return nil, err
		}
		base := "http://" + ln.Addr().String()
		delay := o.UpsamplerDelay
		switch {
		case delay == 0:
			delay = 2 * time.Second
		case delay < 0:
			delay = 0
		}
		s.Upsampler = upsamplersim.New(upsamplersim.Options{
			APIKey: env["UPSAMPLER_API_KEY"], PublicURL: base, ProcessingDelay: delay,
			MaxOutputPixels: 256_000_000, Logger: o.Logger.With("component", "upsampler-standin"),
		})
		s.serve(ln, s.Upsampler)
		s.stops = append(s.stops, s.Upsampler.Close)
		env["UPSAMPLER_BASE_URL"], s.UpsamplerURL = base+"/api/v1", base
		setDefault("UPSAMPLER_RESULT_HOSTS", ln.Addr().String())
	}

	if !has("SMTP_HOST") {
		smtpPort, err := port(PortMailSMTP)
		if err != nil {
			return nil, err
		}
		webPort, err := port(PortMailWeb)
		if err != nil {
			return nil, err
		}
		mp, err := devstack.StartMailpit(ctx, devstack.MailpitOptions{
			SMTPAddr: "127.0.0.1:" + strconv.Itoa(smtpPort), HTTPAddr: "127.0.0.1:" + strconv.Itoa(webPort), Output: o.Output,
		})
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, func() { mp.Stop() })
		s.Mailpit, s.MailWebURL = mp, mp.WebURL
		env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_TLS"] = mp.SMTPHost, strconv.Itoa(mp.SMTPPort), "none"
		setDefault("ADMIN_EMAIL", "admin@localhost")
	}

	if !has("SOURCE_HOSTS") {
		ln, err := listen(port, PortSamples)
		if err != nil {
			return nil, err
		}
		s.serve(ln, samplesite.Handler())
		env["SOURCE_HOSTS"], s.SamplesURL = ln.Addr().String(), "http://"+ln.Addr().String()
	}

	replicas := max(o.Replicas, 1)
	if !has("HTTP_ADDR") {
		p, err := port(PortAPI)
		if err != nil {
			return nil, err
		}
		env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(p)
	}
	if !has("WORKER_HTTP_ADDR") {
		p, err := port(PortWorkerHTTP)
		if err != nil {
			return nil, err
		}
		env["WORKER_HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(p)
	}
	s.WorkerHTTPURL = "http://" + env["WORKER_HTTP_ADDR"]
	setDefault("PUBLIC_BASE_URL", "http://"+env["HTTP_ADDR"])
	setDefault("ADMIN_TOKEN", LocalAdminToken)
	setDefault("ACCESS_TOKEN_SECRET", LocalAccessTokenSecret)
	setDefault("DEV_PAYMENTS", "true") // the page's "Pay (simulated)" button; never in production
	if replicas > 1 {
		setDefault("TRUSTED_PROXIES", "127.0.0.1/32") // the proxy below
	}
	s.APIURL = env["PUBLIC_BASE_URL"]
	s.Env = env

	// Each replica differs from env only in its own listening addresses.
	// With one replica, the API and the worker use env's addresses.
	apiEnvs, workerEnvs := []map[string]string{env}, []map[string]string{env}
	if replicas > 1 {
		apiEnvs, workerEnvs = nil, nil
		for i := range replicas {
			a, err := listenAddr(port, PortAPI+1+i)
			if err != nil {
				return nil, err
			}
			w, err := listenAddr(port, PortWorkerHTTP+1+i)
			if err != nil {
				return nil, err
			}
			apiEnvs = append(apiEnvs, with(env, "HTTP_ADDR", a))
			workerEnvs = append(workerEnvs, with(env, "WORKER_HTTP_ADDR", w))
		}
		s.WorkerHTTPURL = "http://" + workerEnvs[0]["WORKER_HTTP_ADDR"]
	}
	for i := range apiEnvs {
		s.APIURLs = append(s.APIURLs, "http://"+apiEnvs[i]["HTTP_ADDR"])
		s.WorkerHTTPURLs = append(s.WorkerHTTPURLs, "http://"+workerEnvs[i]["WORKER_HTTP_ADDR"])
	}

	if _, err := config.LoadEnv(config.RoleAPI, env); err != nil {
		return nil, err
	}
	if o.NoWorker && o.NoAPI {
		return s, nil
	}
	if _, err := config.LoadEnv(config.RoleWorker, env); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	s.stops = append(s.stops, func() {
		cancel()
		running.Wait()
	})
	run := func(name string, role config.Role, e map[string]string, fn func(context.Context, config.Config, *slog.Logger) error) error {
		cfg, err := config.LoadEnv(role, e)
		if err != nil {
			return err
		}
		running.Add(1)
		go func() {
			defer running.Done()
			s.errc <- fn(runCtx, cfg, o.Logger.With("process", name))
		}()
		return nil
	}
	for i := range apiEnvs {
		suffix := ""
		if replicas > 1 {
			suffix = "-" + strconv.Itoa(i+1)
		}
		if !o.NoWorker {
			if err := run("worker"+suffix, config.RoleWorker, workerEnvs[i], worker.Run); err != nil {
				return nil, err
			}
		}
		if err := run("api"+suffix, config.RoleAPI, apiEnvs[i], api.Run); err != nil {
			return nil, err
		}
	}
	for _, u := range s.APIURLs {
		if err := s.waitHealthy(ctx, u+"/healthz"); err != nil {
			return nil, err
		}
	}
	if replicas > 1 {
		ln, err := net.Listen("tcp", env["HTTP_ADDR"])
		if err != nil {
			return nil, fmt.Errorf("localstack: the API's proxy: %w", err)
		}
		proxy, err := newRoundRobin(s.APIURLs)
		if err != nil {
			return nil, err
		}
		s.serve(ln, proxy)
	}
	if s.SiteKey, err = registerSiteKey(ctx, env); err != nil {
		return nil, err
	}
	return s, nil
}

// localBucket holds results when the stack starts its own S3 store.
const localBucket = "hires-results"

// with returns a copy of env with k set to v.
func with(env map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(env)+1)
	for ek, ev := range env {
		c[ek] = ev
	}
	c[k] = v
	return c
}

// listenAddr picks a loopback host:port for a replica.
func listenAddr(port func(int) (int, error), wellKnown int) (string, error) {
	p, err := port(wellKnown)
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// registerSiteKey gives the local site a key (the API has migrated the
// database by the time it is healthy).
func registerSiteKey(ctx context.Context, env map[string]string) (string, error) {
	key := env["LOCAL_SITE_KEY"]
	if key == "" {
		key = sitekey.New()
	}
	nk, err := api.NewSiteKeyFor(api.CreateSiteKeyRequest{Name: "local"}, key)
	if err != nil {
		return "", fmt.Errorf("LOCAL_SITE_KEY: %w", err)
	}
	st, err := store.Open(ctx, env["DATABASE_URL"])
	if err != nil {
		return "", err
	}
	defer st.Close()
	if _, _, err := st.CreateSiteKey(ctx, nk.Record); err != nil {
		return "", err
	}
	return key, nil
}

// Done reports the first exit of the API or the worker (an error, or nil
// if it stopped cleanly).
func (s *Stack) Done() <-chan error { return s.errc }

// Stop stops everything, newest first.
func (s *Stack) Stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

func listen(port func(int) (int, error), wellKnown int) (net.Listener, error) {
	p, err := port(wellKnown)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return nil, fmt.Errorf("localstack: %w", err)
	}
	return ln, nil
}

func (s *Stack) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at Stop
	s.stops = append(s.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
	})
}

func (s *Stack) waitHealthy(ctx context.Context, healthURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case err := <-s.errc:
			return fmt.Errorf("localstack: a process stopped during start-up: %w", err)
		case <-ctx.Done():
			return errors.New("localstack: the API did not become healthy within 60s")
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(healthURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// SampleImageURL returns a source image URL on the local sample host.
func (s *Stack) SampleImageURL(w, h int) string {
	u, _ := url.JoinPath(s.SamplesURL, "images", fmt.Sprintf("%dx%d.png", w, h))
	return u
}
