package historycost

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// Kinds of billable Action, as named in the report.
const (
	KindWorkflowStarted    = "workflow started"
	KindUpdate             = "update accepted"
	KindUpdateRejected     = "update rejected"
	KindChildWorkflow      = "child workflow initiated"
	KindSearchAttributes   = "search attributes upserted"
	KindOptionsUpdated     = "workflow options updated"
	KindReset              = "workflow reset"
	KindActivity           = "activity scheduled"
	KindActivityRetry      = "activity retry"
	KindMarkers            = "markers of one workflow task"
	KindLocalActivityRetry = "local activity retry"
	KindTimer              = "timer started"
	KindSignal             = "signal received"
	KindNexus              = "nexus operation scheduled"
	KindNexusCancel        = "nexus cancel requested"
)

// Kinds of event that are worth showing although they cost nothing, so that
// a reader of the report sees they were not forgotten.
const (
	FreeVersionMarker   = "version marker"
	FreeChangeVersion   = "TemporalChangeVersion upsert"
	FreeSignalWithStart = "signal of signal-with-start"
	FreeContinueAsNew   = "continued as new"
	FreeExternalSignal  = "signal sent to another workflow"
	FreeMemo            = "memo upserted"
	FreeCancelRequest   = "cancellation requested"
	FreeUpdateDone      = "update completed"
	FreeClosed          = "workflow closed"
)

// rules explains each kind in one line for the rendered table.
var rules = map[string]string{
	KindWorkflowStarted:    "1 per start (client, Update/Signal-with-Start, child, continue-as-new); 3 if started by a Schedule; 0 for a workflow retry",
	KindUpdate:             "1 per accepted update, on top of the start for Update-with-Start",
	KindUpdateRejected:     "1 per rejected update (normally not written to history)",
	KindChildWorkflow:      "1 here; the child's own start is the second of the documented two",
	KindSearchAttributes:   "1 per upsert command, however many attributes",
	KindOptionsUpdated:     "1 per options update",
	KindReset:              "1 per reset",
	KindActivity:           "1 per activity (its first attempt)",
	KindActivityRetry:      "attempt-1 from the Started event: each retry is 1",
	KindMarkers:            "1 for all local activity / side effect markers of one workflow task",
	KindLocalActivityRetry: "local activity attempts after a workflow task heartbeat (metering metadata, max 100)",
	KindTimer:              "1 per timer, including SDK timeout timers",
	KindSignal:             "1 per signal received",
	KindNexus:              "1 per Nexus operation",
	KindNexusCancel:        "1 per Nexus cancellation",
	FreeVersionMarker:      "GetVersion/patch markers are not billed",
	FreeChangeVersion:      "TemporalChangeVersion alone is exempt",
	FreeSignalWithStart:    "Signal-With-Start is one Action in total, the start's",
	FreeContinueAsNew:      "billed as the next run's start",
	FreeExternalSignal:     "billed in the receiving workflow's history",
	FreeMemo:               "memo upserts are not Actions",
	FreeCancelRequest:      "cancellation requests are not Actions",
	FreeUpdateDone:         "only acceptance is billed",
	FreeClosed:             "closing a workflow is not an Action",
}

// Rule says in one line why an item of this kind costs what it does.
func Rule(kind string) string { return rules[kind] }

// Item is one billable (or notably free) event of a history.
type Item struct {
	EventID int64
	Kind    string
	// Detail names what it was for: activity type, timer id, signal name,
	// update name, workflow type, search attributes, markers.
	Detail string
	Count  int
}

// TypeCount is how many events of one type a history holds.
type TypeCount struct {
	Type  string
	Count int
}

// Report is the cost of one workflow run.
type Report struct {
	Events int
	// EventsByType is most frequent first, ties by name, so output is stable.
	EventsByType []TypeCount
	// Actions is the sum of Items' counts.
	Actions int
	// Items are the billable events in history order.
	Items []Item
	// Free are the events that look billable but are not, in history order.
	Free []Item
}

// Count estimates the events and Temporal Cloud Actions of one run; the
// rules are in the package documentation.
func Count(h *historypb.History) Report {
	var r Report
	byType := map[string]int{}
	activityType := map[int64]string{} // scheduled event id -> type name
	markerItem := map[int64]int{}      // workflow task completed id -> index in Items
	add := func(id int64, kind, detail string, n int) {
		if n > 0 {
			r.Items = append(r.Items, Item{EventID: id, Kind: kind, Detail: detail, Count: n})
			r.Actions += n
		}
	}
	free := func(id int64, kind, detail string) {
		r.Free = append(r.Free, Item{EventID: id, Kind: kind, Detail: detail})
	}

	for _, e := range h.GetEvents() {
		r.Events++
		byType[e.GetEventType().String()]++
		id := e.GetEventId()

		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a := e.GetWorkflowExecutionStartedEventAttributes()
			name := a.GetWorkflowType().GetName()
			switch {
			case a.GetAttempt() > 1:
				free(id, KindWorkflowStarted, fmt.Sprintf("%s attempt %d (retry of the workflow)", name, a.GetAttempt()))
			case a.GetSearchAttributes().GetIndexedFields()["TemporalScheduledById"] != nil &&
				a.GetFirstExecutionRunId() == a.GetOriginalExecutionRunId():
				add(id, KindWorkflowStarted, name+" (by a Schedule)", 3)
			default:
				add(id, KindWorkflowStarted, name, 1)
			}

		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			add(id, KindUpdate, e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName(), 1)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
			add(id, KindUpdateRejected, e.GetWorkflowExecutionUpdateRejectedEventAttributes().GetRejectedRequest().GetInput().GetName(), 1)
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
			free(id, FreeUpdateDone, e.GetWorkflowExecutionUpdateCompletedEventAttributes().GetMeta().GetUpdateId())

		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			add(id, KindChildWorkflow, e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowType().GetName(), 1)

		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			keys := sortedKeys(e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields())
			if len(keys) == 1 && keys[0] == "TemporalChangeVersion" {
				free(id, FreeChangeVersion, keys[0])
			} else {
				add(id, KindSearchAttributes, strings.Join(keys, "+"), 1)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
			free(id, FreeMemo, strings.Join(sortedKeys(e.GetWorkflowPropertiesModifiedEventAttributes().GetUpsertedMemo().GetFields()), "+"))
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
			add(id, KindOptionsUpdated, "", 1)
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			if e.GetWorkflowTaskFailedEventAttributes().GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW {
				add(id, KindReset, "", 1)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			n := int(min(e.GetWorkflowTaskCompletedEventAttributes().GetMeteringMetadata().GetNonfirstLocalActivityExecutionAttempts(), 100))
			add(id, KindLocalActivityRetry, fmt.Sprintf("workflow task %d", id), n)

		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			activityType[id] = name
			add(id, KindActivity, name, 1)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			add(id, KindActivityRetry, activityType[a.GetScheduledEventId()], int(a.GetAttempt())-1)

		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			a := e.GetMarkerRecordedEventAttributes()
			name := a.GetMarkerName()
			if name == "Version" || name == "core_patch" {
				free(id, FreeVersionMarker, versionDetail(a))
				break
			}
			task := a.GetWorkflowTaskCompletedEventId()
			label := markerLabel(a)
			if i, ok := markerItem[task]; ok {
				r.Items[i].Detail += ", " + label
				break
			}
			markerItem[task] = len(r.Items)
			add(id, KindMarkers, fmt.Sprintf("task %d: %s", task, label), 1)

		case enumspb.EVENT_TYPE_TIMER_STARTED:
			add(id, KindTimer, e.GetTimerStartedEventAttributes().GetTimerId(), 1)

		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			name := e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
			if id == 2 {
				free(id, FreeSignalWithStart, name)
			} else {
				add(id, KindSignal, name, 1)
			}
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			free(id, FreeExternalSignal, e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName())

		case enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED:
			a := e.GetNexusOperationScheduledEventAttributes()
			add(id, KindNexus, a.GetService()+"/"+a.GetOperation(), 1)
		case enumspb.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
			add(id, KindNexusCancel, "", 1)

		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			free(id, FreeContinueAsNew, e.GetWorkflowExecutionContinuedAsNewEventAttributes().GetWorkflowType().GetName())
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
			free(id, FreeCancelRequest, "this workflow")
		case enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			free(id, FreeCancelRequest, e.GetRequestCancelExternalWorkflowExecutionInitiatedEventAttributes().GetWorkflowExecution().GetWorkflowId())
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			free(id, FreeClosed, e.GetEventType().String())
		}
	}

	for t, n := range byType {
		r.EventsByType = append(r.EventsByType, TypeCount{Type: t, Count: n})
	}
	slices.SortFunc(r.EventsByType, func(a, b TypeCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Type, b.Type))
	})
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// markerLabel names a billable marker; for a Go SDK local activity it adds
// the activity type, read from the marker's JSON data when it is there.
func markerLabel(a *historypb.MarkerRecordedEventAttributes) string {
	name := a.GetMarkerName()
	if name != "LocalActivity" {
		return name
	}
	var data struct{ ActivityType string }
	if jsonPayload(a.GetDetails()["data"], &data) && data.ActivityType != "" {
		return name + " " + data.ActivityType
	}
	return name
}

// versionDetail names the change id of a Go SDK version marker.
func versionDetail(a *historypb.MarkerRecordedEventAttributes) string {
	var changeID string
	if jsonPayload(a.GetDetails()["change-id"], &changeID) {
		return changeID
	}
	return a.GetMarkerName()
}

func jsonPayload(p *commonpb.Payloads, v any) bool {
	ps := p.GetPayloads()
	if len(ps) == 0 || string(ps[0].GetMetadata()["encoding"]) != "json/plain" {
		return false
	}
	return json.Unmarshal(ps[0].GetData(), v) == nil
}

// Read decodes a history exported as JSON (Temporal UI, or
// `temporal workflow show --output json`), the format of workflows/testdata.
func Read(r io.Reader) (*historypb.History, error) {
	return client.HistoryFromJSON(r, client.HistoryJSONOptions{})
}

// Load reads an exported history file.
func Load(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("historycost: %s: %w", path, err)
	}
	return h, nil
}

// CountFile is Load followed by Count.
func CountFile(path string) (Report, error) {
	h, err := Load(path)
	if err != nil {
		return Report{}, err
	}
	return Count(h), nil
}
