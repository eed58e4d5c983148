package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"hires/internal/apispec"
	"hires/internal/config"
	"hires/internal/events"
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

// TestOpenAPIEventsAreTheCatalogue holds the document's webhooks section to
// the event catalogue, docs/events/<type>.schema.json (the schemas the e2e
// suite checks every delivered event against): each file, without its
// $schema and $id, must be exactly the component Event_<type> (titles and
// descriptions included), and webhooks.<type> must post that component.
func TestOpenAPIEventsAreTheCatalogue(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatal(err)
	}
	doc = normalJSON(t, doc).(map[string]any)
	schemas := walk(doc, "components", "schemas").(map[string]any)
	webhooks, _ := doc["webhooks"].(map[string]any)

	files, err := filepath.Glob(filepath.Join("..", "docs", "events", "*.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var catalogue []string
	for _, typ := range events.Types {
		catalogue = append(catalogue, string(typ))
	}
	var inFiles []string
	for _, f := range files {
		inFiles = append(inFiles, strings.TrimSuffix(filepath.Base(f), ".schema.json"))
	}
	slices.Sort(inFiles)
	if want := slices.Sorted(slices.Values(catalogue)); !slices.Equal(inFiles, want) {
		t.Fatalf("docs/events has schemas for %v, want the catalogue %v", inFiles, want)
	}
	if got := walk(schemas, "EventType", "enum"); !reflect.DeepEqual(got, normalJSON(t, catalogue)) {
		t.Errorf("components.schemas.EventType.enum is %v, want the catalogue %v", got, catalogue)
	}

	for _, typ := range catalogue {
		name := "Event_" + strings.ReplaceAll(typ, ".", "_")
		raw, err := os.ReadFile(filepath.Join("..", "docs", "events", typ+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		var file map[string]any
		if err := json.Unmarshal(raw, &file); err != nil {
			t.Fatalf("docs/events/%s.schema.json: %v", typ, err)
		}
		if file["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("docs/events/%s.schema.json: $schema %v, want draft 2020-12 (the document's dialect)", typ, file["$schema"])
		}
		delete(file, "$schema") // the document's dialect is 2020-12 too
		delete(file, "$id")     // where the file is published; nothing refers to it
		if c := walk(file, "properties", "type", "const"); c != typ {
			t.Errorf("docs/events/%s.schema.json: properties.type.const is %v", typ, c)
		}
		component, ok := schemas[name]
		if !ok {
			t.Errorf("components.schemas.%s is missing (docs/events/%s.schema.json)", name, typ)
			continue
		}
		for _, d := range jsonDiff(name, component, file) {
			t.Errorf("components.schemas.%s differs from docs/events/%s.schema.json: %s", name, typ, d)
		}
		if ref := walk(webhooks, typ, "post", "requestBody", "content", "application/json", "schema", "$ref"); ref != "#/components/schemas/"+name {
			t.Errorf("webhooks.%s.post's body is %v, want #/components/schemas/%s", typ, ref, name)
		}
	}
	for name := range schemas {
		if strings.HasPrefix(name, "Event_") && !slices.Contains(catalogue, strings.Replace(strings.TrimPrefix(name, "Event_"), "_", ".", 1)) {
			t.Errorf("components.schemas.%s is no event type of the catalogue", name)
		}
	}
	for typ := range webhooks {
		if !slices.Contains(catalogue, typ) {
			t.Errorf("webhooks.%s is no event type of the catalogue", typ)
		}
	}
	if n := len(spec.Doc().Webhooks); n != len(catalogue) {
		t.Errorf("the loaded document has %d webhooks, want %d", n, len(catalogue))
	}
}

// normalJSON is v as encoding/json decodes it (float64 numbers, string keys).
func normalJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// walk follows keys down nested objects; nil where one is missing.
func walk(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// jsonDiff lists where got and want (decoded JSON) differ, by path.
func jsonDiff(path string, got, want any) []string {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		keys := map[string]bool{}
		for k := range gm {
			keys[k] = true
		}
		for k := range wm {
			keys[k] = true
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			g, inG := gm[k]
			w, inW := wm[k]
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s.%s is missing (want %s)", path, k, compact(w)))
			case !inW:
				out = append(out, fmt.Sprintf("%s.%s is extra (%s)", path, k, compact(g)))
			default:
				out = append(out, jsonDiff(path+"."+k, g, w)...)
			}
		}
		return out
	}
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("%s is %s, want %s", path, compact(got), compact(want))}
	}
	return nil
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
