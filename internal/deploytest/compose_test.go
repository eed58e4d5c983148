package deploytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"hires/internal/config"
)

// apiDrain is how long the API drains in-flight requests after SIGTERM
// (api/run.go); its stop_grace_period must be longer.
const apiDrain = 30 * time.Second

// composeEnv stands in for the operator's secrets: every variable the file
// requires (${VAR:?...}), with values that pass config.Validate.
var composeEnv = map[string]string{
	"POSTGRES_PASSWORD":     "dummy-postgres-password",
	"S3_ACCESS_KEY_ID":      "dummy-access-key",
	"S3_SECRET_ACCESS_KEY":  "dummy-secret-key",
	"PUBLIC_BASE_URL":       "https://images.example.com",
	"STRIPE_SECRET_KEY":     "sk_test_dummy",
	"STRIPE_WEBHOOK_SECRET": "whsec_dummy",
	"UPSAMPLER_API_KEY":     "dummy-upsampler-key",
	"ADMIN_TOKEN":           "dummy-admin-token-0123456789",
	"ACCESS_TOKEN_SECRET":   "dummy-access-token-secret-0123456789abcdef",
	"SOURCE_HOSTS":          "images.example.com",
}

// load parses, interpolates with env, normalises and validates a compose
// file the way `docker compose` does.
func load(t *testing.T, dir, filename string, content []byte, env map[string]string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filename, Content: content}},
		Environment: maps.Clone(env), // the loader adds to it
	})
}

func loadRepoFile(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return load(t, root, path, content, env)
}

// The checks, each a rule the file must keep.
var checks = []struct {
	name  string
	check func(*types.Project) []error
}{
	{"images are pinned or built here", checkImages},
	{"restart policy says one-shot or server", checkRestart},
	{"servers have health checks", checkHealthChecks},
	{"depends_on conditions can be met", checkDependencies},
	{"app containers get a valid configuration", checkAppConfig},
	{"forwarded headers trusted from the proxy network only", checkTrustedProxies},
	{"nothing published beyond loopback", checkPorts},
}

func checkAll(p *types.Project) []error {
	var errs []error
	for _, c := range checks {
		errs = append(errs, c.check(p)...)
	}
	return errs
}

// TestComposeFile loads docker-compose.yml as `docker compose up` would and
// holds it to every rule.
func TestComposeFile(t *testing.T) {
	p, err := loadRepoFile(t, composeEnv)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range c.check(p) {
				t.Error(err)
			}
		})
	}
	// The stack this file is meant to start.
	for _, name := range []string{"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "objects", "objects-setup", "api", "worker"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s is missing", name)
		}
	}
}

// TestComposeFileRequiresSecrets: without any one of the secrets, the file
// refuses to load instead of starting a misconfigured stack.
func TestComposeFileRequiresSecrets(t *testing.T) {
	for name := range composeEnv {
		t.Run(name, func(t *testing.T) {
			env := maps.Clone(composeEnv)
			delete(env, name)
			if _, err := loadRepoFile(t, env); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("loading without %s: got %v, want an error naming it", name, err)
			}
		})
	}
}

// goodSnippet keeps every rule; each case of TestChecksCatchBreakage breaks
// one of them with a single replacement.
const goodSnippet = `
name: snippet
x-env: &env
  DATABASE_URL: postgres://u:p@db:5432/d
  STRIPE_SECRET_KEY: sk_test_x
  STRIPE_WEBHOOK_SECRET: whsec_x
  UPSAMPLER_API_KEY: upsampler-key
  ADMIN_TOKEN: admin-token-0123456789
  ACCESS_TOKEN_SECRET: 0123456789abcdef0123456789abcdef
  SOURCE_HOSTS: images.example.com
  TEMPORAL_ADDRESS: temporal:7233
services:
  db:
    image: postgres:15.10
    restart: unless-stopped
    healthcheck: {test: ["CMD", "pg_isready"]}
  setup:
    image: busybox:1.37.0
    restart: "no"
    command: ["true"]
    depends_on:
      db: {condition: service_healthy}
  api:
    build: .
    command: ["api"]
    restart: unless-stopped
    environment:
      <<: *env
      TRUSTED_PROXIES: 10.77.0.0/24
    networks: [default, proxy]
    ports: ["127.0.0.1:8080:8080"]
    healthcheck: {test: ["CMD", "hires", "check", "http://127.0.0.1:8080/readyz"]}
    stop_grace_period: 45s
    depends_on:
      setup: {condition: service_completed_successfully}
  worker:
    build: .
    command: ["worker"]
    restart: unless-stopped
    environment:
      <<: *env
      WORKER_STOP_TIMEOUT: 30s
    healthcheck: {test: ["CMD", "hires", "check", "http://127.0.0.1:9090/readyz"]}
    stop_grace_period: 50s
networks:
  proxy:
    ipam:
      config:
        - subnet: 10.77.0.0/24
`

// TestChecksCatchBreakage proves the checks can fail: a compose file that
// keeps every rule passes, and breaking any one rule is caught, by the
// loader or by the checks.
func TestChecksCatchBreakage(t *testing.T) {
	dir := t.TempDir()
	loadSnippet := func(t *testing.T, s string) (*types.Project, error) {
		return load(t, dir, filepath.Join(dir, "docker-compose.yml"), []byte(s), map[string]string{})
	}

	t.Run("good snippet passes", func(t *testing.T) {
		p, err := loadSnippet(t, goodSnippet)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range checkAll(p) {
			t.Error(err)
		}
	})

	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"untagged image", "image: busybox:1.37.0", "image: busybox", "not pinned"},
		{"latest image", "image: postgres:15.10", "image: postgres:latest", "not pinned"},
		{"no image and no build", "    image: busybox:1.37.0\n", "", "neither an image nor a build"},
		{"api lacks ADMIN_TOKEN", "  ADMIN_TOKEN: admin-token-0123456789\n", "", "ADMIN_TOKEN is required"},
		{"worker lacks UPSAMPLER_API_KEY", "  UPSAMPLER_API_KEY: upsampler-key\n", "", "UPSAMPLER_API_KEY is required"},
		{"short ACCESS_TOKEN_SECRET", "ACCESS_TOKEN_SECRET: 0123456789abcdef0123456789abcdef", "ACCESS_TOKEN_SECRET: short", "at least 32"},
		{"variable without a value", "      WORKER_STOP_TIMEOUT: 30s\n", "      WORKER_STOP_TIMEOUT: 30s\n      SOME_HOST_VARIABLE:\n", "SOME_HOST_VARIABLE has no value"},
		{"unknown app command", `command: ["worker"]`, `command: ["serve"]`, "neither api nor worker"},
		{"no worker", `command: ["worker"]`, `command: ["api"]`, "no worker"},
		{"restart unset", "    restart: \"no\"\n", "", "no restart policy"},
		{"server without health check", "    healthcheck: {test: [\"CMD\", \"hires\", \"check\", \"http://127.0.0.1:9090/readyz\"]}\n", "", "no health check"},
		{"healthy condition on a service without health check", "setup: {condition: service_completed_successfully}", "setup: {condition: service_healthy}", "has no health check"},
		{"completed condition on a server", "setup: {condition: service_completed_successfully}", "db: {condition: service_completed_successfully}", "never completes"},
		{"dependency on a missing service", "setup: {condition: service_completed_successfully}", "nosuch: {condition: service_started}", "undefined service"},
		{"dependency cycle", "    image: postgres:15.10\n", "    image: postgres:15.10\n    depends_on: [api]\n", "cycle"},
		{"api stops before it has drained", "stop_grace_period: 45s", "stop_grace_period: 30s", "stop_grace_period"},
		{"worker stops before its activities", "WORKER_STOP_TIMEOUT: 30s", "WORKER_STOP_TIMEOUT: 60s", "stop_grace_period"},
		{"worker without stop_grace_period", "    stop_grace_period: 50s\n", "", "stop_grace_period"},
		{"TRUSTED_PROXIES beyond the proxy network", "TRUSTED_PROXIES: 10.77.0.0/24", "TRUSTED_PROXIES: 10.0.0.0/8", "not inside"},
		{"TRUSTED_PROXIES empty", "TRUSTED_PROXIES: 10.77.0.0/24", `TRUSTED_PROXIES: ""`, "TRUSTED_PROXIES is empty"},
		{"api off the proxy network", "networks: [default, proxy]", "networks: [default]", "not inside"},
		{"api published to the world", `"127.0.0.1:8080:8080"`, `"8080:8080"`, "beyond loopback"},
		{"api published on 0.0.0.0", `"127.0.0.1:8080:8080"`, `"0.0.0.0:8080:8080"`, "beyond loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(goodSnippet, tc.old, tc.new, 1)
			if broken == goodSnippet {
				t.Fatalf("the replacement of %q changed nothing", tc.old)
			}
			p, err := loadSnippet(t, broken)
			if err == nil {
				err = errors.Join(checkAll(p)...)
			}
			if err == nil {
				t.Fatalf("not caught (want %q)", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("caught as %v, want %q", err, tc.want)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// pinned tells whether image names a fixed version: a digest, or a tag
// other than latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	name := image[strings.LastIndex(image, "/")+1:] // a registry's port is not a tag
	i := strings.LastIndex(name, ":")
	return i >= 0 && name[i+1:] != "" && name[i+1:] != "latest"
}

func checkImages(p *types.Project) []error {
	var errs []error
	for _, s := range sorted(p) {
		switch {
		case s.Build != nil:
			// Built from this repository; image, if any, names the result.
		case s.Image == "":
			errs = append(errs, fmt.Errorf("%s: neither an image nor a build", s.Name))
		case !pinned(s.Image):
			errs = append(errs, fmt.Errorf("%s: image %q is not pinned to a version (a tag other than latest, or a digest)", s.Name, s.Image))
		}
	}
	return errs
}

// oneShot tells a job that runs to completion (its restart policy lets it
// end) from a server (restarted whatever happens).
func oneShot(s types.ServiceConfig) bool {
	return s.Restart == types.RestartPolicyNo || strings.HasPrefix(s.Restart, types.RestartPolicyOnFailure)
}

func checkRestart(p *types.Project) []error {
	var errs []error
	for _, s := range sorted(p) {
		switch {
		case s.Restart == "":
			errs = append(errs, fmt.Errorf(`%s: no restart policy: say "no" for a one-shot job, unless-stopped (or always) for a server`, s.Name))
		case !oneShot(s) && s.Restart != types.RestartPolicyAlways && s.Restart != types.RestartPolicyUnlessStopped:
			errs = append(errs, fmt.Errorf("%s: unknown restart policy %q", s.Name, s.Restart))
		}
	}
	return errs
}

func hasHealthCheck(s types.ServiceConfig) bool {
	h := s.HealthCheck
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func checkHealthChecks(p *types.Project) []error {
	var errs []error
	for _, s := range sorted(p) {
		if s.Restart != "" && !oneShot(s) && !hasHealthCheck(s) {
			errs = append(errs, fmt.Errorf("%s: a long-running service with no health check", s.Name))
		}
	}
	return errs
}

func checkDependencies(p *types.Project) []error {
	var errs []error
	for _, s := range sorted(p) {
		for _, name := range slices.Sorted(maps.Keys(s.DependsOn)) {
			dep := s.DependsOn[name]
			target, ok := p.Services[name]
			if !ok {
				errs = append(errs, fmt.Errorf("%s depends on undefined service %s", s.Name, name))
				continue
			}
			switch dep.Condition {
			case types.ServiceConditionStarted:
			case types.ServiceConditionHealthy:
				if !hasHealthCheck(target) {
					errs = append(errs, fmt.Errorf("%s waits for %s to be healthy, but %s has no health check", s.Name, name, name))
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !oneShot(target) {
					errs = append(errs, fmt.Errorf("%s waits for %s to complete, but %s is a server (restart %q) and never completes", s.Name, name, name, target.Restart))
				}
			default:
				errs = append(errs, fmt.Errorf("%s: unknown condition %q on %s", s.Name, dep.Condition, name))
			}
		}
	}
	// A cycle would wait forever: the loader rejects it ("dependency cycle
	// detected"), as it rejects a dependency on an undefined service.
	return errs
}

// appConfig returns the configuration an app container (one built from this
// repository) would load, by its role: `hires api` or `hires worker`.
func appConfig(s types.ServiceConfig) (config.Role, config.Config, error) {
	var role config.Role
	switch {
	case slices.Equal(s.Command, types.ShellCommand{"api"}):
		role = config.RoleAPI
	case slices.Equal(s.Command, types.ShellCommand{"worker"}):
		role = config.RoleWorker
	default:
		return 0, config.Config{}, fmt.Errorf("%s: built from this repository, but its command %q is neither api nor worker", s.Name, s.Command)
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			return role, config.Config{}, fmt.Errorf("%s: %s has no value (it would be taken from the host's environment)", s.Name, k)
		}
		env[k] = *v
	}
	cfg, err := config.LoadEnv(role, env)
	if err != nil {
		return role, config.Config{}, fmt.Errorf("%s: %w", s.Name, err)
	}
	return role, cfg, nil
}

func appServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range sorted(p) {
		if s.Build != nil {
			out = append(out, s)
		}
	}
	return out
}

func checkAppConfig(p *types.Project) []error {
	var errs []error
	roles := map[config.Role]bool{}
	for _, s := range appServices(p) {
		role, cfg, err := appConfig(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		roles[role] = true
		drain := apiDrain
		if role == config.RoleWorker {
			drain = cfg.WorkerStopTimeout
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain {
			got := "unset (10s)"
			if s.StopGracePeriod != nil {
				got = time.Duration(*s.StopGracePeriod).String()
			}
			errs = append(errs, fmt.Errorf("%s: stop_grace_period %s is not longer than its drain (%s): it would be killed mid-drain", s.Name, got, drain))
		}
	}
	if !roles[config.RoleAPI] {
		errs = append(errs, errors.New("no api service (command [api])"))
	}
	if !roles[config.RoleWorker] {
		errs = append(errs, errors.New("no worker service (command [worker])"))
	}
	return errs
}

// checkTrustedProxies: every network in the api's TRUSTED_PROXIES lies
// inside the declared subnet of a network the api is attached to.
func checkTrustedProxies(p *types.Project) []error {
	var errs []error
	for _, s := range appServices(p) {
		role, cfg, err := appConfig(s)
		if err != nil || role != config.RoleAPI {
			continue // reported by checkAppConfig
		}
		trusted, err := cfg.TrustedNetworks()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
			continue
		}
		if len(trusted) == 0 {
			errs = append(errs, fmt.Errorf("%s: TRUSTED_PROXIES is empty: set it to the proxy network's subnet", s.Name))
		}
		var subnets []*net.IPNet
		for _, name := range slices.Sorted(maps.Keys(s.Networks)) {
			for _, pool := range p.Networks[name].Ipam.Config {
				if _, n, err := net.ParseCIDR(pool.Subnet); err == nil {
					subnets = append(subnets, n)
				}
			}
		}
		for _, t := range trusted {
			if !slices.ContainsFunc(subnets, func(n *net.IPNet) bool { return within(t, n) }) {
				errs = append(errs, fmt.Errorf("%s: TRUSTED_PROXIES %s is not inside the declared subnet of a network it is attached to (%v)", s.Name, t, subnets))
			}
		}
	}
	return errs
}

// within tells whether inner is part of outer.
func within(inner, outer *net.IPNet) bool {
	innerOnes, innerBits := inner.Mask.Size()
	outerOnes, outerBits := outer.Mask.Size()
	return innerBits == outerBits && innerOnes >= outerOnes && outer.Contains(inner.IP)
}

// checkPorts: the stack is reached through the reverse proxy's network; a
// port published on all interfaces would bypass it (and Temporal, its UI
// and the databases have no authentication of their own).
func checkPorts(p *types.Project) []error {
	var errs []error
	for _, s := range sorted(p) {
		for _, port := range s.Ports {
			if ip := net.ParseIP(port.HostIP); ip == nil || !ip.IsLoopback() {
				host := port.HostIP
				if host == "" {
					host = "all interfaces"
				}
				errs = append(errs, fmt.Errorf("%s: port %d published on %s, beyond loopback", s.Name, port.Target, host))
			}
		}
	}
	return errs
}

func sorted(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		s.Name = name
		out = append(out, s)
	}
	return out
}
