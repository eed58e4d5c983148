package historyscan

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/sdk/converter"
)

func payloads1(t *testing.T, v any) *commonpb.Payloads {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayloads(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func payload1(t *testing.T, v any) *commonpb.Payload {
	return payloads1(t, v).GetPayloads()[0]
}

// places puts a value in each place of a history that carries payloads.
var places = []struct {
	name  string
	event func(t *testing.T, v any) *historypb.HistoryEvent
}{
	{"workflow input", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
				Input: payloads1(t, v), Identity: "4242@worker.example.com"}}}
	}},
	{"activity input", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
				Input: payloads1(t, v)}}}
	}},
	{"activity header", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
			Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
				Header: &commonpb.Header{Fields: map[string]*commonpb.Payload{"trace": payload1(t, v)}}}}}
	}},
	{"activity result", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
			Attributes: &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
				Result: payloads1(t, v), Identity: "4242@worker.example.com"}}}
	}},
	{"activity failure details", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
			Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
				Failure: &failurepb.Failure{Message: "failed", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{
					ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Details: payloads1(t, v)}}}}}}
	}},
	{"signal", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
				SignalName: "stripe-event", Input: payloads1(t, v)}}}
	}},
	{"update input", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionUpdateAcceptedEventAttributes{WorkflowExecutionUpdateAcceptedEventAttributes: &historypb.WorkflowExecutionUpdateAcceptedEventAttributes{
				AcceptedRequest: &updatepb.Request{Input: &updatepb.Input{Name: "resend-download", Args: payloads1(t, v)}}}}}
	}},
	{"update result", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionUpdateCompletedEventAttributes{WorkflowExecutionUpdateCompletedEventAttributes: &historypb.WorkflowExecutionUpdateCompletedEventAttributes{
				Outcome: &updatepb.Outcome{Value: &updatepb.Outcome_Success{Success: payloads1(t, v)}}}}}
	}},
	{"search attribute", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
			Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
				SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{"Note": payload1(t, v)}}}}}
	}},
	{"memo", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
			Attributes: &historypb.HistoryEvent_WorkflowPropertiesModifiedEventAttributes{WorkflowPropertiesModifiedEventAttributes: &historypb.WorkflowPropertiesModifiedEventAttributes{
				UpsertedMemo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{"note": payload1(t, v)}}}}}
	}},
	{"workflow result", func(t *testing.T, v any) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes{WorkflowExecutionCompletedEventAttributes: &historypb.WorkflowExecutionCompletedEventAttributes{
				Result: payloads1(t, v)}}}
	}},
}

const (
	siteKey     = "6LcSiteKey-registered-by-a-test"
	accessToken = "c6mcXwLdWGg0TZtT_icZM9EvOyE2MWAL-Z3XFTd02MU"                      // base64url HMAC-SHA-256
	download    = "Q3kP8sZ0aL2mN7bV4cX1zW9yT6uR5eE3dF8gH2jK0lM4nB7vC1xZ9aS6dF3gH8jK" // 64 alphanumerics
)

// plants are values that must be found, wherever they are, by one detector.
var plants = []struct {
	name     string
	value    any
	detector string
	match    string
}{
	{"registered secret", map[string]string{"Note": "key " + siteKey}, DetectSecret, siteKey},
	{"email in text", map[string]string{"Note": "write to ada.l@shop.example.com today"}, DetectEmail, "ada.l@shop.example.com"},
	{"email alone", "ada@example.com", DetectEmail, "ada@example.com"},
	{"token= value", map[string]string{"Link": "https://hires.example.com/jobs/1?token=abc123&checkout=success"}, DetectToken, "abc123"},
	{"access-token-shaped", map[string]any{"Values": []string{"x", accessToken}}, DetectToken, accessToken},
	{"download-token-shaped", map[string]string{"Download": "/v1/downloads/" + download}, DetectToken, download},
	{"field Email", map[string]string{"Email": "someone"}, DetectField, "someone"},
	{"field customer_email", map[string]any{"job": map[string]string{"customer_email": "someone"}}, DetectField, "someone"},
	{"field PageURL", map[string]string{"PageURL": "/jobs/1"}, DetectField, "/jobs/1"},
	{"field SuccessURL", map[string]string{"SuccessURL": "/jobs/1?ok"}, DetectField, "/jobs/1?ok"},
	{"field CancelURL", map[string]string{"CancelURL": "/jobs/1?no"}, DetectField, "/jobs/1?no"},
}

// Every planted value is found in every place a history carries payloads.
func TestScanFindsPlantedValues(t *testing.T) {
	for _, place := range places {
		for _, plant := range plants {
			t.Run(place.name+"/"+plant.name, func(t *testing.T) {
				h := &historypb.History{Events: []*historypb.HistoryEvent{place.event(t, plant.value)}}
				h.Events[0].EventId = 7
				found := New().withSecret(siteKey).Scan(h)
				if !slices.ContainsFunc(found, func(f Finding) bool {
					return f.Detector == plant.detector && f.Match == plant.match && f.EventID == 7
				}) {
					t.Fatalf("%s %q not found; found %v", plant.detector, plant.match, found)
				}
			})
		}
	}
}

func (s *Scanner) withSecret(v string) *Scanner { s.Add("site key", v); return s }

// Nothing is found in what a clean history holds: IDs, sums, placeholders,
// a worker's identity, empty fields.
func TestScanLeavesCleanValues(t *testing.T) {
	clean := []any{
		map[string]any{"JobID": "6f1c1b52-0f55-4c3e-9d0e-3a1d2b7c8e90", "SessionID": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY0XB1OFFV",
			"PaymentIntentID": "pi_1Xf95rSNCabcdefghijklmno", "EventID": "evt_0QLueOv3abcdefghijklmnop"},
		map[string]string{"SHA256": "4a0c6a990f6f4a0c6a990f6f4a0c6a990f6f4a0c6a990f6f4a0c6a990f6f4a0c"},
		map[string]string{"Email": "", "PageURL": "", "CustomerEmail": ""},
		map[string]string{"Email": "customer-3@redacted.invalid",
			"PageURL": "http://127.0.0.1:8080/jobs/1?token=" + strings.Repeat("x", 43) + "&checkout=success"},
		map[string]string{"ResultURL": "https://cdn.upsampler.com/r.png", "Status": "submit-with-payment"},
		map[string]any{"Attempt": 3, "Paid": true},
		map[string]string{"Detail": "activity error (type: RefundPayment, identity: 17735@ip-10-0-0-7.ec2.internal@): refused"},
		nil,
	}
	for i, v := range clean {
		for _, place := range places {
			t.Run(fmt.Sprintf("%d/%s", i, place.name), func(t *testing.T) {
				h := &historypb.History{Events: []*historypb.HistoryEvent{place.event(t, v)}}
				if found := New().withSecret(siteKey).Scan(h); len(found) > 0 {
					t.Fatalf("found %v", found)
				}
			})
		}
	}
}

// Findings print masked: a failing test does not log the secret it found.
func TestFindingStringMasks(t *testing.T) {
	f := Finding{EventID: 3, EventType: "ActivityTaskScheduled", Path: "input", Detector: DetectSecret, Label: "site key", Match: siteKey}
	if s := f.String(); strings.Contains(s, siteKey[:8]) || !strings.Contains(s, "site key") {
		t.Fatalf("String() = %s", s)
	}
}

// Search attributes, memo fields and headers are named by their map key:
// one named like a field that carried customer data is found by name too.
func TestScanFindsFieldsByMapKey(t *testing.T) {
	h := &historypb.History{Events: []*historypb.HistoryEvent{{EventId: 1,
		EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
				"CustomerEmail": payload1(t, "not-an-address"), "JobStatus": payload1(t, "completed")}}}}}}}
	found := New().Scan(h)
	if len(found) != 1 || found[0].Detector != DetectField || found[0].Label != "CustomerEmail" {
		t.Fatalf("found %v", found)
	}
}
