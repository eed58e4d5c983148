package jobs

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// customerFields are the names a field carrying customer data would have:
// an email address, a link with the access token, a Checkout URL, a token.
var customerFields = []string{"email", "url", "token", "secret"}

// No payload that travels through Temporal has a field for customer data:
// Temporal keeps histories, and shows them in the Web UI, long after a job.
// (Upsampler's job ID and the image's own address are not customer data.)
func TestPayloadsHoldNoCustomerData(t *testing.T) {
	allowed := map[string]bool{"WorkflowInput.ImageURL": true}
	for _, v := range []any{WorkflowInput{}, Checkout{}, StripeEvent{}, State{}, RetryRequest{},
		DownloadRequest{}, DownloadInfo{}, UpsamplerCallback{}, LatePaymentInput{}, OwedRefundInput{},
		ReconcileInput{}, ReconcileResult{}} {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			for f := range fields(typ) {
				name := typ.Name() + "." + f
				lower := strings.ToLower(f)
				if !allowed[name] && slices.ContainsFunc(customerFields, func(s string) bool { return strings.Contains(lower, s) }) {
					t.Errorf("%s may carry customer data", name)
				}
			}
		})
	}
}

// fields are the names of typ's fields, nested structs' included.
func fields(typ reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range typ.Fields() {
		out[f.Name] = true
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == typ.PkgPath() {
			for n := range fields(f.Type) {
				out[f.Name+"."+n] = true
			}
		}
	}
	return out
}

// No search attribute is registered for customer data.
func TestSearchAttributesHoldNoCustomerData(t *testing.T) {
	for _, s := range SearchAttributes {
		name, _, _ := strings.Cut(strings.ToLower(s), "=")
		if slices.ContainsFunc(customerFields, func(f string) bool { return strings.Contains(name, f) }) {
			t.Errorf("search attribute %s may hold customer data", s)
		}
	}
}
