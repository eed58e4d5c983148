package jobs

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The deprecated fields that carried customer data are left out of the
// JSON when empty (as they always are now), and still decode from the
// histories of older workflows that set them.
func TestDeprecatedCustomerFields(t *testing.T) {
	tests := []struct {
		name   string
		empty  any
		old    string
		decode func(string) (string, error)
		want   string // what decode finds in old
		keys   []string
	}{
		{"WorkflowInput", WorkflowInput{JobID: "j1", Checkout: &Checkout{SessionID: "cs_1"}},
			`{"JobID":"j1","Email":"a@example.com","SuccessURL":"s","CancelURL":"c","Checkout":{"SessionID":"cs_1","URL":"u"}}`,
			func(s string) (string, error) {
				var in WorkflowInput
				err := json.Unmarshal([]byte(s), &in)
				return in.Email + " " + in.SuccessURL + " " + in.CancelURL + " " + in.Checkout.URL, err
			}, "a@example.com s c u", []string{`"Email"`, `"SuccessURL"`, `"CancelURL"`, `"URL"`}},
		{"StripeEvent", StripeEvent{EventID: "evt_1"}, `{"EventID":"evt_1","CustomerEmail":"a@example.com"}`,
			func(s string) (string, error) {
				var e StripeEvent
				err := json.Unmarshal([]byte(s), &e)
				return e.CustomerEmail, err
			}, "a@example.com", []string{`"CustomerEmail"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.empty)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.keys {
				if strings.Contains(string(raw), k) {
					t.Errorf("%s in %s", k, raw)
				}
			}
			got, err := tt.decode(tt.old)
			if err != nil || got != tt.want {
				t.Errorf("older JSON decodes to %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// CustomerEmail is not registered on new namespaces.
func TestSearchAttributesHoldNoCustomerData(t *testing.T) {
	if slices.ContainsFunc(SearchAttributes, func(s string) bool { return strings.HasPrefix(s, "CustomerEmail=") }) {
		t.Fatalf("SearchAttributes = %v", SearchAttributes)
	}
}
