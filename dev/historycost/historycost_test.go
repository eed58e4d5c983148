package historycost

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// kinds flattens ByKind (or the free items) into one line per kind so that
// a wrong count or a wrong attribution shows up as a readable diff.
func kinds(ks []KindTotal) []string {
	var out []string
	for _, k := range ks {
		var ds []string
		for _, d := range k.Details {
			ds = append(ds, fmt.Sprintf("%s=%d", d.Detail, d.Count))
		}
		out = append(out, fmt.Sprintf("%s %d: %s", k.Kind, k.Count, strings.Join(ds, " ")))
	}
	return out
}

func freeKinds(r Report) []string {
	var out []string
	for _, it := range r.Free {
		out = append(out, fmt.Sprintf("%d %s: %s", it.EventID, it.Kind, it.Detail))
	}
	return out
}

// The expected counts below were taken by hand from the JSON files, event
// by event, against the rules in doc.go.
func TestCommittedHistories(t *testing.T) {
	// Every ImageJob starts by Update-with-Start, records the
	// "notifications" version (marker and TemporalChangeVersion upsert,
	// both free) and accepts the checkout update.
	jobFree := []string{
		"5 version marker: notifications",
		"6 TemporalChangeVersion upsert: TemporalChangeVersion",
		"16 update completed: checkout",
	}
	tests := []struct {
		file    string
		events  int
		actions int
		kinds   []string
		free    []string
	}{{
		file:    "paid_completed_expired.json",
		events:  121,
		actions: 28, // 1+1+14+4+2+3+3
		kinds: []string{
			"workflow started 1: ImageJob=1",
			"update accepted 1: checkout=1",
			"activity scheduled 14: CreateCheckout=1 DeliverEvent=3 RecordPayment=1 SendEmail=3 SubmitUpscale=1 MarkProcessing=1 CheckUpscale=1 StoreResult=1 CompleteJob=1 ExpireDownload=1",
			"timer started 4: 15=1 45=1 71=1 101=1",
			"signal received 2: stripe-event=1 upsampler-callback=1",
			"search attributes upserted 3: CustomerEmail+JobStatus+PaymentStatus=1 JobStatus=2",
			// events 77, 82 and 91: attempt 2 of the DeliverEvent
			// activities scheduled at 14, 29 and 70.
			"activity retry 3: DeliverEvent=3",
		},
		free: append(slices.Clone(jobFree), "121 workflow closed: WorkflowExecutionCompleted"),
	}, {
		file:    "abandoned_payment_timeout.json",
		events:  39,
		actions: 9, // 1+1+4+1+1+1
		kinds: []string{
			"workflow started 1: ImageJob=1",
			"update accepted 1: checkout=1",
			"activity scheduled 4: CreateCheckout=1 DeliverEvent=1 ExpireCheckout=1 RecordAbandoned=1",
			"timer started 1: 15=1",
			"activity retry 1: DeliverEvent=1", // event 17, attempt 2
			"search attributes upserted 1: JobStatus+PaymentStatus=1",
		},
		free: append(slices.Clone(jobFree), "39 workflow closed: WorkflowExecutionCompleted"),
	}, {
		file:    "failed_refunded.json",
		events:  108,
		actions: 26, // 1+1+12+3+2+4+3
		kinds: []string{
			"workflow started 1: ImageJob=1",
			"update accepted 1: checkout=1",
			"activity scheduled 12: CreateCheckout=1 DeliverEvent=3 RecordPayment=1 SendEmail=2 SubmitUpscale=1 MarkProcessing=1 CheckUpscale=1 FailJob=1 RefundPayment=1",
			"timer started 3: 15=1 48=1 75=1",
			"signal received 2: stripe-event=1 upsampler-callback=1",
			"search attributes upserted 4: CustomerEmail+JobStatus+PaymentStatus=1 JobStatus=1 FailureReason+JobStatus=1 PaymentStatus=1",
			"activity retry 3: DeliverEvent=3", // events 81, 86, 95
		},
		free: append(slices.Clone(jobFree), "108 workflow closed: WorkflowExecutionCompleted"),
	}, {
		file:    "late_payment_refund.json",
		events:  27,
		actions: 6, // started by a plain client start: 1+3+2
		kinds: []string{
			"workflow started 1: LatePaymentRefund=1",
			"activity scheduled 3: RecordLatePayment=1 RefundPayment=1 SendEmail=1",
			"search attributes upserted 2: PaymentStatus=2",
		},
		free: []string{
			"5 version marker: notifications",
			"6 TemporalChangeVersion upsert: TemporalChangeVersion",
			"27 workflow closed: WorkflowExecutionCompleted",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := CountFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if r.Events != tt.events {
				t.Errorf("events = %d, want %d", r.Events, tt.events)
			}
			if r.Actions != tt.actions {
				t.Errorf("actions = %d, want %d", r.Actions, tt.actions)
			}
			sum := 0
			for _, it := range r.Items {
				sum += it.Count
			}
			if sum != r.Actions {
				t.Errorf("items add up to %d, Actions says %d", sum, r.Actions)
			}
			if got := kinds(r.ByKind()); !slices.Equal(got, tt.kinds) {
				t.Errorf("by kind:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.kinds, "\n"))
			}
			if got := freeKinds(r); !slices.Equal(got, tt.free) {
				t.Errorf("free:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.free, "\n"))
			}
		})
	}
}

func TestEventsByType(t *testing.T) {
	r, err := CountFile("testdata/abandoned_payment_timeout.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []TypeCount{
		{"WorkflowTaskCompleted", 6}, {"WorkflowTaskScheduled", 6}, {"WorkflowTaskStarted", 6},
		{"ActivityTaskCompleted", 4}, {"ActivityTaskScheduled", 4}, {"ActivityTaskStarted", 4},
		{"UpsertWorkflowSearchAttributes", 2},
		{"MarkerRecorded", 1}, {"TimerFired", 1}, {"TimerStarted", 1},
		{"WorkflowExecutionCompleted", 1}, {"WorkflowExecutionStarted", 1},
		{"WorkflowExecutionUpdateAccepted", 1}, {"WorkflowExecutionUpdateCompleted", 1},
	}
	if !slices.Equal(r.EventsByType, want) {
		t.Errorf("events by type = %v, want %v", r.EventsByType, want)
	}
}

// Base64 of payloads used by the synthetic histories.
const (
	jsonPlain = `{"encoding":"anNvbi9wbGFpbg=="}`
	// {"ActivityID": "1", "ActivityType": "Lookup", "Attempt": 1}
	laLookup = `{"payloads":[{"metadata":` + jsonPlain + `,"data":"eyJBY3Rpdml0eUlEIjogIjEiLCAiQWN0aXZpdHlUeXBlIjogIkxvb2t1cCIsICJBdHRlbXB0IjogMX0="}]}`
	// {"ActivityID": "2", "ActivityType": "Geocode", "Attempt": 3}
	laGeocode = `{"payloads":[{"metadata":` + jsonPlain + `,"data":"eyJBY3Rpdml0eUlEIjogIjIiLCAiQWN0aXZpdHlUeXBlIjogIkdlb2NvZGUiLCAiQXR0ZW1wdCI6IDN9"}]}`
	// "checkout-v2"
	changeID = `{"payloads":[{"metadata":` + jsonPlain + `,"data":"ImNoZWNrb3V0LXYyIg=="}]}`
	anySA    = `{"metadata":` + jsonPlain + `,"data":"MQ=="}`
)

// history wraps events in the export format, so that the synthetic cases
// also go through Read.
func history(t *testing.T, events ...string) Report {
	t.Helper()
	h, err := Read(strings.NewReader(`{"events":[` + strings.Join(events, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return Count(h)
}

func ev(id int, typ, attrs string) string {
	return fmt.Sprintf(`{"eventId":"%d","eventType":"EVENT_TYPE_%s",%s}`, id, typ, attrs)
}

func started(id int, attrs string) string {
	return ev(id, "WORKFLOW_EXECUTION_STARTED", `"workflowExecutionStartedEventAttributes":{"workflowType":{"name":"W"},`+attrs+`}`)
}

func wftCompleted(id int, lazyAttempts int) string {
	return ev(id, "WORKFLOW_TASK_COMPLETED", fmt.Sprintf(`"workflowTaskCompletedEventAttributes":{"scheduledEventId":"%d","meteringMetadata":{"nonfirstLocalActivityExecutionAttempts":%d}}`, id-2, lazyAttempts))
}

func marker(id int, name string, task int, details string) string {
	return ev(id, "MARKER_RECORDED", fmt.Sprintf(`"markerRecordedEventAttributes":{"markerName":%q,"workflowTaskCompletedEventId":"%d","details":{%s}}`, name, task, details))
}

func TestSyntheticHistories(t *testing.T) {
	tests := []struct {
		name    string
		events  []string
		actions int
		kinds   []string
		free    []string
	}{{
		name: "activity retries",
		events: []string{
			started(1, `"attempt":1`),
			ev(5, "ACTIVITY_TASK_SCHEDULED", `"activityTaskScheduledEventAttributes":{"activityId":"5","activityType":{"name":"Flaky"}}`),
			ev(6, "ACTIVITY_TASK_SCHEDULED", `"activityTaskScheduledEventAttributes":{"activityId":"6","activityType":{"name":"Steady"}}`),
			ev(7, "ACTIVITY_TASK_STARTED", `"activityTaskStartedEventAttributes":{"scheduledEventId":"5","attempt":4}`),
			ev(8, "ACTIVITY_TASK_STARTED", `"activityTaskStartedEventAttributes":{"scheduledEventId":"6","attempt":1}`),
			ev(9, "ACTIVITY_TASK_COMPLETED", `"activityTaskCompletedEventAttributes":{"scheduledEventId":"5","startedEventId":"7"}`),
			ev(10, "ACTIVITY_TASK_FAILED", `"activityTaskFailedEventAttributes":{"scheduledEventId":"6","startedEventId":"8"}`),
			ev(11, "WORKFLOW_EXECUTION_FAILED", `"workflowExecutionFailedEventAttributes":{}`),
		},
		actions: 6, // start, two activities, attempts 2-4 of Flaky
		kinds: []string{
			"workflow started 1: W=1",
			"activity scheduled 2: Flaky=1 Steady=1",
			"activity retry 3: Flaky=3",
		},
		free: []string{"11 workflow closed: WorkflowExecutionFailed"},
	}, {
		name: "local activities and markers",
		events: []string{
			started(1, `"attempt":1`),
			wftCompleted(4, 0),
			marker(5, "Version", 4, `"change-id":`+changeID),
			marker(6, "LocalActivity", 4, `"data":`+laLookup),
			marker(7, "LocalActivity", 4, `"data":`+laGeocode),
			marker(8, "SideEffect", 4, ""),
			ev(9, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", `"upsertWorkflowSearchAttributesEventAttributes":{"searchAttributes":{"indexedFields":{"TemporalChangeVersion":`+anySA+`}}}`),
			wftCompleted(12, 2), // two local activity attempts after a task heartbeat
			marker(13, "MutableSideEffect", 12, ""),
			marker(14, "core_local_activity", 12, ""),
			marker(15, "core_patch", 12, ""),
			wftCompleted(18, 250), // capped at 100
			marker(19, "LocalActivity", 18, `"data":`+laLookup),
			ev(20, "WORKFLOW_EXECUTION_COMPLETED", `"workflowExecutionCompletedEventAttributes":{}`),
		},
		actions: 106, // 1 + three tasks with markers + 2 + 100
		kinds: []string{
			"workflow started 1: W=1",
			"markers of one workflow task 3: task 4: LocalActivity Lookup, LocalActivity Geocode, SideEffect=1 task 12: MutableSideEffect, core_local_activity=1 task 18: LocalActivity Lookup=1",
			"local activity retry 102: workflow task 12=2 workflow task 18=100",
		},
		free: []string{
			"5 version marker: checkout-v2",
			"9 TemporalChangeVersion upsert: TemporalChangeVersion",
			"15 version marker: core_patch",
			"20 workflow closed: WorkflowExecutionCompleted",
		},
	}, {
		name: "messages, children and the rest",
		events: []string{
			started(1, `"attempt":1`),
			ev(2, "WORKFLOW_EXECUTION_SIGNALED", `"workflowExecutionSignaledEventAttributes":{"signalName":"go"}`),
			ev(5, "START_CHILD_WORKFLOW_EXECUTION_INITIATED", `"startChildWorkflowExecutionInitiatedEventAttributes":{"workflowId":"c","workflowType":{"name":"Child"}}`),
			ev(6, "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED", `"signalExternalWorkflowExecutionInitiatedEventAttributes":{"signalName":"ping"}`),
			ev(7, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", `"upsertWorkflowSearchAttributesEventAttributes":{"searchAttributes":{"indexedFields":{"TemporalChangeVersion":`+anySA+`,"JobStatus":`+anySA+`}}}`),
			ev(8, "WORKFLOW_PROPERTIES_MODIFIED", `"workflowPropertiesModifiedEventAttributes":{"upsertedMemo":{"fields":{"note":`+anySA+`}}}`),
			ev(9, "WORKFLOW_EXECUTION_UPDATE_ACCEPTED", `"workflowExecutionUpdateAcceptedEventAttributes":{"protocolInstanceId":"u1","acceptedRequest":{"meta":{"updateId":"u1"},"input":{"name":"approve"}}}`),
			ev(10, "WORKFLOW_EXECUTION_UPDATE_COMPLETED", `"workflowExecutionUpdateCompletedEventAttributes":{"meta":{"updateId":"u1"},"acceptedEventId":"9"}`),
			ev(11, "WORKFLOW_EXECUTION_UPDATE_REJECTED", `"workflowExecutionUpdateRejectedEventAttributes":{"rejectedRequest":{"meta":{"updateId":"u2"},"input":{"name":"bad"}}}`),
			ev(12, "WORKFLOW_EXECUTION_SIGNALED", `"workflowExecutionSignaledEventAttributes":{"signalName":"poke"}`),
			ev(13, "WORKFLOW_EXECUTION_CANCEL_REQUESTED", `"workflowExecutionCancelRequestedEventAttributes":{}`),
			ev(14, "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED", `"requestCancelExternalWorkflowExecutionInitiatedEventAttributes":{"workflowExecution":{"workflowId":"other"}}`),
			ev(15, "TIMER_STARTED", `"timerStartedEventAttributes":{"timerId":"t1"}`),
			ev(16, "WORKFLOW_EXECUTION_OPTIONS_UPDATED", `"workflowExecutionOptionsUpdatedEventAttributes":{}`),
			ev(17, "WORKFLOW_TASK_FAILED", `"workflowTaskFailedEventAttributes":{"cause":"WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW"}`),
			ev(18, "WORKFLOW_TASK_FAILED", `"workflowTaskFailedEventAttributes":{"cause":"WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE"}`),
			ev(19, "NEXUS_OPERATION_SCHEDULED", `"nexusOperationScheduledEventAttributes":{"endpoint":"e","service":"svc","operation":"op"}`),
			ev(20, "NEXUS_OPERATION_CANCEL_REQUESTED", `"nexusOperationCancelRequestedEventAttributes":{"scheduledEventId":"19"}`),
			ev(21, "WORKFLOW_EXECUTION_CONTINUED_AS_NEW", `"workflowExecutionContinuedAsNewEventAttributes":{"workflowType":{"name":"W"}}`),
		},
		actions: 11,
		kinds: []string{
			"workflow started 1: W=1",
			"child workflow initiated 1: Child=1",
			"search attributes upserted 1: JobStatus+TemporalChangeVersion=1",
			"update accepted 1: approve=1",
			"update rejected 1: bad=1",
			"signal received 1: poke=1",
			"timer started 1: t1=1",
			"workflow options updated 1: =1",
			"workflow reset 1: =1",
			"nexus operation scheduled 1: svc/op=1",
			"nexus cancel requested 1: =1",
		},
		free: []string{
			"2 signal of signal-with-start: go",
			"6 signal sent to another workflow: ping",
			"8 memo upserted: note",
			"10 update completed: u1",
			"13 cancellation requested: this workflow",
			"14 cancellation requested: other",
			"21 continued as new: W",
		},
	}, {
		name:    "scheduled first run",
		events:  []string{started(1, `"attempt":1,"firstExecutionRunId":"r1","originalExecutionRunId":"r1","searchAttributes":{"indexedFields":{"TemporalScheduledById":`+anySA+`}}`)},
		actions: 3,
		kinds:   []string{"workflow started 3: W (by a Schedule)=3"},
	}, {
		name:    "scheduled, later run of the chain",
		events:  []string{started(1, `"attempt":1,"firstExecutionRunId":"r1","originalExecutionRunId":"r2","searchAttributes":{"indexedFields":{"TemporalScheduledById":`+anySA+`}}`)},
		actions: 1,
		kinds:   []string{"workflow started 1: W=1"},
	}, {
		name:    "workflow retry",
		events:  []string{started(1, `"attempt":2`)},
		actions: 0,
		free:    []string{"1 workflow started: W attempt 2 (retry of the workflow)"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := history(t, tt.events...)
			if r.Events != len(tt.events) {
				t.Errorf("events = %d, want %d", r.Events, len(tt.events))
			}
			if r.Actions != tt.actions {
				t.Errorf("actions = %d, want %d", r.Actions, tt.actions)
			}
			if got := kinds(r.ByKind()); !slices.Equal(got, tt.kinds) {
				t.Errorf("by kind:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.kinds, "\n"))
			}
			if got := freeKinds(r); !slices.Equal(got, tt.free) {
				t.Errorf("free:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.free, "\n"))
			}
		})
	}
}

func TestMarkdownIsStable(t *testing.T) {
	r, err := CountFile("testdata/paid_completed_expired.json")
	if err != nil {
		t.Fatal(err)
	}
	md := r.Markdown()
	for i := 0; i < 20; i++ {
		r2, _ := CountFile("testdata/paid_completed_expired.json")
		if r2.Markdown() != md {
			t.Fatal("Markdown differs between runs")
		}
	}
	for _, want := range []string{
		"121 events, 28 billable actions",
		"| activity scheduled | 14 | CreateCheckout, DeliverEvent ×3, RecordPayment, SendEmail ×3,",
		"| activity retry | 3 | DeliverEvent ×3 |",
		"| **total** | **28** | | |",
		"version marker (notifications)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteFile(t *testing.T) {
	var b strings.Builder
	if err := WriteFile(&b, "testdata/late_payment_refund.json"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### late_payment_refund.json", "27 events, 6 billable actions", "Events by type: WorkflowTaskCompleted 4,"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	if err := WriteFile(&b, "testdata/missing.json"); err == nil {
		t.Error("missing file: no error")
	}
}
