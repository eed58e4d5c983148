package opskit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.yaml.in/yaml/v3"

	"hires/activities"
	"hires/dev/devstack"
	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/workflows"
)

const (
	alertsFile     = "deploy/prometheus/alerts.yml"
	alertTestsFile = "deploy/prometheus/alerts_test.yml"
	dashboardFile  = "deploy/grafana/hires.json"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// root is the repository root (tests run in internal/opskit).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, alertsFile))
	return dir
}

// promtool is the pinned promtool (make tools). Without HIRES_TOOLS_DIR and
// without .tools/bin/promtool the test is skipped; with HIRES_TOOLS_DIR set
// the binary must be there.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := devstack.ToolPath("promtool")
	if err != nil {
		if os.Getenv("HIRES_TOOLS_DIR") == "" {
			t.Skipf("promtool is not installed (%v): run `make tools`, or set HIRES_TOOLS_DIR", err)
		}
		t.Fatalf("promtool: %v", err)
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = root(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestAlertRulesCheck(t *testing.T) {
	runPromtool(t, "check", "rules", alertsFile)
}

// alerts_test.yml makes each alert fire, and not fire.
func TestAlertRulesUnitTests(t *testing.T) {
	runPromtool(t, "test", "rules", alertTestsFile)
}

// Every alert has a for, a severity and its annotations, and each is tested
// firing in alerts_test.yml.
func TestAlertRulesShape(t *testing.T) {
	var tested struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTestsFile, &tested)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tested.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	rules := alertRules(t)
	require.NotEmpty(t, rules)
	for _, r := range rules {
		require.NotEmpty(t, r.For, "%s: for", r.Alert)
		require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s: severity", r.Alert)
		for _, k := range []string{"summary", "description", "runbook"} {
			require.NotEmpty(t, r.Annotations[k], "%s: annotation %s", r.Alert, k)
		}
		require.True(t, fires[r.Alert], "%s is never tested firing in %s", r.Alert, alertTestsFile)
		require.True(t, quiet[r.Alert], "%s is never tested quiet in %s", r.Alert, alertTestsFile)
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &f)
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), name))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, v), name)
}

// dashboardQueries returns the PromQL of every panel target, rows' panels
// included, by panel title.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), dashboardFile))
	require.NoError(t, err)
	type panel struct {
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &d), dashboardFile)
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title+" "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars stand in for Grafana's range variables, which PromQL cannot parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames parses expr and returns the metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" && name == "" {
				name = m.Value
			}
		}
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
		return nil
	})
	if len(names) == 0 {
		return nil, errors.New("no metric name")
	}
	return names, nil
}

// exported is every metric family the API and the worker export, by name.
type exported map[string]dto.MetricType

// resolve finds name among the exported families: as is, or as a
// histogram's _bucket, _sum or _count series (a summary's _sum or _count).
func (ex exported) resolve(name string) error {
	if _, ok := ex[name]; ok {
		return nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		kind, known := ex[base]
		switch {
		case !known:
		case kind == dto.MetricType_HISTOGRAM, kind == dto.MetricType_GAUGE_HISTOGRAM:
			return nil
		case kind == dto.MetricType_SUMMARY && suffix != "_bucket":
			return nil
		}
	}
	return errors.New("not exported by the API or the worker: " + name)
}

// check returns the metric names in exprs (by where they come from) that
// are not exported.
func (ex exported) check(exprs map[string]string) (unknown []string, err error) {
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			return nil, errors.New(where + ": " + err.Error())
		}
		for _, n := range names {
			if ex.resolve(n) != nil {
				unknown = append(unknown, where+": "+n)
			}
		}
	}
	sort.Strings(unknown)
	return unknown, nil
}

func TestAlertAndDashboardMetricsAreExported(t *testing.T) {
	ex := exportedMetrics(t)
	alerts := map[string]string{}
	for _, r := range alertRules(t) {
		alerts["alert "+r.Alert] = r.Expr
	}
	unknown, err := ex.check(alerts)
	require.NoError(t, err)
	require.Empty(t, unknown, "alert expressions name metrics nobody exports")

	queries := dashboardQueries(t)
	require.GreaterOrEqual(t, len(queries), 20)
	unknown, err = ex.check(queries)
	require.NoError(t, err)
	require.Empty(t, unknown, "dashboard queries name metrics nobody exports")
}

// The check rejects what is not exported, suffixes included.
func TestMetricCheckRejectsUnknownNames(t *testing.T) {
	ex := exportedMetrics(t)
	unknown, err := ex.check(map[string]string{
		"made up":             `sum(rate(hires_jobs_exploded_total[5m])) > 0`,
		"counter as bucket":   `histogram_quantile(0.9, rate(hires_revenue_cents_total_bucket[5m]))`,
		"histogram base only": `rate(hires_http_request_duration_seconds_total[5m])`,
		"by __name__":         `{__name__="temporal_num_pollerz"}`,
		"known":               `hires_upsampler_request_seconds_count + on() hires_refunds_total`,
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"by __name__: temporal_num_pollerz",
		"counter as bucket: hires_revenue_cents_total_bucket",
		"histogram base only: hires_http_request_duration_seconds_total",
		"made up: hires_jobs_exploded_total",
	}, unknown)
	_, err = ex.check(map[string]string{"broken": `sum(rate(hires_refunds_total[5m]`})
	require.Error(t, err)
	require.NoError(t, ex.resolve("hires_http_request_duration_seconds_bucket"))
	require.NoError(t, ex.resolve("temporal_workflow_task_schedule_to_start_latency_seconds_bucket"))
}

// sdkMetric is a Temporal SDK metric the rules or the dashboard use, which
// only a worker polling a real Temporal server emits. It is emitted here
// through the registry's real tally handler (so its exported name is the
// one Prometheus scrapes), and its name is checked against the SDK's source.
type sdkMetric struct {
	name string // as the SDK names it (internal/common/metrics/constants.go)
	kind string // counter, gauge or timer
	tags map[string]string
}

var sdkMetrics = []sdkMetric{
	{"temporal_num_pollers", "gauge", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue, "poller_type": "workflow_task"}},
	{"temporal_worker_task_slots_used", "gauge", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue, "worker_type": "ActivityWorker"}},
	{"temporal_worker_task_slots_available", "gauge", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue, "worker_type": "ActivityWorker"}},
	{"temporal_activity_execution_failed", "counter", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue, "activity_type": "FindOrphans", "workflow_type": jobs.ReconcileWorkflow}},
	{"temporal_workflow_failed", "counter", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue, "workflow_type": jobs.ReconcileWorkflow}},
	{"temporal_workflow_task_schedule_to_start_latency", "timer", map[string]string{"namespace": "default", "task_queue": jobs.TaskQueue}},
}

// The SDK emits each of sdkMetrics: its name is a constant in the SDK's
// metric names, at the version go.mod requires.
func TestSDKMetricsExistInTheSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	require.NoError(t, err, "go list go.temporal.io/sdk")
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "common", "metrics", "constants.go"))
	require.NoError(t, err)
	for _, m := range sdkMetrics {
		short, ok := strings.CutPrefix(m.name, "temporal_")
		require.True(t, ok, m.name)
		require.Contains(t, string(src), `TemporalMetricsPrefix + "`+short+`"`, "%s is not an SDK metric", m.name)
	}
}

// exportedMetrics builds the API's and the worker's registries as the
// processes do, records into every part so each vector has a child, runs
// the reconciliation sweep with the worker's Temporal metrics handler (its
// hires_reconcile_unsettled counter goes through tally), and gathers both.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	ex := exported{}

	api := metrics.New(quiet)
	e := echo.New()
	e.Use(api.HTTP().Middleware())
	e.GET("/v1/jobs/:id", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/jobs/abc", nil))
	api.Webhooks().VerificationFailed(metrics.SourceStripe)
	api.Temporal()
	gather(t, api, ex)
	require.NoError(t, api.Close())

	worker := metrics.New(quiet)
	b := worker.Business()
	b.JobFinished(metrics.JobFailed)
	b.JobFailedBecause(jobs.ReasonUpsamplerTimeout)
	b.Paid(100)
	b.Refunded(100)
	b.RefundFailed()
	b.RefundNeedsAttention()
	b.UpsamplerRequest(metrics.UpsamplerSubmit, time.Second)
	b.UpsamplerCredits(1)
	runSweepWithFailure(t, worker)
	h := worker.Temporal()
	for _, m := range sdkMetrics {
		s := h.WithTags(m.tags)
		switch m.kind {
		case "counter":
			s.Counter(m.name).Inc(1)
		case "gauge":
			s.Gauge(m.name).Update(1)
		case "timer":
			s.Timer(m.name).Record(time.Second)
		default:
			t.Fatalf("%s: kind %q", m.name, m.kind)
		}
	}
	require.NoError(t, worker.Close()) // reports the tally metrics a last time
	gather(t, worker, ex)
	return ex
}

// runSweepWithFailure runs the Reconcile workflow on an orphan whose
// FailJob fails, so the sweep counts it unsettled.
func runSweepWithFailure(t *testing.T, reg *metrics.Registry) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(quiet))
	s.SetMetricsHandler(reg.Temporal())
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: jobs.ReconcileWorkflow})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity("FindOrphans", mock.Anything, mock.Anything).Return([]activities.Orphan{
		{JobID: "j1", Status: jobs.StatusProcessing, PaymentStatus: jobs.PaymentPending, WorkflowStatus: "Terminated"},
	}, nil)
	env.OnActivity("FailJob", mock.Anything, mock.Anything).Return(
		func(context.Context, activities.FailJobInput) error {
			return temporal.NewNonRetryableApplicationError("database down", "Outage", nil)
		})
	env.ExecuteWorkflow(jobs.ReconcileWorkflow, jobs.ReconcileInput{Grace: time.Minute, Batch: 10})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
}

func gather(t *testing.T, r *metrics.Registry, ex exported) {
	t.Helper()
	fams, err := r.Prometheus().Gather()
	require.NoError(t, err)
	for _, f := range fams {
		ex[f.GetName()] = f.GetType()
	}
}
