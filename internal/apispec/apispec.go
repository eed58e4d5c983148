// Package apispec checks HTTP exchanges with the API against its OpenAPI
// document (api/openapi.yaml), for the tests: the route must be documented,
// the request must match its parameters, headers, security and body, and
// the answer must have a declared status, the declared headers and a body
// of the declared schema.
//
// A request that breaks the document on purpose (bad JSON, an oversized
// body, a wrong method, a missing token) does not fail the check by itself:
// its answer must then be a 4xx the operation declares, with the declared
// error body. Only a documented route answering what the document does not
// declare, or accepting what it forbids, is a violation.
//
// Validation is kin-openapi's (github.com/getkin/kin-openapi): it loads
// OpenAPI 3.1 documents (type arrays with "null", const, webhooks) and
// validates them with JSON Schema 2020-12 (unevaluatedProperties included),
// with fewer dependencies than pb33f/libopenapi-validator.
package apispec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Excluded are the path prefixes the document leaves out on purpose and
// that are not checked: POST /dev/jobs/{id}/pay exists only with
// DEV_PAYMENTS=true (local runs and tests).
var Excluded = []string{"/dev/"}

// Spec is a loaded document.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
	errors *openapi3.Schema // ErrorBody
}

var (
	loadMu sync.Mutex
	loaded = map[[32]byte]*Spec{}
)

func init() {
	// Formats kin-openapi does not check by itself.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122))
	openapi3.DefineStringFormatValidator("date", openapi3.NewRegexpFormatValidator(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`))
}

// Load parses and validates doc (an OpenAPI 3.1 document, YAML or JSON),
// once per content.
func Load(doc []byte) (*Spec, error) {
	key := sha256.Sum256(doc)
	loadMu.Lock()
	defer loadMu.Unlock()
	if s, ok := loaded[key]; ok {
		return s, nil
	}
	l := openapi3.NewLoader()
	t, err := l.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("apispec: load: %w", err)
	}
	if !t.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("apispec: document is OpenAPI %s, want 3.1", t.OpenAPI)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apispec: invalid document: %w", err)
	}
	r, err := gorillamux.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("apispec: router: %w", err)
	}
	s := &Spec{doc: t, router: r}
	if ref := t.Components.Schemas["ErrorBody"]; ref != nil {
		s.errors = ref.Value
	}
	loaded[key] = s
	return s, nil
}

// MustLoad is Load for tests' package variables.
func MustLoad(doc []byte) *Spec {
	s, err := Load(doc)
	if err != nil {
		panic(err)
	}
	return s
}

// Doc is the loaded document.
func (s *Spec) Doc() *openapi3.T { return s.doc }

// Operations lists the documented operations as "METHOD /path/{param}".
func (s *Spec) Operations() []string {
	var out []string
	for path, item := range s.doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// Violation is an exchange the document does not allow.
type Violation struct {
	Method, Path string
	Status       int
	Problems     []string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("apispec: %s %s -> %d breaks api/openapi.yaml:\n  - %s",
		v.Method, v.Path, v.Status, strings.Join(v.Problems, "\n  - "))
}

// Check validates one exchange: req (its body already read into reqBody;
// req.Body is not used) and its answer (status, headers; body respBody).
// It returns a *Violation or nil.
func (s *Spec) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	c := &checker{spec: s, req: req, reqBody: reqBody, resp: resp, respBody: respBody}
	c.run()
	if len(c.problems) > 0 {
		return &Violation{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Problems: c.problems}
	}
	return nil
}

type checker struct {
	spec     *Spec
	req      *http.Request
	reqBody  []byte
	resp     *http.Response
	respBody []byte
	problems []string
}

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) run() {
	for _, p := range Excluded {
		if strings.HasPrefix(c.req.URL.Path, p) {
			return
		}
	}
	r := c.routable()
	route, params, err := c.spec.router.FindRoute(r)
	if err != nil {
		c.unrouted(err)
		return
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			MultiError:            true,
			IncludeResponseStatus: true,
			// Security is checked apart (security below), so that a missing
			// or malformed token is told from other problems.
			AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
		},
	}
	var reqProblems []string
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		reqProblems = append(reqProblems, flatten(err)...)
	}
	secProblem := c.security(route)

	op := route.Operation
	status, body := c.resp.StatusCode, c.respBody
	if secProblem != "" {
		reqProblems = append(reqProblems, secProblem)
	}

	if len(reqProblems) > 0 {
		// A bad request, perhaps on purpose: it must be refused with a
		// declared 4xx.
		if status < 400 || status >= 500 {
			c.fail("the request breaks the document, yet it was answered %d (want a declared 4xx): %s",
				status, strings.Join(reqProblems, "; "))
			return
		}
	}
	c.response(in, op, status, body)
}

// routable is the request as the router and validators want it: an
// absolute URL and its body readable again.
func (c *checker) routable() *http.Request {
	r := c.req.Clone(context.Background())
	u := *c.req.URL
	if u.Host == "" {
		u.Host = "api.test"
	}
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	r.URL = &u
	r.Body = io.NopCloser(bytes.NewReader(c.reqBody))
	r.ContentLength = int64(len(c.reqBody))
	// The API reads every body as JSON whatever its Content-Type says.
	if len(c.reqBody) > 0 && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// unrouted checks the answer to a request the document has no operation
// for: only the router's 404/405 (204 for OPTIONS) may answer it, or a
// 401 from a group's authentication, which runs before the group's
// not-found (any /v1/admin/... path without the admin token).
func (c *checker) unrouted(err error) {
	status := c.resp.StatusCode
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed) && c.req.Method == http.MethodOptions && status == http.StatusNoContent:
		return // the router's Allow answer
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusUnauthorized:
		c.errorBody()
	default:
		c.fail("no documented operation (%v), yet it was answered %d (want 404, 405 or 401)", err, status)
	}
}

// errorBody checks an error answer outside any operation.
func (c *checker) errorBody() {
	if c.req.Method == http.MethodHead || c.spec.errors == nil {
		return
	}
	if mt := mediaType(c.resp.Header.Get("Content-Type")); mt != "application/json" {
		c.fail("error answer has Content-Type %q, want application/json", mt)
		return
	}
	var v any
	if err := json.Unmarshal(c.respBody, &v); err != nil {
		c.fail("error answer is not JSON: %v", err)
		return
	}
	if err := c.spec.errors.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		c.fail("error answer does not match ErrorBody: %s", strings.Join(flatten(err), "; "))
	}
}

// response checks the answer against the operation.
func (c *checker) response(in *openapi3filter.RequestValidationInput, op *openapi3.Operation, status int, body []byte) {
	if op.Responses.Status(status) == nil && op.Responses.Default() == nil {
		c.fail("status %d is not declared (declared: %s)", status, strings.Join(declared(op), ", "))
		return
	}
	if c.req.Method == http.MethodHead {
		return // no body on the wire (a recorder may keep what http.Error wrote)
	}
	if status == http.StatusNotModified {
		return
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 c.resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                in.Options,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		for _, p := range flatten(err) {
			c.fail("answer: %s", p)
		}
	}
}

// security checks the request's credentials' presence and form (not their
// value: that is the API's business, and its 401/404 is then checked).
func (c *checker) security(route *routers.Route) string {
	reqs := c.spec.doc.Security
	if route.Operation.Security != nil {
		reqs = *route.Operation.Security
	}
	if len(reqs) == 0 {
		return ""
	}
	var names []string
	for _, alt := range reqs {
		ok := true
		for name := range alt {
			names = append(names, name)
			ok = ok && c.hasCredential(name)
		}
		if ok {
			return ""
		}
	}
	slices.Sort(names)
	return "no valid credential for " + strings.Join(slices.Compact(names), " or ")
}

var siteKeyForm = regexp.MustCompile(`^hires_sk_[A-Za-z0-9]{43}$`)

func (c *checker) hasCredential(scheme string) bool {
	tok, ok := strings.CutPrefix(c.req.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return false
	}
	if scheme == "siteKey" {
		return siteKeyForm.MatchString(tok)
	}
	return true
}

func declared(op *openapi3.Operation) []string {
	var out []string
	for code := range op.Responses.Map() {
		out = append(out, code)
	}
	slices.Sort(out)
	return out
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// flatten lists the problems in err, one line each, without the schema
// dumps kin-openapi appends.
func flatten(err error) []string {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []string
		for _, e := range me {
			out = append(out, flatten(e)...)
		}
		return out
	}
	msg := err.Error()
	if i := strings.Index(msg, "\nSchema:"); i >= 0 {
		msg = msg[:i]
	}
	return []string{strings.Join(strings.Fields(msg), " ")}
}

// Transport checks every exchange with the API through it. Requests to
// other hosts (Stripe's double, the worker) pass unchecked.
type Transport struct {
	Spec *Spec
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// APIURL is the API's base URL (scheme and host); empty checks every request.
	APIURL string
	// OnViolation is told each violation (RoundTrip returns it too); may be nil.
	OnViolation func(*Violation)
}

// RoundTrip sends req and checks the exchange. A violation is returned as
// the error (a *Violation), the answer closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.checks(req.URL) {
		return base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := t.Spec.Check(req, reqBody, resp, respBody); err != nil {
		var v *Violation
		errors.As(err, &v)
		if t.OnViolation != nil {
			t.OnViolation(v)
		}
		return nil, v
	}
	return resp, nil
}

func (t *Transport) checks(u *url.URL) bool {
	if t.APIURL == "" {
		return true
	}
	api, err := url.Parse(t.APIURL)
	return err == nil && strings.EqualFold(api.Host, u.Host) && api.Scheme == u.Scheme
}
