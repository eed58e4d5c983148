//go:build integration

package tracing_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"hires/dev/devstack"
	"hires/internal/config"
	"hires/internal/jobs"
	"hires/internal/temporalclient"
	"hires/internal/tracing"
)

// A request to the traced Echo app starts a workflow through a client with
// the tracing interceptor (as the API does); a worker on another client with
// it (as the worker process does) runs the workflow and its activity. The
// spans, exported by OTLP/HTTP through Setup to a receiver in the test, make
// one trace per request: route span -> StartWorkflow / UpdateWithStartWorkflow
// -> RunWorkflow -> StartActivity -> RunActivity, and a webhook's
// SignalWorkflow -> HandleSignal.
func TestTraceFromRequestThroughWorkflowAndActivity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := devstack.ToolPath("temporal")
	require.NoError(t, err, "the Temporal CLI is needed: run `make tools`")

	receiver := newOTLPReceiver(t)
	temporal, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		Bin: bin, UIPort: -1, SearchAttributes: jobs.SearchAttributes,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = temporal.Stop() })

	cfg := config.Config{OTLPEndpoint: receiver.URL, ServiceName: "hires-tracing-test"}
	shutdown, err := tracing.Setup(ctx, cfg)
	require.NoError(t, err)
	flushed := false
	t.Cleanup(func() {
		if !flushed {
			_ = shutdown(context.Background())
		}
	})

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dial := func() client.Client {
		interceptors, err := tracing.TemporalInterceptors(cfg)
		require.NoError(t, err)
		require.Len(t, interceptors, 1)
		c, err := temporalclient.Dial(temporal.Address, temporal.Namespace, logger,
			temporalclient.WithInterceptors(interceptors...))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	apiClient, workerClient := dial(), dial()

	const taskQueue = "tracing-test"
	w := sdkworker.New(workerClient, taskQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(probeWorkflow, workflow.RegisterOptions{Name: "TracingProbe"})
	w.RegisterActivityWithOptions(greet, activity.RegisterOptions{Name: "Greet"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	// Paths carry secrets, as the API's download and callback URLs do.
	const secret = "s3cr3t-path-token"
	e := echo.New()
	e.Use(middleware.RequestID(), tracing.EchoMiddleware(cfg))
	e.POST("/v1/run/:token", func(c echo.Context) error {
		run, err := apiClient.ExecuteWorkflow(c.Request().Context(), client.StartWorkflowOptions{
			ID: "tracing-run", TaskQueue: taskQueue,
		}, "TracingProbe", "now")
		if err != nil {
			return err
		}
		var out string
		if err := run.Get(c.Request().Context(), &out); err != nil {
			return err
		}
		return c.String(http.StatusOK, out)
	})
	// As api/jobs.go ensureWorkflow: Update-with-Start, waiting for the update.
	e.POST("/v1/start/:token", func(c echo.Context) error {
		start := apiClient.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID: "tracing-update", TaskQueue: taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, "TracingProbe", "wait")
		h, err := apiClient.UpdateWithStartWorkflow(c.Request().Context(), client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{
				UpdateID: "ready", UpdateName: "ready", WaitForStage: client.WorkflowUpdateStageCompleted,
			},
		})
		if err != nil {
			return err
		}
		var out string
		if err := h.Get(c.Request().Context(), &out); err != nil {
			return err
		}
		return c.String(http.StatusOK, out)
	})
	// As api/webhooks.go: a signal to the running workflow.
	e.POST("/v1/signal/:token", func(c echo.Context) error {
		if err := apiClient.SignalWorkflow(c.Request().Context(), "tracing-update", "", "go", nil); err != nil {
			return err
		}
		return c.NoContent(http.StatusAccepted)
	})
	api := httptest.NewServer(e)
	t.Cleanup(api.Close)

	post := func(path string) string {
		resp, err := http.Post(api.URL+path, "text/plain", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Less(t, resp.StatusCode, 300, "%s: %s", path, body)
		return string(body)
	}
	require.Equal(t, "hello now", post("/v1/run/"+secret))
	require.Equal(t, "ready", post("/v1/start/"+secret))
	post("/v1/signal/" + secret)
	var out string
	require.NoError(t, apiClient.GetWorkflow(ctx, "tracing-update", "").Get(ctx, &out))
	require.Equal(t, "hello wait", out)

	// Every span of interest has ended; shutdown flushes the batch.
	require.NoError(t, shutdown(ctx))
	flushed = true
	spans := receiver.Spans()
	require.Empty(t, receiver.BadPaths(), "spans go to /v1/traces")
	for _, s := range spans {
		assert.Equal(t, "hires-tracing-test", s.Service, s.Name)
		assert.NotContains(t, s.Name, secret)
		for k, v := range s.Attrs {
			assert.NotContains(t, v, secret, "span %s attribute %s", s.Name, k)
		}
	}

	// POST /v1/run: ExecuteWorkflow.
	route := find(t, spans, "POST /v1/run/:token")
	trace := inTrace(spans, route.TraceID)
	startWF := childOf(t, trace, route, "StartWorkflow:TracingProbe")
	runWF := childOf(t, trace, startWF, "RunWorkflow:TracingProbe")
	startAct := childOf(t, trace, runWF, "StartActivity:Greet")
	childOf(t, trace, startAct, "RunActivity:Greet")
	assert.Equal(t, "/v1/run/:token", route.Attrs["http.route"])
	assert.Equal(t, "tracing-run", startWF.Attrs["temporalWorkflowID"])

	// POST /v1/start: Update-with-Start, the API's job creation path.
	route = find(t, spans, "POST /v1/start/:token")
	trace = inTrace(spans, route.TraceID)
	uws := childOf(t, trace, route, "UpdateWithStartWorkflow:ready")
	runWF = childOf(t, trace, uws, "RunWorkflow:TracingProbe")
	childOf(t, trace, uws, "HandleUpdate:ready")
	startAct = childOf(t, trace, runWF, "StartActivity:Greet")
	childOf(t, trace, startAct, "RunActivity:Greet")

	// POST /v1/signal: the webhook path.
	route = find(t, spans, "POST /v1/signal/:token")
	trace = inTrace(spans, route.TraceID)
	sig := childOf(t, trace, route, "SignalWorkflow:go")
	childOf(t, trace, sig, "HandleSignal:go")

	if t.Failed() {
		for _, s := range spans {
			t.Logf("span %s trace=%s id=%s parent=%s", s.Name, s.TraceID, s.SpanID, s.Parent)
		}
	}
}

func probeWorkflow(ctx workflow.Context, mode string) (string, error) {
	if err := workflow.SetUpdateHandler(ctx, "ready", func(workflow.Context) (string, error) {
		return "ready", nil
	}); err != nil {
		return "", err
	}
	if mode == "wait" {
		workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, "Greet", mode).Get(ctx, &out)
	return out, err
}

func greet(_ context.Context, mode string) (string, error) { return "hello " + mode, nil }

// span is one received span, its IDs in hex.
type span struct {
	Name, TraceID, SpanID, Parent, Service string
	Attrs                                  map[string]string
}

func find(t *testing.T, spans []span, name string) span {
	t.Helper()
	var found []span
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", name)
	return found[0]
}

func inTrace(spans []span, traceID string) []span {
	var out []span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// childOf finds the one span named name in trace whose parent is parent.
func childOf(t *testing.T, trace []span, parent span, name string) span {
	t.Helper()
	var found []span
	for _, s := range trace {
		if s.Name == name && s.Parent == parent.SpanID {
			found = append(found, s)
		}
	}
	if !assert.Len(t, found, 1, "%q under %q in trace %s", name, parent.Name, parent.TraceID) {
		return span{Name: name}
	}
	return found[0]
}

// otlpReceiver stands in for a collector's OTLP/HTTP receiver (protobuf).
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []span
	badPaths []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.mu.Lock()
		r.badPaths = append(r.badPaths, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, fmt.Sprintf("not OTLP protobuf: %v", err), http.StatusBadRequest)
		return
	}
	var got []span
	for _, rs := range export.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, a := range s.GetAttributes() {
					switch v := a.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						attrs[a.GetKey()] = v.StringValue
					case *commonpb.AnyValue_IntValue:
						attrs[a.GetKey()] = fmt.Sprint(v.IntValue)
					default:
						attrs[a.GetKey()] = a.GetValue().String()
					}
				}
				got = append(got, span{
					Name: s.GetName(), Service: service, Attrs: attrs,
					TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID:  hex.EncodeToString(s.GetSpanId()),
					Parent:  hex.EncodeToString(s.GetParentSpanId()),
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

func (r *otlpReceiver) Spans() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

func (r *otlpReceiver) BadPaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.badPaths...)
}
