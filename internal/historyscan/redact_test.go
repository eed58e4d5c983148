package historyscan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/converter"
)

func TestRedactorString(t *testing.T) {
	r := NewRedactor()
	tests := []struct{ in, want string }{
		{"ada@example.com", "customer-1@redacted.invalid"},
		{"Ada@Example.com and bob@example.org", "customer-1@redacted.invalid and customer-2@redacted.invalid"},
		{"http://h/jobs/1?token=abc&checkout=success", "http://h/jobs/1?token=xxx&checkout=success"},
		{"/v1/downloads/" + download, "/v1/downloads/" + strings.Repeat("x", 64)},
		{accessToken, strings.Repeat("x", 43)},
		{"customer-2@redacted.invalid", "customer-2@redacted.invalid"}, // already redacted
		{"cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY0XB1OFFV", "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY0XB1OFFV"},
		{"completed", "completed"},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// JSON keeps the encoder's escaping (& as \u0026) and everything around
// the strings it changes.
func TestRedactorJSON(t *testing.T) {
	in := `{"JobID":"j1","PageURL":"http://h/jobs/j1?token=abc\u0026checkout=success","Email":"ada@example.com","N":3}`
	want := `{"JobID":"j1","PageURL":"http://h/jobs/j1?token=xxx\u0026checkout=success","Email":"customer-1@redacted.invalid","N":3}`
	if got := string(NewRedactor().JSON([]byte(in))); got != want {
		t.Fatalf("JSON = %s\nwant   %s", got, want)
	}
}

// A history file comes out scanning clean, the same address redacted the
// same way wherever it is (a signal and the search attribute upserted
// from it are compared on replay), the rest of the file untouched.
func TestRedactFile(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	sig, err := dc.ToPayloads(map[string]string{"EventID": "evt_1", "CustomerEmail": "payer@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := dc.ToPayloads(map[string]string{"JobID": "j1", "Email": "payer@example.com",
		"SuccessURL": "http://h/jobs/j1?token=" + accessToken + "&checkout=success"})
	if err != nil {
		t.Fatal(err)
	}
	sa, err := dc.ToPayload("payer@example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := &historypb.History{Events: []*historypb.HistoryEvent{
		{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
				Input: in, Identity: "1@vm@"}}},
		{EventId: 2, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
				SignalName: "stripe-event", Input: sig}}},
		{EventId: 3, EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
			Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
				SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{"CustomerEmail": sa}}}}},
	}}
	raw, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "h.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, _ := New().ScanFile(path); len(found) == 0 {
		t.Fatal("the planted data is not found before redaction")
	}
	n, err := NewRedactor().RedactFile(path)
	if err != nil || n != 3 {
		t.Fatalf("RedactFile = %d, %v; want 3 payloads", n, err)
	}
	if found, err := New(accessToken, "payer@example.com").ScanFile(path); err != nil || len(found) > 0 {
		t.Fatalf("after redaction: %v %v", found, err)
	}
	out, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var email, attr string
	var sigOut map[string]string
	if err := dc.FromPayloads(out.Events[1].GetWorkflowExecutionSignaledEventAttributes().GetInput(), &sigOut); err != nil {
		t.Fatal(err)
	}
	email = sigOut["CustomerEmail"]
	if err := dc.FromPayload(out.Events[2].GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["CustomerEmail"], &attr); err != nil {
		t.Fatal(err)
	}
	if email != "customer-1@redacted.invalid" || attr != email {
		t.Fatalf("signal's email %q, search attribute %q: want the same placeholder", email, attr)
	}
	after, _ := os.ReadFile(path)
	if len(strings.Split(string(after), "\n")) != len(strings.Split(string(raw), "\n")) || !strings.Contains(string(after), `"identity": "1@vm@"`) {
		t.Fatal("the file's layout changed")
	}
	if n, err := NewRedactor().RedactFile(path); err != nil || n != 0 {
		t.Fatalf("second RedactFile = %d, %v; want nothing to do", n, err)
	}
}
