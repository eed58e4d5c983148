//go:build integration

package payments

// Contract tests against stripe-mock: the requests we send must validate
// against Stripe's OpenAPI spec, and carry exactly the params and headers we
// mean. stripe-mock is stateless (fixtures only), so state transitions are
// tested elsewhere with fakes.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
)

// mockURL is stripe-mock's HTTP base URL, set by TestMain.
var mockURL string

func TestMain(m *testing.M) {
	os.Exit(runWithStripeMock(m))
}

// runWithStripeMock fails (never skips) when stripe-mock is missing, so
// that a CI run with -tags integration cannot pass vacuously.
func runWithStripeMock(m *testing.M) int {
	bin, err := stripeMockPath()
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stripe-mock not available (%v): run make tools (or set HIRES_TOOLS_DIR)\n", err)
		return 1
	}

	// Port 0 for both listeners: parallel runs must not collide on 12111/12112.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stripe-mock: %v\n", err)
		return 1
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start stripe-mock %s: %v\n", bin, err)
		return 1
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	addr, err := waitForHTTPAddr(stdout, 30*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stripe-mock did not start: %v\n", err)
		return 1
	}
	mockURL = "http://" + addr
	return m.Run()
}

func stripeMockPath() (string, error) {
	if dir := os.Getenv("HIRES_TOOLS_DIR"); dir != "" {
		return filepath.Join(dir, "stripe-mock"), nil
	}
	// The test runs in the package directory; the tools live at the module root.
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools", "bin", "stripe-mock"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root (go.mod) not found")
		}
		dir = parent
	}
}

// waitForHTTPAddr reads stripe-mock's "Listening for HTTP at address: …"
// line, then keeps draining stdout (it logs every request) so it never blocks.
func waitForHTTPAddr(stdout io.Reader, timeout time.Duration) (string, error) {
	const prefix = "Listening for HTTP at address: "
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				select {
				case found <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		close(found)
	}()
	select {
	case addr, ok := <-found:
		if !ok {
			return "", errors.New("stripe-mock exited before listening")
		}
		return addr, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no %q line after %s", prefix, timeout)
	}
}

type capturedRequest struct {
	Method string
	Path   string
	Header http.Header
	Query  url.Values
	Form   url.Values
}

type recorder struct {
	mu   sync.Mutex
	reqs []capturedRequest
}

func (r *recorder) all() []capturedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]capturedRequest(nil), r.reqs...)
}

// newMockClient returns a Client whose requests go through a recording
// reverse proxy to stripe-mock.
func newMockClient(t *testing.T, key string) (*Client, *recorder) {
	t.Helper()
	target, err := url.Parse(mockURL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form, _ := url.ParseQuery(string(body))
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, capturedRequest{r.Method, r.URL.Path, r.Header.Clone(), r.URL.Query(), form})
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	c, err := New(key, srv.URL)
	require.NoError(t, err)
	return c, rec
}

func TestMockCreateCheckout(t *testing.T) {
	expires := time.Now().Add(45 * time.Minute)
	withEmail := validParams()
	withEmail.JobID = "job_mock_1"
	withEmail.ExpiresAt = expires
	noEmail := withEmail
	noEmail.JobID = "job_mock_2"
	noEmail.CustomerEmail = ""
	noEmail.Description = ""

	form := func(p CheckoutParams) url.Values {
		v := url.Values{
			"mode":                                          {"payment"},
			"line_items[0][quantity]":                       {"1"},
			"line_items[0][price_data][currency]":           {"usd"},
			"line_items[0][price_data][unit_amount]":        {"499"},
			"line_items[0][price_data][product_data][name]": {"4x AI upscale"},
			"client_reference_id":                           {p.JobID},
			"metadata[job_id]":                              {p.JobID},
			"payment_intent_data[metadata][job_id]":         {p.JobID},
			"success_url":                                   {p.SuccessURL},
			"cancel_url":                                    {p.CancelURL},
			"expires_at":                                    {strconv.FormatInt(expires.Unix(), 10)},
		}
		if p.CustomerEmail != "" {
			v.Set("customer_email", p.CustomerEmail)
		}
		if p.Description != "" {
			v.Set("line_items[0][price_data][product_data][description]", p.Description)
		}
		return v
	}

	for _, p := range []CheckoutParams{withEmail, noEmail} {
		t.Run(p.JobID, func(t *testing.T) {
			c, rec := newMockClient(t, "sk_test_123")

			// Twice, as a retried activity would: the key must not change.
			for range 2 {
				s, err := c.CreateCheckout(context.Background(), p)
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(s.ID, "cs_"), s.ID)
				assert.Equal(t, "open", s.Status)
				assert.NotEmpty(t, s.URL)
				assert.Equal(t, p.JobID, s.ClientReferenceID, "stripe-mock reflects client_reference_id")
				assert.Equal(t, p.JobID, s.JobID)
			}

			reqs := rec.all()
			require.Len(t, reqs, 2)
			for _, r := range reqs {
				assert.Equal(t, http.MethodPost, r.Method)
				assert.Equal(t, "/v1/checkout/sessions", r.Path)
				assert.Equal(t, "checkout:"+p.JobID, r.Header.Get("Idempotency-Key"))
				assert.Equal(t, stripe.APIVersion, r.Header.Get("Stripe-Version"))
				assert.Equal(t, form(p), r.Form)
			}
		})
	}
}

func TestMockGetSession(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	s, err := c.GetSession(context.Background(), "cs_test_get")
	require.NoError(t, err)
	assert.Equal(t, "cs_test_get", s.ID, "stripe-mock reflects the path ID")
	assert.NotEmpty(t, s.PaymentIntentID, "payment_intent is expanded")

	reqs := rec.all()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/v1/checkout/sessions/cs_test_get", reqs[0].Path)
	assert.Equal(t, url.Values{"expand[0]": {"payment_intent"}}, reqs[0].Query)
}

func TestMockExpireSession(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	s, err := c.ExpireSession(context.Background(), "cs_test_exp", "job_mock_3")
	require.NoError(t, err)
	assert.NotEmpty(t, s.ID) // the fixture's status is not meaningful: stripe-mock is stateless

	reqs := rec.all()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodPost, reqs[0].Method)
	assert.Equal(t, "/v1/checkout/sessions/cs_test_exp/expire", reqs[0].Path)
	assert.Equal(t, "expire:job_mock_3", reqs[0].Header.Get("Idempotency-Key"))
	assert.Empty(t, reqs[0].Form)
}

func TestMockValidationNeverReachesStripe(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	for _, mutate := range []func(*CheckoutParams){
		func(p *CheckoutParams) { p.JobID = "" },
		func(p *CheckoutParams) { p.AmountCents = 10 },
		func(p *CheckoutParams) { p.SuccessURL = "hires.example/ok" },
		func(p *CheckoutParams) { p.ExpiresAt = time.Now().Add(25 * time.Hour) },
	} {
		p := validParams()
		mutate(&p)
		_, err := c.CreateCheckout(context.Background(), p)
		require.ErrorIs(t, err, ErrInvalidInput)
		assert.False(t, Retryable(err))
	}
	assert.Empty(t, rec.all())
}

func TestMockBadKeyIsNotRetryable(t *testing.T) {
	// stripe-mock accepts only keys with exactly two underscores, and echoes
	// the Authorization header in its 401 message.
	const key = "sk_test_a_b"
	c, _ := newMockClient(t, key)
	_, err := c.GetSession(context.Background(), "cs_test_1")
	require.Error(t, err)

	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusUnauthorized, apiErr.HTTPStatus)
	assert.Equal(t, "invalid_request_error", apiErr.Type)
	assert.False(t, Retryable(err))
	assert.NotContains(t, err.Error(), key)
	assert.Contains(t, err.Error(), "[REDACTED]")
}

func TestMockRefund(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	p := RefundParams{JobID: "job_mock_4", PaymentIntentID: "pi_3MockRefund", Reason: "upscale_failed"}

	// Twice, as a retried activity would: the key and params must not change.
	for range 2 {
		r, err := c.Refund(context.Background(), p)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(r.ID, "re_"), r.ID)
		assert.Equal(t, p.PaymentIntentID, r.PaymentIntentID, "stripe-mock reflects payment_intent")
		assert.True(t, strings.HasPrefix(r.ChargeID, "ch_"), r.ChargeID)
		assert.NotEmpty(t, r.Status) // the fixture's status and amount are hard-coded
		assert.NotEmpty(t, r.Currency)
		assert.False(t, r.Created.IsZero())
	}

	reqs := rec.all()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/v1/refunds", r.Path)
		assert.Equal(t, "refund:job_mock_4", r.Header.Get("Idempotency-Key"))
		assert.Equal(t, stripe.APIVersion, r.Header.Get("Stripe-Version"))
		assert.Empty(t, r.Query)
		assert.Equal(t, url.Values{
			"payment_intent":   {"pi_3MockRefund"},
			"reason":           {"requested_by_customer"},
			"metadata[job_id]": {"job_mock_4"},
			"metadata[reason]": {"upscale_failed"},
		}, r.Form)
		assert.NotContains(t, r.Form, "amount", "a full refund")
		assert.NotContains(t, r.Form, "charge")
	}
}

func TestMockRefundValidationNeverReachesStripe(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	for _, p := range []RefundParams{
		{JobID: "", PaymentIntentID: "pi_1", Reason: "x"},
		{JobID: "job_1", PaymentIntentID: "", Reason: "x"},
		{JobID: "job_1", PaymentIntentID: "ch_1", Reason: "x"},
		{JobID: "job_1", PaymentIntentID: "pi_", Reason: "x"},
		{JobID: "job_1", PaymentIntentID: "pi_1", Reason: ""},
	} {
		_, err := c.Refund(context.Background(), p)
		require.ErrorIs(t, err, ErrInvalidInput)
		assert.False(t, Retryable(err))
	}
	assert.Empty(t, rec.all())
}

func TestMockRefundBadKeyIsNotRetryable(t *testing.T) {
	const key = "sk_test_a_b" // rejected by stripe-mock, echoed in its 401 message
	c, _ := newMockClient(t, key)
	_, err := c.Refund(context.Background(), RefundParams{JobID: "job_1", PaymentIntentID: "pi_1", Reason: "x"})
	require.Error(t, err)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusUnauthorized, apiErr.HTTPStatus)
	assert.False(t, Retryable(err))
	assert.NotErrorIs(t, err, ErrAlreadyRefunded)
	assert.NotContains(t, err.Error(), key)
}

// PaymentState's request validates against the spec and stripe-go parses
// stripe-mock's PaymentIntent with latest_charge expanded. The fixture's
// amounts and status are hard-coded, so only the shape is checked.
func TestMockPaymentState(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	s, err := c.PaymentState(context.Background(), "pi_3MockState")
	require.NoError(t, err)
	assert.Equal(t, "pi_3MockState", s.PaymentIntentID, "stripe-mock reflects the path ID")
	assert.True(t, strings.HasPrefix(s.ChargeID, "ch_"), "latest_charge is expanded: %q", s.ChargeID)
	assert.NotEmpty(t, s.Status)
	assert.NotEmpty(t, s.Currency)
	assert.Positive(t, s.AmountCents)
	assert.GreaterOrEqual(t, s.AmountRefundedCents, int64(0))

	reqs := rec.all()
	require.Len(t, reqs, 1)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/v1/payment_intents/pi_3MockState", reqs[0].Path)
	assert.Equal(t, url.Values{"expand[0]": {"latest_charge"}}, reqs[0].Query)
	assert.Empty(t, reqs[0].Header.Get("Idempotency-Key"))
}

func TestMockRefundAttemptKey(t *testing.T) {
	c, rec := newMockClient(t, "sk_test_123")
	p := RefundParams{JobID: "job_mock_5", PaymentIntentID: "pi_3MockAttempt", Reason: "upscale_failed", Attempt: 3}
	_, err := c.Refund(context.Background(), p)
	require.NoError(t, err)
	reqs := rec.all()
	require.Len(t, reqs, 1)
	assert.Equal(t, "refund:job_mock_5:3", reqs[0].Header.Get("Idempotency-Key"))
	assert.NotContains(t, reqs[0].Form, "attempt", "the attempt is only in the key")
}
