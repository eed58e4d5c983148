package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"hires/internal/apispec"
	"hires/internal/config"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	s, err := apispec.Load(openapiYAML) // parsed, resolved and validated as OpenAPI 3.1
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Doc().OpenAPI; v != "3.1.0" {
		t.Errorf("openapi: %q, want 3.1.0", v)
	}
	if len(s.Operations()) == 0 {
		t.Fatal("no operations")
	}
	for _, op := range s.Operations() {
		method, path, _ := strings.Cut(op, " ")
		o := s.Doc().Paths.Find(path).GetOperation(method)
		if o.OperationID == "" {
			t.Errorf("%s: no operationId", op)
		}
		if method != http.MethodOptions && o.Responses.Status(http.StatusInternalServerError) == nil {
			t.Errorf("%s: 500 not declared", op)
		}
	}
}

// notRoutes are documented operations that no route serves: the router
// (and the CORS middleware) answers OPTIONS.
var notRoutes = []string{"OPTIONS /v1/jobs/{id}"}

var echoParam = regexp.MustCompile(`:([a-z_]+)`)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	a := newTestApp(t, config.Config{DevPayments: true})
	var routes []string
	for _, r := range a.e.Routes() {
		if !slices.Contains([]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
			http.MethodPatch, http.MethodDelete, http.MethodOptions}, r.Method) {
			continue // the groups' not-found routes
		}
		if slices.ContainsFunc(apispec.Excluded, func(p string) bool { return strings.HasPrefix(r.Path, p) }) {
			continue
		}
		routes = append(routes, r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(routes)
	routes = slices.Compact(routes)
	documented := spec.Operations()
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
	}
	for _, op := range documented {
		switch {
		case slices.Contains(routes, op), slices.Contains(notRoutes, op):
		default:
			t.Errorf("api/openapi.yaml documents %s, which no route serves", op)
		}
	}
	if !hasRoute(a, "/dev/jobs/:id/pay") {
		t.Error("the dev route is not registered with DEV_PAYMENTS: the exclusion is not exercised")
	}
	if slices.ContainsFunc(documented, func(op string) bool { return strings.Contains(op, " /dev/") }) {
		t.Error("api/openapi.yaml documents the dev route")
	}
}

func hasRoute(a *testApp, path string) bool {
	return slices.ContainsFunc(a.e.Routes(), func(r *echo.Route) bool { return r.Path == path })
}

func TestServedOpenAPIIsTheCommittedFile(t *testing.T) {
	committed, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := newTestApp(t, config.Config{})
	rec := a.do(httptest.NewRequest(http.MethodGet, "/v1/openapi.yaml", nil), "192.0.2.1:1")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /v1/openapi.yaml: %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(committed) {
		t.Error("GET /v1/openapi.yaml differs from api/openapi.yaml")
	}

	rec = a.do(httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil), "192.0.2.1:1")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: %d", rec.Code)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(rec.Body.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(committed, &fromYAML); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(fromYAML)
	got, _ := json.Marshal(fromJSON)
	if string(got) != string(want) {
		t.Error("GET /v1/openapi.json is not api/openapi.yaml as JSON")
	}
}
